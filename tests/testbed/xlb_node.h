// An xlb node of the testbed: the real xlb_xdp and xlb_tc programs loaded for one node
// namespace (nodeA or nodeB), XDP attached to its uplink eth0 and TC (clsact ingress) to the
// host side of every pod veth, and services programmed into its maps the way the agent will
// (VIP filter bit, backends, weighted Maglev table swapped in whole, then the service entry).
//
//   auto tb = Testbed::Up();
//   auto a = XlbNode::Start(*tb, "nodeA");                     // throws std::runtime_error
//   a->SetService({.vip = Vip(Family::kV4), .weights = {{"cluster-a", 70}, {"cluster-b", 30}},
//                  .endpoints = {{"podA1"}, {"podA2"}, {"podB1"}, {"podB2"}}});
//
// A stand-in for the agent (a later issue replaces it): a cluster's weight is split evenly
// over its ready endpoints, a cluster without a ready endpoint gives its weight to the
// others in proportion (the policy's default spill-over), and a backend on another node is
// reached through the tunnel to that node's transit address. Maps are not pinned, so every
// test has its own datapath. Declare the XlbNode after the Testbed: it must detach inside
// the node's namespace before the namespace goes.
#ifndef XLB_TESTS_TESTBED_XLB_NODE_H
#define XLB_TESTS_TESTBED_XLB_NODE_H

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "maps/xlb_abi.h"
#include "testbed.h"

namespace xlb::testbed {

// The cluster a pod belongs to: one cluster per node ("cluster-a" for podA1, ...).
std::string ClusterOf(const std::string& pod);
uint16_t ClusterId(const std::string& cluster);  // cluster-a 1, cluster-b 2, cluster-c 3


struct Endpoint {
  std::string pod;    // podA1, ...: its address (of the VIP's family) is the backend's
  bool ready = true;  // not ready: no new flows (weight 0), keeps the flows it has
};

struct ServiceSpec {
  std::string vip;  // one address; a table holds backends of the VIP's family only
  uint16_t port = kEchoPort;
  uint8_t proto = 6;  // IPPROTO_TCP
  // Share of new flows per cluster ("cluster-a" -> 70). A cluster with no ready endpoint
  // gives its share to the others; clusters not named take none.
  std::map<std::string, uint32_t> weights;
  // Backends; one left out of a later SetService() is removed (marked invalid, so the
  // flows it had select again).
  std::vector<Endpoint> endpoints;
};

struct XlbNodeOptions {
  uint8_t encap = XLB_ENCAP_VXLAN;  // what this node sends toward tunnelled backends
  uint32_t maglev_size = 4093;      // prime; smaller than the default: faster swaps in tests
  // Conntrack, reply and SNAT entries (LRUs), and half-open flows: small enough that a test
  // fills them in a fraction of a second.
  uint32_t max_ct_entries = 65536;
  uint32_t max_half_open_entries = 16384;
};

class XlbNode {
 public:
  // Loads, configures (tunnel addresses = the node's transit addresses) and attaches.
  static std::unique_ptr<XlbNode> Start(const Testbed& tb, const std::string& node,
                                        const XlbNodeOptions& options = {});
  ~XlbNode();
  XlbNode(const XlbNode&) = delete;
  XlbNode& operator=(const XlbNode&) = delete;

  const std::string& node() const { return node_; }
  XdpDatapath& datapath() { return *xdp_; }
  // The pod veths TC is attached to ("veth-podA1", ...).
  const std::vector<std::string>& tc_devices() const { return tc_devices_; }

  // Creates or replaces the service: plans the weights, writes backends, swaps the Maglev
  // table in with one update, then writes the service entry; removed backends are
  // invalidated last. Throws std::runtime_error on a map error.
  void SetService(const ServiceSpec& spec);
  // The weight each pod got in the last SetService() for vip (0: no new flows).
  std::map<std::string, uint32_t> PlannedWeights(const std::string& vip) const;

  // New flows the datapath sent to each backend pod of vip's family so far (its per-backend
  // counters, summed over CPUs): the kernel's own view of the split.
  std::map<std::string, uint64_t> NewFlowsByPod(const std::string& vip) const;
  // Non-zero reason counters ("fwd_new_flow=1000 pass_no_service=12"), for failure messages.
  std::string Reasons() const;

 private:
  XlbNode(const Testbed& tb, std::string node);
  uint32_t BackendId(const std::string& pod, uint8_t family);
  void Detach();

  const Testbed& tb_;
  std::string node_;
  std::unique_ptr<XdpDatapath> xdp_;
  std::unique_ptr<TcDatapath> tc_;
  XdpAttachment xdp_attachment_;
  std::vector<TcAttachment> tc_attachments_;
  std::vector<std::string> tc_devices_;

  struct ServiceState {
    uint32_t id = 0;
    xlb_service_key key{};
    std::map<std::string, uint32_t> weights;  // by pod
  };
  std::map<std::string, ServiceState> services_;  // by VIP
  std::map<std::string, uint32_t> backend_ids_;   // "pod/family" -> id
  uint32_t next_service_id_ = 1;
  uint32_t next_backend_id_ = 1;
};

}  // namespace xlb::testbed

#endif  // XLB_TESTS_TESTBED_XLB_NODE_H
