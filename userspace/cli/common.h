// What several of xlbctl's inspection commands share: printing and failing, the JSON and text
// forms of service keys, service flags and backends, how a Maglev table divides its slots,
// and the programs whose config a command goes by. Each command (status.cc, services.cc,
// backends.cc, stats.cc, conntrack.cc, explain.cc, policies.cc) computes a result of its own
// and renders it as JSON or as tables with these.
#ifndef XLB_USERSPACE_CLI_COMMON_H
#define XLB_USERSPACE_CLI_COMMON_H

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"
#include "maps/xlb_abi.h"
#include "userspace/cli/commands.h"
#include "userspace/cli/pinned_datapath.h"
#include "userspace/cli/table.h"

namespace xlb::cli {

using json = nlohmann::ordered_json;
using Align = Table::Align;

// Exit status 1 with the message on stderr.
int Fail(const Error& e);
int Fail(const std::string& message);
void PrintJson(const json& doc);
void PrintLines(const std::vector<std::string>& lines);
std::string N(uint64_t v);

// "198.18.100.10:8080/tcp"; port 0 is the all-ports form: "198.18.100.10:*/tcp".
std::string ServiceKeyText(const xlb_service_key& k);
json ServiceFlagsJson(const xlb_service& s);    // ["affinity", "node_port"]
std::string ServiceFlagsText(const xlb_service& s);  // "affinity(600s),node_port", "-"
std::string BackendPath(const xlb_backend& b);       // "routed", "tunnel 198.18.0.21"
json BackendJson(uint32_t id, const xlb_backend& b);
json CounterJson(const xlb_flow_counter& c);

// How a service's Maglev table divides its slots.
struct TableShares {
  bool installed = false;
  std::string error;  // set when the table could not be read (other than "not installed")
  uint32_t size = 0;
  uint32_t empty = 0;
  std::map<uint32_t, uint32_t> per_backend;  // backend id -> slots
  std::map<uint16_t, uint32_t> per_cluster;  // cluster id -> slots
  std::vector<uint32_t> slots;

  double Pct(uint32_t n) const { return size == 0 ? 0 : 100.0 * n / size; }
};
TableShares SharesOf(const PinnedDatapath& dp, uint32_t service_id,
                     const std::map<uint32_t, xlb_backend>& backends);

// Programs, their attachments, and the config to go by; problems finding them are not fatal.
struct Runtime {
  std::vector<ProgramConfig> programs;
  std::vector<Attachment> attachments;
  std::optional<ProgramConfig> chosen;
  std::string error;
};
Runtime FindRuntime(const PinnedDatapath& dp);

// A command's steps: open the pins under o.pin_dir, compute(dp) -> Result<R>, then print R as
// to_json(R) with -o json, else print(R) as tables. Returns the exit status.
template <typename Compute, typename ToJson, typename Print>
int Show(const InspectOptions& o, Compute compute, ToJson to_json, Print print,
         bool require_all = true) {
  auto dp = PinnedDatapath::Open(o.pin_dir, require_all);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto r = compute(*dp);
  if (!r.ok()) {
    return Fail(r.error());
  }
  if (o.json) {
    PrintJson(to_json(*r));
  } else {
    print(*r);
  }
  return 0;
}

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_COMMON_H
