// Test and benchmark support: programs services into a loaded datapath the way the agent
// will (VIP filter bit, backends, Maglev table, then the service entries that make it
// reachable), and runs packets through the program with BPF_PROG_TEST_RUN.
#ifndef XLB_TESTS_DATAPATH_LB_FIXTURE_H
#define XLB_TESTS_DATAPATH_LB_FIXTURE_H

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/xdp_loader.h"
#include "maps/xlb_abi.h"
#include "userspace/planner/maglev.h"
#include "util/result.h"

namespace xlb::testing {

// An address as the ABI stores it: IPv4 in word 0, the other words zero.
struct Addr {
  std::array<uint32_t, 4> words{};
  uint8_t family = 0;
};
Addr ParseAddr(std::string_view text);  // aborts the test binary on a bad literal

xlb_service_key VipKey(std::string_view addr, uint16_t port, uint8_t proto);
xlb_backend Backend(std::string_view addr, uint16_t port, uint16_t cluster_id = 1);

struct WeightedBackend {
  uint32_t id;
  xlb_backend backend;
  uint32_t weight = 1;
};

class ServiceWriter {
 public:
  explicit ServiceWriter(XdpDatapath& dp) : dp_(dp) {}

  // Writes the backends, the service's Maglev table and then its VIP entries.
  Result<void> AddService(uint32_t service_id, std::span<const xlb_service_key> vips,
                          std::span<const WeightedBackend> backends, uint32_t flags = 0);
  // Rebuilds the service's table over new backends and swaps it in.
  Result<void> SetBackends(uint32_t service_id, std::span<const WeightedBackend> backends);
  Result<void> SetBackend(uint32_t id, const xlb_backend& backend);

 private:
  Result<void> SetVipFilterBit(const xlb_service_key& vip);

  XdpDatapath& dp_;
  std::map<uint32_t, std::vector<xlb_service_key>> vips_;  // by service id
  std::map<uint32_t, uint64_t> filter_;                    // VIP filter words we set
};

struct RunResult {
  uint32_t verdict = 0;  // XDP_*
  std::vector<uint8_t> out;
};
RunResult RunXdp(int prog_fd, std::span<const uint8_t> frame);

// Per-reason packet counts, summed over CPUs.
std::array<uint64_t, XLB_REASON_MAX> ReasonCounts(const XdpDatapath& dp);

}  // namespace xlb::testing

#endif  // XLB_TESTS_DATAPATH_LB_FIXTURE_H
