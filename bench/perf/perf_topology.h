// xlb-perf's network: for every mode, three namespaces of its own joined by veth pairs,
//
//   gen [g0] ---- [n0] node [n1] ---- [s0] sink
//
// The generator (BPF_PROG_TEST_RUN with live frames) sends out of g0; the node runs the mode
// under test; the sink's XDP program counts what arrives and drops it. A remote-backend mode
// sends its VXLAN back out of n0, so g0 counts arrivals too. Each mode keeps its namespaces
// for the whole batch, so one mode's netfilter state (a nat table once loaded stays) never
// touches another's figures. Namespaces are deleted by the destructor.
#ifndef XLB_BENCH_PERF_PERF_TOPOLOGY_H
#define XLB_BENCH_PERF_PERF_TOPOLOGY_H

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "perf_abi.h"
#include "test_env.h"

struct xlb_perf;  // generated skeleton (xlb_perf.skel.h)

namespace xlb::perf {

enum class Mode {
  kRoute,
  kIptables,
  kNftables,
  kCeiling,
  kXlbLocal,
  kXlbLocalStack,
  kXlbSnat,
  kXlbRemote,
  kXlbDecap,
};
inline constexpr std::array<Mode, 9> kAllModes = {
    Mode::kRoute,         Mode::kIptables, Mode::kNftables,  Mode::kCeiling, Mode::kXlbLocal,
    Mode::kXlbLocalStack, Mode::kXlbSnat,  Mode::kXlbRemote, Mode::kXlbDecap};
inline bool IsXlb(Mode m) {
  return m == Mode::kXlbLocal || m == Mode::kXlbLocalStack || m == Mode::kXlbSnat ||
         m == Mode::kXlbRemote || m == Mode::kXlbDecap;
}
// The xlb modes with local backends: forwarded by xlb, or by the stack (--forwarding stack).
inline bool IsXlbLocal(Mode m) {
  return m == Mode::kXlbLocal || m == Mode::kXlbLocalStack;
}
const char* ModeName(Mode m);         // "route", "iptables", ...
const char* ModeDescription(Mode m);  // one line for the table

// Addresses, all in 198.18.0.0/15.
inline constexpr const char* kGenAddr = "198.18.0.1";
inline constexpr const char* kNodeUplinkAddr = "198.18.0.2";  // also xlb's tunnel address
inline constexpr const char* kNodePodSideAddr = "198.18.1.1";
inline constexpr const char* kSinkAddr = "198.18.1.2";
inline constexpr const char* kPodCidr = "198.18.1.0/24";
inline constexpr const char* kVip = "198.18.100.1";         // local backends (all but remote)
inline constexpr const char* kRemoteVip = "198.18.100.2";   // remote-cluster backends
inline constexpr const char* kRemoteNode = "198.18.2.2";    // reached back through g0
inline constexpr const char* kClientNet = "198.19.0.0/16";  // the generator's sources
inline constexpr uint32_t kBackends = 10;
std::string BackendAddr(uint32_t i);          // i = 0..kBackends-1: 198.18.1.10 + i, on s0
std::string RemoteBackendAddr(uint32_t i);    // 198.18.40.10 + i, behind kRemoteNode
inline constexpr uint16_t kTcpPort = 80;      // the TCP service (iptables and xlb-local)
inline constexpr uint32_t kUplinkMtu = 3000;  // room for 1500-byte frames plus VXLAN

// Throws std::runtime_error with the command's output when it fails.
std::string MustRun(const std::string& command);
// `nsenter --net=...`: unlike `ip netns exec`, it leaves /sys alone.
std::string InNs(const testing::Netns& ns, const std::string& command);

// Runs fn on a thread inside ns (pinned to cpu if >= 0) and waits for it; rethrows.
void RunIn(const testing::Netns& ns, int cpu, const std::function<void()>& fn);

// The programs of bench/perf/xlb_perf.bpf.c, loaded once and shared by every mode.
class PerfPrograms {
 public:
  PerfPrograms();
  ~PerfPrograms();
  PerfPrograms(const PerfPrograms&) = delete;
  PerfPrograms& operator=(const PerfPrograms&) = delete;

  int gen_fd() const;
  int sink_fd() const;
  int pass_fd() const;
  int fwd_fd() const;
  void SetGenerator(const perf_gen_config& config);
  void SetForwarder(const perf_fwd_config& config);
  uint64_t Sent() const;
  std::array<uint64_t, PERF_ARRIVAL_MAX> Arrivals() const;
  uint64_t Forwarded() const;

 private:
  ::xlb_perf* skel_;
};

// The counters that prove where a mode's packets went, read before and after a run.
struct PathCounters {
  uint64_t sent = 0;
  std::array<uint64_t, PERF_ARRIVAL_MAX> arrivals{};
  uint64_t link_drops = 0;               // rx/tx dropped of every veth of the mode
  std::map<std::string, uint64_t> path;  // the mode's own: rule hits, reasons, ...
  // With BPF run-time statistics on (xlb-perf --bpf-stats): runs and nanoseconds of the BPF
  // programs on the path (perf_gen, n0's program, perf_sink), by program name.
  std::map<std::string, std::pair<uint64_t, uint64_t>> bpf_runs_ns;
};
PathCounters operator-(const PathCounters& after, const PathCounters& before);

class ModeNet {
 public:
  ModeNet(Mode mode, PerfPrograms& progs);
  ~ModeNet();
  ModeNet(const ModeNet&) = delete;
  ModeNet& operator=(const ModeNet&) = delete;

  Mode mode() const { return mode_; }
  const testing::Netns& gen() const { return *gen_; }
  const testing::Netns& node() const { return *node_; }
  const testing::Netns& sink() const { return *sink_; }
  int gen_ifindex() const { return gen_ifindex_; }
  // The frame the generator sends in this mode: Ethernet to n0, IPv4 198.19.0.0 -> the
  // mode's destination, UDP to PERF_SERVICE_PORT; `size` bytes without FCS. In the
  // decapsulation mode that frame (to a backend's port) is inside VXLAN from the remote node.
  std::vector<uint8_t> Frame(uint32_t size) const;
  // Where in Frame() the generator stamps the flow: the IPv4 and UDP headers it varies.
  uint16_t StampedIpOffset() const;
  // What arrives at the sink's counter in this mode.
  perf_arrival ExpectedArrival() const;

  // Empties the flow tables (the kernel's conntrack, xlb's conntrack and reply maps).
  void ClearFlows();
  PathCounters Read(const PerfPrograms& progs) const;
  // Whether the mode serves the TCP service (real connections through it).
  bool ServesTcp() const {
    return mode_ == Mode::kIptables || mode_ == Mode::kNftables || IsXlbLocal(mode_);
  }
  const XdpDatapath* xlb() const { return xlb_.get(); }
  // The program attached to n0 in this mode.
  int NodeProgFd(const PerfPrograms& progs) const;

 private:
  void Wire();
  void LoadRules(const std::string& command, const std::string& rules);
  void SetUpCeiling(PerfPrograms& progs);
  void SetUpXlb();
  void Attach(const testing::Netns& ns, const char* dev, int prog_fd);
  std::string MacOf(const testing::Netns& ns, const char* dev) const;

  Mode mode_;
  std::unique_ptr<testing::Netns> gen_, node_, sink_;
  int gen_ifindex_ = 0;
  std::unique_ptr<XdpDatapath> xlb_;
  std::unique_ptr<TcDatapath> xlb_tc_;
};

}  // namespace xlb::perf

#endif  // XLB_BENCH_PERF_PERF_TOPOLOGY_H
