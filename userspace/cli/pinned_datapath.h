// Read-only access to a datapath through its pins: the maps under a pin dir, the programs
// that use them (found by map id, not by name, so another xlb on the same host is not
// mistaken for ours), their runtime config (the rodata's xlb_cfg) and their attachments.
// Nothing here writes to a map.
#ifndef XLB_USERSPACE_CLI_PINNED_DATAPATH_H
#define XLB_USERSPACE_CLI_PINNED_DATAPATH_H

#include <linux/bpf.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "loader/fd.h"
#include "loader/maglev_tables.h"
#include "maps/xlb_abi.h"
#include "util/result.h"

namespace xlb::cli {

// A program that uses our services map, with the config in its rodata.
struct ProgramConfig {
  uint32_t prog_id = 0;
  std::string name;                  // "xlb_xdp", "xlb_tc"
  std::optional<xlb_config> config;  // nullopt when its rodata has no readable xlb_cfg
  std::string rodata_map;
};

// Where one of our programs is attached, in this network namespace.
struct Attachment {
  std::string ifname;
  int ifindex = 0;
  std::string hook;  // "xdp/native", "xdp/generic", "xdp/offload", "tc/ingress"
  uint32_t prog_id = 0;
};

struct PinnedMap {
  std::string name;  // pinned name: "xlb_services_v1"
  std::string path;
  UniqueFd fd;        // invalid when not pinned
  std::string error;  // why not, when not pinned
  bpf_map_info info{};
};

// What every command says when the pins it reads are not there: "xlb is not loaded (no pins
// under DIR...)", or naming the one pin that is missing.
std::string NotLoaded(const std::string& pin_dir, const char* missing = nullptr);

class PinnedDatapath {
 public:
  // Opens every map of kPinnedMaps. With `require_all`, a missing pin is an error that names
  // its path and says the datapath is not loaded; without, missing maps are only recorded
  // (status), but a pin dir without any of them still is an error.
  static Result<PinnedDatapath> Open(const std::string& pin_dir, bool require_all = true);

  const std::string& pin_dir() const { return pin_dir_; }
  const std::vector<PinnedMap>& maps() const { return maps_; }
  const PinnedMap* Find(const char* name) const;  // nullptr when unknown or not pinned
  int fd(const char* name) const;                 // -1 when not pinned

  // Every entry of the services hash, in key order.
  Result<std::vector<std::pair<xlb_service_key, xlb_service>>> Services() const;
  // Every backend slot that was ever written (not all zero), valid or not, by id.
  Result<std::map<uint32_t, xlb_backend>> Backends() const;
  // The Maglev tables, read-only; empty (no outer map) when xlb_maglev_v3 is not pinned.
  MaglevTables Tables() const;
  // The Maglev table of a service: its slots (backend ids). ENOENT when none is installed.
  Result<std::vector<uint32_t>> Table(uint32_t service_id) const;
  // Conntrack and reply entries: the established flows' first, then the half-open flows'.
  Result<std::vector<std::pair<xlb_ct_key, xlb_ct_value>>> Conntrack() const;
  Result<std::vector<std::pair<xlb_ct_key, xlb_reply>>> Replies() const;
  Result<std::vector<std::pair<xlb_ct_key, xlb_snat>>> Snat() const;
  // Per-CPU counters, summed.
  Result<xlb_flow_counter> ServiceStats(uint32_t service_id) const;
  Result<xlb_flow_counter> BackendStats(uint32_t backend_id) const;
  Result<std::vector<xlb_counter>> Reasons() const;  // indexed by enum xlb_reason

  // The loaded programs whose maps include our services map, by id.
  Result<std::vector<ProgramConfig>> Programs() const;
  // The config to explain selection with: an attached xlb_xdp's, else the newest xlb_xdp's,
  // else any program's. nullopt when no program of ours is loaded.
  static std::optional<ProgramConfig> ConfigOf(const std::vector<ProgramConfig>& programs,
                                               const std::vector<Attachment>& attachments);

 private:
  std::string pin_dir_;
  std::vector<PinnedMap> maps_;
};

// The XDP and TC attachments of `programs` on every interface of this network namespace
// (netlink queries; an interface that cannot be queried is skipped).
std::vector<Attachment> FindAttachments(const std::vector<ProgramConfig>& programs);

// bpf_ktime_get_ns()/bpf_ktime_get_coarse_ns() now, to age conntrack entries by.
uint64_t MonotonicNowNs();

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_PINNED_DATAPATH_H
