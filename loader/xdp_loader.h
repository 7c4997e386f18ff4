// The XDP datapath from userspace: load the xlb_xdp skeleton, pin and re-use its maps,
// install Maglev tables, attach and detach XDP.
#ifndef XLB_LOADER_XDP_LOADER_H
#define XLB_LOADER_XDP_LOADER_H

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/fd.h"
#include "loader/maglev_tables.h"
#include "maps/typed_map.h"
#include "maps/xlb_abi.h"
#include "util/result.h"

struct xlb_xdp;    // generated skeleton (xlb_xdp.skel.h)
struct xlb_floor;  // generated skeleton (xlb_floor.skel.h)

namespace xlb {

// Every map xlb pins, by its pinned name.
inline constexpr std::array<const char*, 17> kPinnedMaps = {
    XLB_MAP_SERVICES,       XLB_MAP_BACKENDS,   XLB_MAP_MAGLEV,       XLB_MAP_CT,
    XLB_MAP_REASONS,        XLB_MAP_SVC_STATS,  XLB_MAP_BE_STATS,     XLB_MAP_VIP_FILTER,
    XLB_MAP_REPLY,          XLB_MAP_SNAT,       XLB_MAP_PEERS,        XLB_MAP_AFFINITY,
    XLB_MAP_AFFINITY_MATCH, XLB_MAP_SRC_RANGES, XLB_MAP_CT_HALF_OPEN, XLB_MAP_REPLY_HALF_OPEN,
    XLB_MAP_NEXTHOP,
};

// Pins an older xlb left under names this one no longer uses (a layout change bumps a map's
// _vN). Load() removes them once its own maps are pinned: nothing but the pin holds such a map
// after the old programs are replaced (a still-attached one keeps its maps until then), and
// the Maglev tables of xlb_maglev_v1 alone took 1.3 GB of kernel memory at 10,000 services.
inline constexpr std::array<const char*, 7> kRetiredPins = {
    "xlb_maglev_v1",  "xlb_nexthop_v1", "xlb_reasons_v1", "xlb_reasons_v2",
    "xlb_reasons_v3", "xlb_cthalf_v1",  "xlb_maglev_v2",
};

struct LoadOptions {
  // Directory on bpffs where the maps are pinned, and found again by the next agent so that
  // a restart keeps conntrack and tables. Empty: no pinning (hermetic tests).
  std::string pin_dir = XLB_PIN_DIR;
  // Runtime knobs, written into the program's rodata before load. config.maglev_size also
  // sizes every Maglev table (the inner map template): an odd prime, at most
  // XLB_MAGLEV_MAX_SIZE.
  xlb_config config = XLB_CONFIG_DEFAULTS;
  // Service ids (xlb_maglev_v3, xlb_svcstat_v1); the services hash holds 4 (VIP, port,
  // protocol) entries per id, as in bpf/lib/maps.h.
  uint32_t max_services = XLB_MAX_SERVICES;
  // Backend ids (xlb_backends_v1, xlb_bestat_v1).
  uint32_t max_backends = XLB_MAX_BACKENDS;
  // Conntrack entries (xlb_ct_v1, LRU).
  uint32_t max_ct_entries = XLB_CT_MAX;
  // Half-open TCP flows (xlb_cthalf_v2), and the TUNNEL entries of SYNs decapsulated here
  // (xlb_rplhalf_v1), LRUs: what a SYN flood churns through instead of the established flows.
  uint32_t max_half_open_entries = XLB_CT_HALF_OPEN_MAX;
};

enum class XdpMode { kNative, kGeneric };
std::string_view XdpModeName(XdpMode mode);  // "native" / "generic"

struct AttachOptions {
  // Fall back to generic (SKB) mode, with a warning, when the driver refuses native XDP.
  bool allow_generic = true;
  // Replace a program already attached in that mode (a previous agent's). Without it an
  // occupied interface is an error (EBUSY).
  bool replace = false;
};

// An XDP program attached to one interface; detached by the destructor unless released.
// Attachment is per network namespace: destroy or Detach() it in the namespace (thread)
// that attached it, since the ifindex means nothing elsewhere.
class XdpAttachment {
 public:
  XdpAttachment() = default;
  XdpAttachment(XdpAttachment&& other) noexcept = default;
  XdpAttachment& operator=(XdpAttachment&& other) noexcept;
  ~XdpAttachment();

  bool attached() const { return prog_fd_.valid(); }
  int ifindex() const { return ifindex_; }
  XdpMode mode() const { return mode_; }
  uint32_t prog_id() const { return prog_id_; }

  // Detaches now, but only if our program is still the one attached in our mode
  // (XDP_FLAGS_REPLACE), so a newer agent's program is never removed.
  Result<void> Detach();
  // Leaves the program attached when this object goes: the agent keeps the datapath
  // running across its own restarts.
  void release();

 private:
  friend Result<XdpAttachment> AttachXdp(int, int, const AttachOptions&);
  int ifindex_ = 0;
  XdpMode mode_ = XdpMode::kNative;
  uint32_t prog_id_ = 0;
  UniqueFd prog_fd_;  // our own reference: the expected program for XDP_FLAGS_REPLACE
};

// Native first, then (if allowed) generic. Logs the fallback.
Result<XdpAttachment> AttachXdp(int prog_fd, int ifindex, const AttachOptions& options = {});
Result<XdpAttachment> AttachXdp(int prog_fd, std::string_view ifname,
                                const AttachOptions& options = {});

// What is attached to an interface: a program id per mode, 0 where none.
struct XdpState {
  uint32_t drv_prog_id = 0;
  uint32_t skb_prog_id = 0;
  uint32_t hw_prog_id = 0;
};
Result<XdpState> QueryXdp(int ifindex);

// The name of a loaded program ("xlb_xdp"), by id. Reading a program by id needs CAP_SYS_ADMIN.
Result<std::string> ProgramName(uint32_t prog_id);

// Detaches the program attached to ifindex (whichever mode). With only_xlb, refuses (EPERM)
// a program that is not xlb's (its name is not "xlb_xdp"). ENOENT when nothing is attached.
Result<XdpMode> DetachXdp(int ifindex, bool only_xlb = true);

Result<int> IfIndex(std::string_view ifname);

// The xlb_xdp program and its maps, loaded. Maps stay alive as long as this object, a pin,
// or an attached program holds them.
class XdpDatapath {
 public:
  static Result<std::unique_ptr<XdpDatapath>> Load(const LoadOptions& options = {});
  ~XdpDatapath();
  XdpDatapath(const XdpDatapath&) = delete;
  XdpDatapath& operator=(const XdpDatapath&) = delete;

  int prog_fd() const;
  const LoadOptions& options() const { return options_; }
  uint32_t maglev_size() const { return options_.config.maglev_size; }
  // Maps that were found pinned and re-used rather than created.
  const std::vector<std::string>& reused_maps() const { return reused_maps_; }

  // Views of the maps; valid while this object lives.
  TypedMap<xlb_service_key, xlb_service> services() const;
  TypedMap<uint32_t, xlb_backend> backends() const;
  TypedMap<xlb_ct_key, xlb_ct_value> conntrack() const;
  // Reply-direction tuple -> reverse NAT (this node balanced the flow) or the origin node to
  // tunnel the answer back to (this node hosts the backend).
  TypedMap<xlb_ct_key, xlb_reply> replies() const;
  TypedMap<xlb_ct_key, xlb_snat> snat() const;
  // Half-open TCP flows (one entry each under the client's side: conntrack and REVNAT), and
  // the TUNNEL entries of SYNs decapsulated here, until the client's ACK moves them into
  // conntrack() and replies().
  TypedMap<xlb_half_key, xlb_half_open> half_open_conntrack() const;
  TypedMap<xlb_ct_key, xlb_reply> half_open_replies() const;
  // The nodes whose tunnel packets are decapsulated (outer source address -> peer).
  TypedMap<xlb_peer_key, xlb_peer> peers() const;
  // The next hop toward each tunnel peer, cached from bpf_fib_lookup by the datapath.
  TypedMap<xlb_nexthop_key, xlb_nexthop> nexthops() const;
  // The interfaces xlb_xdp may forward onto (ifindex -> ifindex; see XLB_MAP_FWD_DEV).
  TypedMap<uint32_t, uint32_t> forward_devices() const;
  // ClientIP affinity: (service, client) -> last backend (datapath-written), and the backends
  // that take new flows of each affine service (agent-written).
  TypedMap<xlb_affinity_key, xlb_affinity> affinity() const;
  TypedMap<xlb_affinity_match_key, uint8_t> affinity_match() const;
  // loadBalancerSourceRanges (LPM trie; the value is unused).
  TypedMap<xlb_src_range_key, uint8_t> source_ranges() const;
  TypedMap<uint32_t, uint64_t> vip_filter() const;
  PerCpuMap<xlb_counter> reasons() const;
  PerCpuMap<xlb_flow_counter> service_stats() const;
  PerCpuMap<xlb_flow_counter> backend_stats() const;
  int maglev_fd() const;                    // the outer ARRAY_OF_MAPS
  int map_fd(std::string_view name) const;  // by pinned name; -1 if unknown

  // Every service's Maglev table (see MaglevTables); valid while this object lives.
  MaglevTables& maglev_tables() { return maglev_tables_; }
  const MaglevTables& maglev_tables() const { return maglev_tables_; }
  // Shorthands for maglev_tables(): slots.size() must be maglev_size(); each slot is a
  // backend id.
  Result<void> InstallMaglevTable(uint32_t service_id, std::span<const uint32_t> slots) {
    return maglev_tables_.Install(service_id, slots);
  }
  Result<std::vector<uint32_t>> ReadMaglevTable(uint32_t service_id) const {
    return maglev_tables_.Read(service_id);
  }
  Result<void> RemoveMaglevTable(uint32_t service_id) { return maglev_tables_.Remove(service_id); }
  Result<uint32_t> MaglevTableId(uint32_t service_id) const {
    return maglev_tables_.TableId(service_id);
  }

  Result<XdpAttachment> Attach(int ifindex, const AttachOptions& options = {}) const;
  Result<XdpAttachment> Attach(std::string_view ifname, const AttachOptions& options = {}) const;

  // Removes this datapath's pins and then pin_dir if it is empty (uninstall, tests). The
  // maps themselves live on while this object or an attached program holds them.
  Result<void> Unpin();
  // Pins again every map whose pin is gone (removed under a running agent: without them the
  // next agent would start from empty maps and break every flow), the pin directory too;
  // the names pinned again, none when all were there or nothing is pinned.
  Result<std::vector<std::string>> Repin() const;

 private:
  XdpDatapath(xlb_xdp* skel, LoadOptions options);
  static Result<std::unique_ptr<XdpDatapath>> LoadUnexplained(const LoadOptions& options);

  xlb_xdp* skel_;
  LoadOptions options_;
  std::vector<std::string> reused_maps_;
  MaglevTables maglev_tables_;
};

// Removes the pins of every xlb map (and of xlb_sock's links, which detaches them) under
// pin_dir, then pin_dir if it is empty. Pins that are already gone are fine. Needs nothing
// loaded (xlbctl unload).
Result<void> RemovePins(const std::string& pin_dir);

// Pins `fd` (a map or a link this process holds) at pin_dir/name when nothing is there, making
// pin_dir first if it is gone: true when it pinned.
Result<bool> RepinIfGone(const std::string& pin_dir, const char* name, int fd);

// Opens one pinned xlb map (bpf_obj_get).
Result<UniqueFd> OpenPinnedMap(const std::string& pin_dir, const char* name);

// The trivial XDP program (XDP_PASS): the benchmarks' floor and a harmless test subject.
class XdpFloor {
 public:
  static Result<std::unique_ptr<XdpFloor>> Load();
  ~XdpFloor();
  XdpFloor(const XdpFloor&) = delete;
  XdpFloor& operator=(const XdpFloor&) = delete;

  int prog_fd() const;

 private:
  explicit XdpFloor(xlb_floor* skel) : skel_(skel) {}
  xlb_floor* skel_;
};

}  // namespace xlb

#endif  // XLB_LOADER_XDP_LOADER_H
