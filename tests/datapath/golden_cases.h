// The golden-packet scenarios, shared by the per-case tests and the tshark check: each
// step is an input frame built by the packet builder, the hook it enters (XDP on the
// uplink, or TC on a pod's veth), the verdict and reason the datapath must give, and the
// exact frame it must emit (built from scratch by the same builder, so every checksum in it
// is computed, not updated).
//
// Every case runs inside a network namespace of the test binary's own, because the encapsulation
// path asks the kernel's fib for the next hop of the outer packet: the namespace holds the
// uplink, its neighbours and routes, and nothing else.
#ifndef XLB_TESTS_DATAPATH_GOLDEN_CASES_H
#define XLB_TESTS_DATAPATH_GOLDEN_CASES_H

#include <array>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "builder.h"
#include "lb_fixture.h"
#include "loader/tc_loader.h"
#include "loader/test_run.h"

namespace xlb::testing {

enum class Hook { kXdp, kTc };

struct GoldenStep {
  std::string what;
  pkt::Bytes in;
  uint32_t verdict;               // XDP_* for Hook::kXdp, TC_ACT_* for Hook::kTc
  xlb_reason reason;              // the one counter this packet must bump
  std::optional<pkt::Bytes> out;  // expected frame; nullopt = unchanged
  // Runs before the packet (e.g. change the table to prove conntrack keeps the flow).
  std::function<void(XdpDatapath&, ServiceWriter&)> before;
  Hook hook = Hook::kXdp;
  // Arrives on the golden network's uplink instead of loopback (XDP_TX when the fib sends
  // the outer packet back out of the interface it came in on).
  bool on_uplink = false;
  // Checks after the packet (map entries it must have written).
  std::function<void(XdpDatapath&)> after;
};

struct GoldenCase {
  std::string name;
  std::vector<GoldenStep> steps;
  // Changes to the golden xlb_config (GoldenConfig()) for this case.
  std::function<void(xlb_config&)> config;
};
// gtest prints a failing case by its name, not its bytes.
inline void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

// The golden network (inside the case's namespace):
//   uplink "up0" 02:00:00:00:01:01, 198.18.100.1/24 and 2001:db8:100::1/64 (the node's tunnel
//   addresses), its veth peer "up1" beside it; forwarding on.
//   198.18.100.2 / 2001:db8:100::2: a remote node, neighbour 02:00:00:00:01:02 (permanent).
//   198.18.101.0/24, 2001:db8:101::/64 via .3 / ::3, a gateway whose neighbour is unresolved.
//   198.18.102.0/24, 2001:db8:102::/64: unreachable routes.
inline constexpr const char* kUplinkMac = "02:00:00:00:01:01";
inline constexpr const char* kRemoteNodeMac = "02:00:00:00:01:02";
inline constexpr const char* kNodeTunnel4 = "198.18.100.1";
inline constexpr const char* kNodeTunnel6 = "2001:db8:100::1";
inline constexpr const char* kRemoteNode4 = "198.18.100.2";
inline constexpr const char* kRemoteNode6 = "2001:db8:100::2";

// The config every case starts from: the defaults plus the node's tunnel addresses.
xlb_config GoldenConfig();

// Installs the services every case relies on (see golden_cases.cc for the table).
void InstallGoldenServices(XdpDatapath& dp, ServiceWriter& writer);
// The remote node (kRemoteNode4, kRemoteNode6) as a tunnel peer: its packets are decapsulated.
xlb_peer_key PeerKey(std::string_view addr);
void InstallGoldenPeers(XdpDatapath& dp);
std::vector<GoldenCase> GoldenCases();

struct GoldenRun {
  RunResult result;
  std::array<uint64_t, XLB_REASON_MAX> before{};  // reason counters before the packet
  std::array<uint64_t, XLB_REASON_MAX> after{};   // and after
};

// A fresh XDP and TC datapath with the golden services and peers, inside the golden network.
struct GoldenDatapath {
  XdpDatapath& xdp;
  TcDatapath& tc;
  ServiceWriter& writer;
  int uplink;  // ifindex of up0
};

// Loads a GoldenDatapath with GoldenConfig() changed by `config` (may be empty) and runs
// `body` on the thread inside the golden network's namespace. False (with a gtest failure)
// when the set-up failed or `body` had a fatal failure.
bool WithGoldenDatapath(const std::function<void(xlb_config&)>& config,
                        const std::function<void(GoldenDatapath&)>& body);

// `in` through the step's hook, as the step's frame would go (TC or XDP, uplink or not).
Result<TestRunResult> RunStep(GoldenDatapath& g, const GoldenStep& step, std::span<const uint8_t> in);

// Runs every step of a case in a fresh namespace with the golden network, a fresh XDP and
// TC datapath and the golden services, and calls check after each step (on the thread
// inside the namespace). Returns false (with a gtest failure) when the set-up failed.
bool RunGoldenCase(const GoldenCase& c,
                   const std::function<void(const GoldenStep&, const GoldenRun&, XdpDatapath&)>& check);

}  // namespace xlb::testing

#endif  // XLB_TESTS_DATAPATH_GOLDEN_CASES_H
