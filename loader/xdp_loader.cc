#include "loader/xdp_loader.h"

// clang-format off: the skeleton names struct xlb_config without defining it
#include "maps/xlb_abi.h"
#include "xlb_floor.skel.h"
#include "xlb_xdp.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "loader/libbpf_opts.h"
#include "loader/log.h"
#include "loader/sock_loader.h"

namespace xlb {
namespace {

bool IsPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

std::string PinPath(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

Result<void> Validate(const LoadOptions& o) {
  uint32_t m = o.config.maglev_size;
  if (m > XLB_MAGLEV_MAX_SIZE || m < 3 || !IsPrime(m)) {
    return Error{EINVAL, "maglev_size " + std::to_string(m) +
                             " must be an odd prime <= " + std::to_string(XLB_MAGLEV_MAX_SIZE)};
  }
  if (o.max_services < 2 || o.max_backends < 2 || o.max_ct_entries < 1 ||
      o.max_half_open_entries < 1) {
    return Error{EINVAL,
                 "max_services and max_backends must be >= 2 (id 0 is never used), "
                 "max_ct_entries and max_half_open_entries >= 1"};
  }
  if (o.max_services > UINT32_MAX / 4) {
    return Error{EINVAL, "max_services " + std::to_string(o.max_services) + " is too large"};
  }
  return {};
}

// mkdir -p, then insist on bpffs: anything else cannot hold pins, and inside
// `ip netns exec` /sys is a fresh sysfs that hides the real /sys/fs/bpf.
Result<void> PreparePinDir(const std::string& dir) {
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') {
      continue;
    }
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) < 0 && errno != EEXIST) {
      int err = errno;
      return Error::FromErrno(err, "mkdir " + prefix);
    }
  }
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) < 0) {
    int err = errno;
    return Error::FromErrno(err, "statfs " + dir);
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    return Error{ENOTSUP, "pin dir " + dir +
                              " is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf; "
                              "`ip netns exec` hides it, use nsenter --net)"};
  }
  return {};
}

std::string Mismatch(const char* field, uint32_t have, uint32_t want) {
  return std::string(field) + " " + std::to_string(have) + " (this build: " + std::to_string(want) +
         ")";
}

// The checks libbpf makes before re-using a pin (type, key, value, max_entries, flags),
// made first so that a mismatch names the map and its pin instead of a bare EINVAL.
// Returns whether the pin exists.
Result<bool> CheckPinnedMap(bpf_map* map, uint32_t maglev_size) {
  const char* path = bpf_map__pin_path(map);
  int fd = bpf_obj_get(path);
  if (fd == -ENOENT) {
    return false;
  }
  if (fd < 0) {
    return Error::FromRet(fd, std::string("open pinned map ") + bpf_map__name(map) + " at " + path);
  }
  UniqueFd pin(fd);
  auto info = MapView(pin.get(), bpf_map__name(map)).Info();
  if (!info.ok()) {
    return std::move(info).take_error();
  }
  std::vector<std::string> diffs;
  if (info->type != bpf_map__type(map)) {
    diffs.push_back(Mismatch("type", info->type, bpf_map__type(map)));
  }
  if (info->key_size != bpf_map__key_size(map)) {
    diffs.push_back(Mismatch("key_size", info->key_size, bpf_map__key_size(map)));
  }
  if (info->value_size != bpf_map__value_size(map)) {
    diffs.push_back(Mismatch("value_size", info->value_size, bpf_map__value_size(map)));
  }
  if (info->max_entries != bpf_map__max_entries(map)) {
    diffs.push_back(Mismatch("max_entries", info->max_entries, bpf_map__max_entries(map)));
  }
  if (info->map_flags != bpf_map__map_flags(map)) {
    diffs.push_back(Mismatch("map_flags", info->map_flags, bpf_map__map_flags(map)));
  }
  // The outer Maglev map fixed its inner template (and so the table size) when it was
  // created; the kernel would refuse every new table of another size. The template is not
  // visible, but any installed table shows it.
  if (diffs.empty() && info->type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
    for (uint32_t key = 0; key < info->max_entries; ++key) {
      uint32_t inner_id = 0;
      if (bpf_map_lookup_elem(pin.get(), &key, &inner_id) < 0) {
        continue;
      }
      UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
      if (!inner.valid()) {
        continue;
      }
      // Another element count is refused by the kernel; another size in as many elements
      // would leave the datapath picking slots of tables built for the old size.
      auto size = MaglevTables::SizeOf(inner.get());
      if (size.ok() && *size != maglev_size) {
        diffs.push_back(Mismatch("Maglev table size", *size, maglev_size));
      }
      break;
    }
  }
  if (!diffs.empty()) {
    std::string what = std::string("pinned map ") + bpf_map__name(map) + " at " + path +
                       " does not match this datapath:";
    for (const auto& d : diffs) {
      what += " " + d + ";";
    }
    what +=
        " a layout change must bump the map's _vN name; if the old datapath is gone, remove the "
        "pins (xlbctl unload) or load with the old sizes";
    return Error{EINVAL, std::move(what)};
  }
  return true;
}

// The program attached in `mode`, by id, as an fd we own.
Result<UniqueFd> ProgFdById(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    return Error::FromRet(fd, "bpf_prog_get_fd_by_id(" + std::to_string(id) + ")");
  }
  return UniqueFd(fd);
}

Result<bpf_prog_info> ProgInfo(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_obj_get_info_by_fd(prog)");
  }
  return info;
}

uint32_t ModeFlag(XdpMode mode) {
  return mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

std::string IfName(int ifindex) {
  char buf[IF_NAMESIZE] = {};
  if (if_indextoname(static_cast<unsigned>(ifindex), buf) == nullptr) {
    return "ifindex " + std::to_string(ifindex);
  }
  return std::string(buf) + " (ifindex " + std::to_string(ifindex) + ")";
}

}  // namespace

// ---- XDP attach ------------------------------------------------------------------------

std::string_view XdpModeName(XdpMode mode) {
  return mode == XdpMode::kNative ? "native" : "generic";
}

Result<int> IfIndex(std::string_view ifname) {
  std::string name(ifname);
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    int err = errno;
    return Error::FromErrno(err, "interface " + name);
  }
  return static_cast<int>(idx);
}

Result<XdpAttachment> AttachXdp(int prog_fd, int ifindex, const AttachOptions& options) {
  const uint32_t base = options.replace ? 0 : XDP_FLAGS_UPDATE_IF_NOEXIST;
  XdpMode mode = XdpMode::kNative;
  int ret = bpf_xdp_attach(ifindex, prog_fd, base | XDP_FLAGS_DRV_MODE, nullptr);
  if (ret < 0) {
    Error native = Error::FromRet(ret, "attach native XDP to " + IfName(ifindex));
    // EBUSY: a program is already there; generic mode would not change that.
    if (!options.allow_generic || ret == -EBUSY) {
      return native;
    }
    Log(LogLevel::kWarn, native.ToString() + "; falling back to generic (SKB) mode");
    mode = XdpMode::kGeneric;
    ret = bpf_xdp_attach(ifindex, prog_fd, base | XDP_FLAGS_SKB_MODE, nullptr);
    if (ret < 0) {
      return Error::FromRet(ret, "attach generic XDP to " + IfName(ifindex));
    }
  }
  XdpAttachment a;
  a.ifindex_ = ifindex;
  a.mode_ = mode;
  a.prog_fd_.reset(::fcntl(prog_fd, F_DUPFD_CLOEXEC, 0));
  if (!a.prog_fd_.valid()) {
    int err = errno;
    bpf_xdp_detach(ifindex, ModeFlag(mode), nullptr);
    return Error::FromErrno(err, "dup program fd");
  }
  auto info = ProgInfo(prog_fd);
  a.prog_id_ = info.ok() ? info->id : 0;
  Log(LogLevel::kInfo, "attached XDP program " + std::to_string(a.prog_id_) + " to " +
                           IfName(ifindex) + " in " + std::string(XdpModeName(mode)) + " mode");
  return a;
}

Result<XdpAttachment> AttachXdp(int prog_fd, std::string_view ifname,
                                const AttachOptions& options) {
  XLB_ASSIGN_OR_RETURN(auto idx, IfIndex(ifname));
  return AttachXdp(prog_fd, idx, options);
}

XdpAttachment& XdpAttachment::operator=(XdpAttachment&& other) noexcept {
  if (this != &other) {
    if (attached()) {
      (void)Detach();
    }
    ifindex_ = other.ifindex_;
    mode_ = other.mode_;
    prog_id_ = other.prog_id_;
    prog_fd_ = std::move(other.prog_fd_);
  }
  return *this;
}

XdpAttachment::~XdpAttachment() {
  if (attached()) {
    auto r = Detach();
    if (!r.ok()) {
      Log(LogLevel::kWarn, r.error().ToString());
    }
  }
}

Result<void> XdpAttachment::Detach() {
  if (!attached()) {
    return {};
  }
  UniqueFd prog = std::move(prog_fd_);
  bpf_xdp_attach_opts opts{};
  InitLibbpfOpts(opts);
  opts.old_prog_fd = prog.get();
  int ret = bpf_xdp_detach(ifindex_, ModeFlag(mode_), &opts);
  if (ret < 0) {
    return Error::FromRet(ret, "detach XDP program " + std::to_string(prog_id_) + " from " +
                                   IfName(ifindex_) +
                                   (ret == -EEXIST ? " (another program replaced it)" : ""));
  }
  return {};
}

void XdpAttachment::release() {
  prog_fd_.reset();
}

Result<XdpState> QueryXdp(int ifindex) {
  bpf_xdp_query_opts opts{};
  InitLibbpfOpts(opts);
  int ret = bpf_xdp_query(ifindex, 0, &opts);
  if (ret < 0) {
    return Error::FromRet(ret, "query XDP on " + IfName(ifindex));
  }
  return XdpState{opts.drv_prog_id, opts.skb_prog_id, opts.hw_prog_id};
}

Result<std::string> ProgramName(uint32_t prog_id) {
  XLB_ASSIGN_OR_RETURN(auto prog, ProgFdById(prog_id));
  XLB_ASSIGN_OR_RETURN(auto info, ProgInfo(prog.get()));
  return std::string(info.name);
}

Result<XdpMode> DetachXdp(int ifindex, bool only_xlb) {
  XLB_ASSIGN_OR_RETURN(auto state, QueryXdp(ifindex));
  XdpMode mode = XdpMode::kNative;
  uint32_t id = state.drv_prog_id;
  if (id == 0) {
    mode = XdpMode::kGeneric;
    id = state.skb_prog_id;
  }
  if (id == 0) {
    return Error{ENOENT, "no XDP program attached to " + IfName(ifindex)};
  }
  XLB_ASSIGN_OR_RETURN(auto prog, ProgFdById(id));
  if (only_xlb) {
    XLB_ASSIGN_OR_RETURN(auto info, ProgInfo(prog.get()));
    if (std::string_view(info.name) != "xlb_xdp") {
      return Error{EPERM, "XDP program " + std::to_string(id) + " (" + info.name + ") on " +
                              IfName(ifindex) + " is not xlb's"};
    }
  }
  bpf_xdp_attach_opts opts{};
  InitLibbpfOpts(opts);
  opts.old_prog_fd = prog.get();
  int ret = bpf_xdp_detach(ifindex, ModeFlag(mode), &opts);
  if (ret < 0) {
    return Error::FromRet(ret,
                          "detach XDP program " + std::to_string(id) + " from " + IfName(ifindex));
  }
  return mode;
}

// ---- the datapath ----------------------------------------------------------------------

XdpDatapath::XdpDatapath(xlb_xdp* skel, LoadOptions options)
    : skel_(skel), options_(std::move(options)) {}

XdpDatapath::~XdpDatapath() {
  xlb_xdp__destroy(skel_);
}

Result<std::unique_ptr<XdpDatapath>> XdpDatapath::Load(const LoadOptions& options) {
  auto dp = LoadUnexplained(options);
  // EPERM: no CAP_BPF (or no CAP_NET_ADMIN for XDP programs). EACCES: the verifier refused
  // the program, which without CAP_PERFMON it does for the packet-pointer arithmetic xlb
  // needs; with it, the verifier log (libbpf logged it) says why.
  if (!dp.ok() && (dp.error().err == EPERM || dp.error().err == EACCES)) {
    Error e = std::move(dp).take_error();
    e.what += " (loading BPF needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON";
    e.what += e.err == EACCES ? "; without CAP_PERFMON the verifier refuses xlb's programs)" : ")";
    return e;
  }
  return dp;
}

Result<std::unique_ptr<XdpDatapath>> XdpDatapath::LoadUnexplained(const LoadOptions& options) {
  XLB_TRY(Validate(options));
  RouteLibbpfLogs();

  xlb_xdp* raw = xlb_xdp__open();
  if (raw == nullptr) {
    int err = errno;
    return Error::FromErrno(err, "open xlb_xdp skeleton");
  }
  // Owned from here on, so every early return frees the skeleton.
  std::unique_ptr<XdpDatapath> dp(new XdpDatapath(raw, options));
  xlb_xdp* skel = dp->skel_;

  skel->rodata->xlb_cfg = options.config;

  struct Size {
    bpf_map* map;
    uint32_t entries;
  };
  const Size sizes[] = {
      {skel->maps.xlb_services_v1, options.max_services * 4},
      {skel->maps.xlb_maglev_v3, options.max_services},
      {skel->maps.xlb_svcstat_v1, options.max_services},
      {skel->maps.xlb_backends_v1, options.max_backends},
      {skel->maps.xlb_bestat_v1, options.max_backends},
      {skel->maps.xlb_ct_v1, options.max_ct_entries},
      {skel->maps.xlb_reply_v1, options.max_ct_entries},
      {skel->maps.xlb_snat_v1, options.max_ct_entries},
      {skel->maps.xlb_cthalf_v2, options.max_half_open_entries},
      {skel->maps.xlb_rplhalf_v1, options.max_half_open_entries},
  };
  for (const Size& s : sizes) {
    int ret = bpf_map__set_max_entries(s.map, s.entries);
    if (ret < 0) {
      return Error::FromRet(ret,
                            std::string("bpf_map__set_max_entries(") + bpf_map__name(s.map) + ")");
    }
  }

  // The Maglev table size is fixed by the outer map's inner template. libbpf 1.1 cannot
  // resize the template it parsed from BTF: bpf_map__set_max_entries() on
  // bpf_map__inner_map() dereferences the template's NULL obj pointer and crashes. So the
  // template is a map we create, of the same shape as every table MaglevTables makes;
  // the kernel copies its shape when it creates the outer map, after which ours can go.
  auto tmpl = MaglevTables::Create(options.config.maglev_size, "xlb_mag_tmpl");
  if (!tmpl.ok()) {
    return std::move(tmpl).take_error();
  }
  if (int ret = bpf_map__set_inner_map_fd(skel->maps.xlb_maglev_v3, tmpl->get()); ret < 0) {
    return Error::FromRet(ret, "bpf_map__set_inner_map_fd(" XLB_MAP_MAGLEV ")");
  }

  // Maps declared LIBBPF_PIN_BY_NAME got a default path (/sys/fs/bpf/NAME) at open.
  // Point them into pin_dir, or clear the path: libbpf then neither re-uses nor pins.
  if (!options.pin_dir.empty()) {
    XLB_TRY(PreparePinDir(options.pin_dir));
  }
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map) || bpf_map__pin_path(map) == nullptr) {
      continue;
    }
    std::string path = PinPath(options.pin_dir, bpf_map__name(map));
    int ret = bpf_map__set_pin_path(map, options.pin_dir.empty() ? nullptr : path.c_str());
    if (ret < 0) {
      return Error::FromRet(ret, std::string("bpf_map__set_pin_path(") + bpf_map__name(map) + ")");
    }
    if (!options.pin_dir.empty()) {
      auto exists = CheckPinnedMap(map, options.config.maglev_size);
      if (!exists.ok()) {
        return std::move(exists).take_error();
      }
      if (*exists) {
        dp->reused_maps_.emplace_back(bpf_map__name(map));
      }
    }
  }

  int ret = xlb_xdp__load(skel);
  if (ret < 0) {
    return Error::FromRet(ret, "load xlb_xdp (program and maps; libbpf logged why)");
  }
  dp->maglev_tables_ = MaglevTables(dp->maglev_fd(), options.config.maglev_size,
                                    options.max_services);
  if (!options.pin_dir.empty()) {
    Log(LogLevel::kInfo,
        "maps pinned under " + options.pin_dir + " (" + std::to_string(dp->reused_maps_.size()) +
            " re-used, " + std::to_string(kPinnedMaps.size() - dp->reused_maps_.size()) + " new)");
    for (const char* name : kRetiredPins) {
      const std::string path = PinPath(options.pin_dir, name);
      if (::unlink(path.c_str()) == 0) {
        Log(LogLevel::kInfo, "removed the pin of an older xlb's map " + path);
      } else if (errno != ENOENT) {
        const int err = errno;
        Log(LogLevel::kWarn,
            "could not remove the pin of an older xlb's map " + path + ": " + std::strerror(err));
      }
    }
  }
  return dp;
}

int XdpDatapath::prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_xdp);
}

TypedMap<xlb_service_key, xlb_service> XdpDatapath::services() const {
  return {bpf_map__fd(skel_->maps.xlb_services_v1), XLB_MAP_SERVICES};
}
TypedMap<uint32_t, xlb_backend> XdpDatapath::backends() const {
  return {bpf_map__fd(skel_->maps.xlb_backends_v1), XLB_MAP_BACKENDS};
}
TypedMap<xlb_ct_key, xlb_ct_value> XdpDatapath::conntrack() const {
  return {bpf_map__fd(skel_->maps.xlb_ct_v1), XLB_MAP_CT};
}
TypedMap<xlb_ct_key, xlb_reply> XdpDatapath::replies() const {
  return {bpf_map__fd(skel_->maps.xlb_reply_v1), XLB_MAP_REPLY};
}
TypedMap<xlb_ct_key, xlb_snat> XdpDatapath::snat() const {
  return {bpf_map__fd(skel_->maps.xlb_snat_v1), XLB_MAP_SNAT};
}
TypedMap<xlb_half_key, xlb_half_open> XdpDatapath::half_open_conntrack() const {
  return {bpf_map__fd(skel_->maps.xlb_cthalf_v2), XLB_MAP_CT_HALF_OPEN};
}
TypedMap<xlb_ct_key, xlb_reply> XdpDatapath::half_open_replies() const {
  return {bpf_map__fd(skel_->maps.xlb_rplhalf_v1), XLB_MAP_REPLY_HALF_OPEN};
}
TypedMap<xlb_peer_key, xlb_peer> XdpDatapath::peers() const {
  return {bpf_map__fd(skel_->maps.xlb_peers_v1), XLB_MAP_PEERS};
}
TypedMap<xlb_nexthop_key, xlb_nexthop> XdpDatapath::nexthops() const {
  return {bpf_map__fd(skel_->maps.xlb_nexthop_v2), XLB_MAP_NEXTHOP};
}
TypedMap<uint32_t, uint32_t> XdpDatapath::forward_devices() const {
  return {bpf_map__fd(skel_->maps.xlb_fwddev), XLB_MAP_FWD_DEV};
}
TypedMap<xlb_affinity_key, xlb_affinity> XdpDatapath::affinity() const {
  return {bpf_map__fd(skel_->maps.xlb_affinity_v1), XLB_MAP_AFFINITY};
}
TypedMap<xlb_affinity_match_key, uint8_t> XdpDatapath::affinity_match() const {
  return {bpf_map__fd(skel_->maps.xlb_affmatch_v1), XLB_MAP_AFFINITY_MATCH};
}
TypedMap<xlb_src_range_key, uint8_t> XdpDatapath::source_ranges() const {
  return {bpf_map__fd(skel_->maps.xlb_srcrange_v1), XLB_MAP_SRC_RANGES};
}
TypedMap<uint32_t, uint64_t> XdpDatapath::vip_filter() const {
  return {bpf_map__fd(skel_->maps.xlb_vipfilt_v1), XLB_MAP_VIP_FILTER};
}
PerCpuMap<xlb_counter> XdpDatapath::reasons() const {
  return {bpf_map__fd(skel_->maps.xlb_reasons_v4), XLB_MAP_REASONS};
}
PerCpuMap<xlb_flow_counter> XdpDatapath::service_stats() const {
  return {bpf_map__fd(skel_->maps.xlb_svcstat_v1), XLB_MAP_SVC_STATS};
}
PerCpuMap<xlb_flow_counter> XdpDatapath::backend_stats() const {
  return {bpf_map__fd(skel_->maps.xlb_bestat_v1), XLB_MAP_BE_STATS};
}
int XdpDatapath::maglev_fd() const {
  return bpf_map__fd(skel_->maps.xlb_maglev_v3);
}

int XdpDatapath::map_fd(std::string_view name) const {
  std::string n(name);
  bpf_map* map = bpf_object__find_map_by_name(skel_->obj, n.c_str());
  return map != nullptr ? bpf_map__fd(map) : -1;
}

Result<XdpAttachment> XdpDatapath::Attach(int ifindex, const AttachOptions& options) const {
  return AttachXdp(prog_fd(), ifindex, options);
}

Result<XdpAttachment> XdpDatapath::Attach(std::string_view ifname,
                                          const AttachOptions& options) const {
  return AttachXdp(prog_fd(), ifname, options);
}

Result<void> XdpDatapath::Unpin() {
  if (options_.pin_dir.empty()) {
    return {};
  }
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__pin_path(map) == nullptr) {
      continue;
    }
    int ret = bpf_map__unpin(map, nullptr);
    if (ret < 0 && ret != -ENOENT) {
      return Error::FromRet(ret, std::string("unpin ") + bpf_map__pin_path(map));
    }
  }
  return RemovePins(options_.pin_dir);
}

Result<std::vector<std::string>> XdpDatapath::Repin() const {
  std::vector<std::string> pinned;
  if (options_.pin_dir.empty()) {
    return pinned;
  }
  for (const char* name : kPinnedMaps) {
    const int fd = map_fd(name);
    if (fd < 0) {
      continue;
    }
    auto done = RepinIfGone(options_.pin_dir, name, fd);
    if (!done.ok()) {
      return std::move(done).take_error();
    }
    if (*done) {
      pinned.emplace_back(name);
    }
  }
  return pinned;
}

Result<bool> RepinIfGone(const std::string& pin_dir, const char* name, int fd) {
  const std::string path = PinPath(pin_dir, name);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    return false;
  }
  if (const int err = errno; err != ENOENT) {
    return Error::FromErrno(err, "stat " + path);
  }
  XLB_TRY(PreparePinDir(pin_dir));  // removed whole (rm -r): made again, still on bpffs
  if (int ret = bpf_obj_pin(fd, path.c_str()); ret < 0) {
    return Error::FromRet(ret, "pin " + path);
  }
  return true;
}

Result<void> RemovePins(const std::string& pin_dir) {
  if (pin_dir.empty()) {
    return Error{EINVAL, "RemovePins: empty pin dir"};
  }
  auto unlink_all = [&pin_dir](const auto& names) -> Result<void> {
    for (const char* name : names) {
      std::string path = PinPath(pin_dir, name);
      if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
        int err = errno;
        return Error::FromErrno(err, "unlink " + path);
      }
    }
    return {};
  };
  XLB_TRY(unlink_all(kPinnedMaps));
  XLB_TRY(unlink_all(kSockLbPins));  // xlb_sock's links detach when their pins are gone
  // Left in place when something else lives there, or when it is bpffs's own mount point.
  if (::rmdir(pin_dir.c_str()) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EBUSY) {
    int err = errno;
    return Error::FromErrno(err, "rmdir " + pin_dir);
  }
  return {};
}

Result<UniqueFd> OpenPinnedMap(const std::string& pin_dir, const char* name) {
  std::string path = PinPath(pin_dir, name);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return Error::FromRet(fd, "open pinned map " + path);
  }
  return UniqueFd(fd);
}

// ---- the floor program -----------------------------------------------------------------

Result<std::unique_ptr<XdpFloor>> XdpFloor::Load() {
  RouteLibbpfLogs();
  xlb_floor* skel = xlb_floor__open_and_load();
  if (skel == nullptr) {
    int err = errno;
    return Error::FromErrno(err, "load xlb_floor");
  }
  return std::unique_ptr<XdpFloor>(new XdpFloor(skel));
}

XdpFloor::~XdpFloor() {
  xlb_floor__destroy(skel_);
}

int XdpFloor::prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_floor);
}

}  // namespace xlb
