// xlbctl explain: what the datapath does with one packet of a flow, worked out from the pinned
// maps with the rules the programs themselves use (maps/xlb_rules.h), in their order: the VIP
// filter, conntrack, the service entry, its source ranges, a service without endpoints (drop
// or reject), the client's ClientIP affinity entry, the Maglev slot. Tests hold it to the real
// program.
#ifndef XLB_USERSPACE_CLI_EXPLAIN_H
#define XLB_USERSPACE_CLI_EXPLAIN_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "util/result.h"
#include "maps/xlb_abi.h"
#include "userspace/cli/common.h"
#include "userspace/cli/pinned_datapath.h"

namespace xlb::cli {

struct ExplainQuery {
  xlb_ct_key key{};        // the flow's original-direction tuple, as conntrack keys it
  uint8_t tcp_flags = 0;   // of the packet (TCP only): a SYN on a closing entry selects again
};

enum class Decision {
  kNotAService,   // passes: the VIP filter or the services map does not know the destination
  kConntrackHit,  // its conntrack entry's backend
  kMaglev,        // selected (again) through the service's Maglev table
  kNoBackend,     // dropped: no backends, an empty slot, or the slot's backend is not valid
  kNoTable,       // dropped: the service has no Maglev table
  kSourceRange,   // dropped: the key has loadBalancerSourceRanges and the source is in none
  kReject,        // answered with ICMP port unreachable: no endpoints, XLB_SVC_F_REJECT
  kAffinity,      // the backend of the client's ClientIP affinity entry
};
const char* DecisionName(Decision d);  // "not_a_service", "conntrack_hit", ...

struct ConntrackView {
  enum class Stale { kNo, kExpired, kReopened, kBackendInvalid };
  xlb_ct_value entry{};
  double age_s = 0;
  Stale stale = Stale::kNo;
  std::string stale_because;  // why, in words; empty when the entry carries the packet
};

// The source-range check of a key with XLB_SVC_F_SOURCE_RANGES.
struct SourceRangeView {
  bool allowed = false;      // the source is in one of the service's prefixes
  bool established = false;  // checked for a conntrack hit (an entry begun under the flag)
};

// The client's entry in xlb_affinity_v1, and whether it binds this new flow.
struct AffinityView {
  xlb_affinity entry{};
  double age_s = 0;
  bool binds = false;
  std::string not_because;  // why it does not bind; empty when it does
};

struct MaglevView {
  bool affinity = false;  // xlb_hash_client, else xlb_hash_flow
  uint32_t hash = 0;
  uint32_t slot = 0;
  uint32_t backend_id = XLB_ID_NONE;  // the slot's
  TableShares table;
};

struct Explanation {
  ExplainQuery query;
  bool in_vip_filter = true;
  std::optional<xlb_service_key> service_key;  // the entry that matched
  std::optional<xlb_service> service;
  bool exact_match = false;
  std::optional<ConntrackView> conntrack;
  std::optional<SourceRangeView> source_range;
  std::optional<AffinityView> affinity;  // an AFFINITY service's new flow with a client entry
  std::optional<MaglevView> maglev;
  std::optional<xlb_config> config;  // the program's, when one is loaded
  std::map<uint32_t, xlb_backend> backends;
  // A new flow's backend depends on the program's hash seed and Maglev size, and no program
  // that uses these maps is loaded: nothing was decided.
  bool config_missing = false;
  Decision decision = Decision::kNotAService;
  uint32_t backend_id = XLB_ID_NONE;  // the backend that carries the packet, if any
};

// `config` is the loaded program's (nullptr: none is loaded; then only what needs no config
// is decided, and a new flow fails with a message). `now` is CLOCK_MONOTONIC in ns, the
// clock of bpf_ktime_get_coarse_ns().
Result<Explanation> ExplainPacket(const PinnedDatapath& dp, const xlb_config* config,
                                  const ExplainQuery& query, uint64_t now);

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_EXPLAIN_H
