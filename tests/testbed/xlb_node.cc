#include "xlb_node.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "loader/reasons.h"
#include "loader/tc_loader.h"
#include "maps/xlb_hash.h"
#include "userspace/planner/maglev.h"

namespace xlb::testbed {
namespace {

struct AbiAddress {
  __be32 words[4] = {0, 0, 0, 0};
  uint8_t family = 0;
};

AbiAddress ParseAbi(const std::string& text) {
  AbiAddress a;
  if (::inet_pton(AF_INET, text.c_str(), a.words) == 1) {
    a.family = XLB_FAMILY_IPV4;
  } else if (::inet_pton(AF_INET6, text.c_str(), a.words) == 1) {
    a.family = XLB_FAMILY_IPV6;
  } else {
    throw std::invalid_argument("not an address literal: " + text);
  }
  return a;
}

// Every node of the testbed (whichever options made it) as a tunnel peer, with both of its
// transit addresses, before XDP is attached: as the agent knows every node its endpoints
// name, and a node's tunnel packets leave from its transit address.
void AddTestbedPeers(XdpDatapath& dp) {
  std::vector<std::string> roles = Roles();
  for (const auto* more : {&NodeCRoles(), &MultiNodeRoles()}) {
    roles.insert(roles.end(), more->begin(), more->end());
  }
  for (const std::string& role : roles) {
    if (NodeOf(role) != role) {
      continue;  // a pod, a client, the router
    }
    for (const Family f : {Family::kV4, Family::kV6}) {
      const AbiAddress a = ParseAbi(Address(role, f));
      xlb_peer_key key{};
      std::memcpy(key.addr, a.words, sizeof(key.addr));
      key.family = a.family;
      // nodeA, nodeA2, ... are cluster-a's: the letter after "node" names the cluster
      const xlb_peer peer{.cluster_id = static_cast<uint16_t>(role[4] - 'A' + 1), .pad = {}};
      if (auto put = dp.peers().Update(key, peer); !put.ok()) {
        throw std::runtime_error("tunnel peer " + role + ": " + put.error().ToString());
      }
    }
  }
}

Family FamilyOf(uint8_t abi_family) {
  return abi_family == XLB_FAMILY_IPV4 ? Family::kV4 : Family::kV6;
}

[[noreturn]] void Fail(const std::string& what, const Error& e) {
  throw std::runtime_error(what + ": " + e.ToString());
}

void Check(const Result<void>& r, const std::string& what) {
  if (!r.ok()) {
    Fail(what, r.error());
  }
}

}  // namespace

std::string ClusterOf(const std::string& pod) {
  if (pod.size() >= 4 && pod.compare(0, 3, "pod") == 0) {
    return std::string("cluster-") + static_cast<char>(pod[3] - 'A' + 'a');
  }
  throw std::invalid_argument("not a backend pod of the testbed: " + pod);
}

uint16_t ClusterId(const std::string& cluster) {
  if (cluster.size() != 9 || cluster.compare(0, 8, "cluster-") != 0) {
    throw std::invalid_argument("not a testbed cluster: " + cluster);
  }
  return static_cast<uint16_t>(cluster[8] - 'a' + 1);
}

std::unique_ptr<XlbNode> XlbNode::Start(const Testbed& tb, const std::string& node,
                                        const XlbNodeOptions& options) {
  std::unique_ptr<XlbNode> n(new XlbNode(tb, node));
  LoadOptions load;
  load.pin_dir = "";  // hermetic: every test has its own maps
  load.config.maglev_size = options.maglev_size;
  load.config.encap = options.encap;
  load.config.flags = XLB_CFG_F_TUNNEL_PEERS;  // every testbed node is a peer
  load.config.tunnel_addr4 = ParseAbi(Address(node, Family::kV4)).words[0];
  std::memcpy(load.config.tunnel_addr6, ParseAbi(Address(node, Family::kV6)).words,
              sizeof(load.config.tunnel_addr6));
  // The transit links' MTU: what a tunnelled packet must fit in.
  load.config.tunnel_mtu = static_cast<uint16_t>(tb.transit_mtu());
  load.max_ct_entries = options.max_ct_entries;
  load.max_half_open_entries = options.max_half_open_entries;
  auto xdp = XdpDatapath::Load(load);
  if (!xdp.ok()) {
    Fail("load xlb_xdp for " + node, xdp.error());
  }
  n->xdp_ = std::move(*xdp);
  auto tc = TcDatapath::Load(*n->xdp_);
  if (!tc.ok()) {
    Fail("load xlb_tc for " + node, tc.error());
  }
  n->tc_ = std::move(*tc);
  AddTestbedPeers(*n->xdp_);

  RunInNetns(tb.NsPath(node), [&] {
    AttachOptions native;
    native.allow_generic = false;  // veth has native XDP; generic would hide XDP_TX problems
    auto a = n->xdp_->Attach("eth0", native);
    if (!a.ok()) {
      Fail("attach xlb_xdp to " + node + "/eth0", a.error());
    }
    n->xdp_attachment_ = std::move(*a);
    // Every pod veth of the node: what the pods send enters the node there.
    struct if_nameindex* names = ::if_nameindex();
    if (names == nullptr) {
      throw std::runtime_error(std::string("if_nameindex: ") + std::strerror(errno));
    }
    for (struct if_nameindex* i = names; i->if_index != 0; ++i) {
      if (std::strncmp(i->if_name, "veth-", 5) == 0) {
        n->tc_devices_.emplace_back(i->if_name);
      }
    }
    ::if_freenameindex(names);
    std::sort(n->tc_devices_.begin(), n->tc_devices_.end());
    for (const std::string& dev : n->tc_devices_) {
      auto t = n->tc_->Attach(dev);
      if (!t.ok()) {
        Fail("attach xlb_tc to " + node + "/" + dev, t.error());
      }
      n->tc_attachments_.push_back(std::move(*t));
    }
  });
  if (n->tc_devices_.empty()) {
    throw std::runtime_error(node + " has no pod veth (veth-*) to attach xlb_tc to");
  }
  return n;
}

XlbNode::XlbNode(const Testbed& tb, std::string node) : tb_(tb), node_(std::move(node)) {}

XlbNode::~XlbNode() {
  Detach();
}

void XlbNode::Detach() {
  try {
    RunInNetns(tb_.NsPath(node_), [&] {
      tc_attachments_.clear();
      xdp_attachment_ = XdpAttachment();
    });
  } catch (const std::exception& e) {
    // The namespace is gone, and its interfaces with everything attached to them; an
    // ifindex now means nothing, or some other interface of this thread's namespace.
    for (TcAttachment& t : tc_attachments_) {
      t.release();
    }
    xdp_attachment_.release();
    tc_attachments_.clear();
  }
}

uint32_t XlbNode::BackendId(const std::string& pod, uint8_t family) {
  std::string key = pod + "/" + std::to_string(family);
  auto it = backend_ids_.find(key);
  if (it != backend_ids_.end()) {
    return it->second;
  }
  return backend_ids_[key] = next_backend_id_++;
}

void XlbNode::SetService(const ServiceSpec& spec) {
  const AbiAddress vip = ParseAbi(spec.vip);
  const Family family = FamilyOf(vip.family);
  ServiceState& svc = services_[spec.vip];
  if (svc.id == 0) {
    svc.id = next_service_id_++;
  }

  // Weights: a cluster's share split evenly over its ready endpoints, as integers that keep
  // the ratios exactly (share * L / ready, L the lcm of the ready counts).
  std::map<std::string, uint32_t> ready;
  for (const Endpoint& e : spec.endpoints) {
    ready[ClusterOf(e.pod)] += e.ready ? 1 : 0;
  }
  uint32_t lcm = 1;
  for (const auto& [cluster, n] : ready) {
    if (n > 0) {
      lcm = std::lcm(lcm, n);
    }
  }
  std::map<std::string, uint32_t> weights;
  for (const Endpoint& e : spec.endpoints) {
    const std::string cluster = ClusterOf(e.pod);
    auto w = spec.weights.find(cluster);
    weights[e.pod] = e.ready && w != spec.weights.end() ? w->second * (lcm / ready[cluster]) : 0;
  }

  // Backends first: every slot of the new table must point at a written backend.
  std::vector<MaglevBackend> members;
  uint32_t in_table = 0;
  for (const Endpoint& e : spec.endpoints) {
    const std::string cluster = ClusterOf(e.pod);
    const std::string backend_node = NodeOf(e.pod);
    const AbiAddress addr = ParseAbi(Address(e.pod, family));
    xlb_backend b{};
    std::memcpy(b.addr, addr.words, sizeof(b.addr));
    b.port = 0;  // the echo servers listen on the VIP's port
    b.family = addr.family;
    b.cluster_id = ClusterId(cluster);
    b.flags = XLB_BE_F_VALID;
    if (backend_node != node_) {
      const AbiAddress tunnel = ParseAbi(Address(backend_node, family));
      std::memcpy(b.tunnel, tunnel.words, sizeof(b.tunnel));
      b.tunnel_family = tunnel.family;
      b.flags |= XLB_BE_F_TUNNEL;
    }
    const uint32_t id = BackendId(e.pod, addr.family);
    Check(xdp_->backends().Update(id, b), "backend " + e.pod);
    // The key is what a real agent would use: it does not depend on this node's ids.
    members.push_back({id, cluster + "/" + Address(e.pod, family), weights[e.pod]});
    in_table += weights[e.pod] > 0 ? 1 : 0;
  }
  auto table = BuildMaglevTable(members, xdp_->maglev_size());
  Check(table.ok() ? xdp_->InstallMaglevTable(svc.id, *table) : Result<void>(table.error()),
        "Maglev table of " + spec.vip);

  // Then what makes the VIP reachable: its filter bit, then the service entry.
  uint32_t word = 0;
  const uint64_t bit = xlb_vip_filter_pos(vip.words, &word);
  auto current = xdp_->vip_filter().Lookup(word);
  if (!current.ok()) {
    Fail("VIP filter word", current.error());
  }
  Check(xdp_->vip_filter().Update(word, *current | bit), "VIP filter word");
  xlb_service_key key{};
  std::memcpy(key.addr, vip.words, sizeof(key.addr));
  key.port = htons(spec.port);
  key.proto = spec.proto;
  key.family = vip.family;
  const xlb_service value{
      .id = svc.id, .flags = 0, .affinity_timeout = 0, .backend_count = in_table};
  Check(xdp_->services().Update(key, value), "service " + spec.vip);
  svc.key = key;

  // Backends no longer listed: invalid, so their flows select again. Only after the swap,
  // so no new flow is sent to them meanwhile.
  for (const auto& [pod, w] : svc.weights) {
    if (weights.count(pod) == 0) {
      const uint32_t id = BackendId(pod, vip.family);
      auto b = xdp_->backends().Lookup(id);
      if (!b.ok()) {
        Fail("backend " + pod, b.error());
      }
      b->flags &= static_cast<uint16_t>(~XLB_BE_F_VALID);
      Check(xdp_->backends().Update(id, *b), "invalidate backend " + pod);
    }
  }
  svc.weights = std::move(weights);
}

std::map<std::string, uint32_t> XlbNode::PlannedWeights(const std::string& vip) const {
  auto it = services_.find(vip);
  return it == services_.end() ? std::map<std::string, uint32_t>{} : it->second.weights;
}

std::map<std::string, uint64_t> XlbNode::NewFlowsByPod(const std::string& vip) const {
  const uint8_t family = ParseAbi(vip).family;
  std::map<std::string, uint64_t> flows;
  auto stats = xdp_->backend_stats();
  for (const auto& [key, id] : backend_ids_) {
    const std::string pod = key.substr(0, key.find('/'));
    if (key != pod + "/" + std::to_string(family)) {
      continue;
    }
    auto per_cpu = stats.Lookup(id);
    if (!per_cpu.ok()) {
      Fail("backend counters of " + pod, per_cpu.error());
    }
    uint64_t n = 0;
    for (const xlb_flow_counter& c : *per_cpu) {
      n += c.new_flows;
    }
    flows[pod] = n;
  }
  return flows;
}

std::string XlbNode::Reasons() const {
  std::string out;
  auto reasons = xdp_->reasons();
  for (const ReasonInfo& r : kReasons) {
    auto per_cpu = reasons.Lookup(r.reason);
    if (!per_cpu.ok()) {
      return "reasons: " + per_cpu.error().ToString();
    }
    uint64_t n = 0;
    for (const xlb_counter& c : *per_cpu) {
      n += c.packets;
    }
    if (n != 0) {
      out += (out.empty() ? "" : " ") + std::string(r.name) + "=" + std::to_string(n);
    }
  }
  return node_ + ": " + (out.empty() ? "no packets" : out);
}

}  // namespace xlb::testbed
