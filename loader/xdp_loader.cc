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
#include <numeric>
#include <string>
#include <utility>

#include "loader/libbpf_opts.h"
#include "loader/log.h"

namespace xlb {
namespace {

// The kernel's ENOTSUPP: the map type has no batch operations.
constexpr int kENOTSUPP = 524;

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

// One service's Maglev table: an ARRAY of `size` backend ids, the shape of the inner
// template in bpf/lib/maps.h (the kernel compares type, key, value, max_entries and flags
// when a table is put into xlb_maglev_v1). BPF_F_MMAPABLE: userspace fills a new table with
// one memcpy into a mapping of it (BpfMapStore) instead of an update per slot.
Result<UniqueFd> CreateMaglevTableMap(uint32_t size, const std::string& name) {
  bpf_map_create_opts opts{};
  InitLibbpfOpts(opts);
  opts.map_flags = BPF_F_MMAPABLE;
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), sizeof(uint32_t),
                          sizeof(xlb_maglev_slot), size, &opts);
  if (fd < 0) {
    return Error::FromRet(fd, "bpf_map_create(" + name + ", " + std::to_string(size) + " slots)");
  }
  return UniqueFd(fd);
}

Result<void> Validate(const LoadOptions& o) {
  uint32_t m = o.config.maglev_size;
  if (m > XLB_MAGLEV_MAX_SIZE || !IsPrime(m)) {
    return Error{EINVAL, "maglev_size " + std::to_string(m) +
                             " must be a prime <= " + std::to_string(XLB_MAGLEV_MAX_SIZE)};
  }
  if (o.max_services < 2 || o.max_backends < 2 || o.max_ct_entries < 1) {
    return Error{EINVAL,
                 "max_services and max_backends must be >= 2 (id 0 is never used), "
                 "max_ct_entries >= 1"};
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
      auto inner_info = MapView(inner.get(), "inner").Info();
      if (inner_info.ok() && inner_info->max_entries != maglev_size) {
        diffs.push_back(Mismatch("Maglev table size", inner_info->max_entries, maglev_size));
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
    : skel_(skel), options_(std::move(options)), slot_keys_(options_.config.maglev_size) {
  std::iota(slot_keys_.begin(), slot_keys_.end(), 0U);
}

XdpDatapath::~XdpDatapath() {
  xlb_xdp__destroy(skel_);
}

Result<std::unique_ptr<XdpDatapath>> XdpDatapath::Load(const LoadOptions& options) {
  auto dp = LoadUnexplained(options);
  if (!dp.ok() && dp.error().err == EPERM) {
    Error e = std::move(dp).take_error();
    e.what += " (loading BPF needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)";
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
      {skel->maps.xlb_maglev_v1, options.max_services},
      {skel->maps.xlb_svcstat_v1, options.max_services},
      {skel->maps.xlb_backends_v1, options.max_backends},
      {skel->maps.xlb_bestat_v1, options.max_backends},
      {skel->maps.xlb_ct_v1, options.max_ct_entries},
      {skel->maps.xlb_reply_v1, options.max_ct_entries},
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
  // template is a map we create, of the same shape as every table InstallMaglevTable makes;
  // the kernel copies its shape when it creates the outer map, after which ours can go.
  auto tmpl = CreateMaglevTableMap(options.config.maglev_size, "xlb_mag_tmpl");
  if (!tmpl.ok()) {
    return std::move(tmpl).take_error();
  }
  if (int ret = bpf_map__set_inner_map_fd(skel->maps.xlb_maglev_v1, tmpl->get()); ret < 0) {
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
  if (!options.pin_dir.empty()) {
    Log(LogLevel::kInfo,
        "maps pinned under " + options.pin_dir + " (" + std::to_string(dp->reused_maps_.size()) +
            " re-used, " + std::to_string(kPinnedMaps.size() - dp->reused_maps_.size()) + " new)");
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
TypedMap<uint32_t, uint64_t> XdpDatapath::vip_filter() const {
  return {bpf_map__fd(skel_->maps.xlb_vipfilt_v1), XLB_MAP_VIP_FILTER};
}
PerCpuMap<xlb_counter> XdpDatapath::reasons() const {
  return {bpf_map__fd(skel_->maps.xlb_reasons_v1), XLB_MAP_REASONS};
}
PerCpuMap<xlb_flow_counter> XdpDatapath::service_stats() const {
  return {bpf_map__fd(skel_->maps.xlb_svcstat_v1), XLB_MAP_SVC_STATS};
}
PerCpuMap<xlb_flow_counter> XdpDatapath::backend_stats() const {
  return {bpf_map__fd(skel_->maps.xlb_bestat_v1), XLB_MAP_BE_STATS};
}
int XdpDatapath::maglev_fd() const {
  return bpf_map__fd(skel_->maps.xlb_maglev_v1);
}

int XdpDatapath::map_fd(std::string_view name) const {
  std::string n(name);
  bpf_map* map = bpf_object__find_map_by_name(skel_->obj, n.c_str());
  return map != nullptr ? bpf_map__fd(map) : -1;
}

Result<void> XdpDatapath::InstallMaglevTable(uint32_t service_id, std::span<const uint32_t> slots) {
  const std::string ctx = "Maglev table of service " + std::to_string(service_id);
  const uint32_t size = maglev_size();
  if (service_id == XLB_ID_NONE || service_id >= options_.max_services) {
    return Error{EINVAL,
                 ctx + ": service id outside 1.." + std::to_string(options_.max_services - 1)};
  }
  if (slots.size() != size) {
    return Error{EINVAL, ctx + ": " + std::to_string(slots.size()) + " slots, maglev_size is " +
                             std::to_string(size)};
  }

  auto created = CreateMaglevTableMap(size, "xlb_mag_" + std::to_string(service_id));
  if (!created.ok()) {
    return std::move(created).take_error().Within(ctx);
  }
  UniqueFd inner = std::move(*created);

  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  batch.elem_flags = BPF_ANY;
  uint32_t count = size;
  int ret = bpf_map_update_batch(inner.get(), slot_keys_.data(), slots.data(), &count, &batch);
  if (ret == -kENOTSUPP || ret == -EOPNOTSUPP) {
    for (uint32_t i = 0; i < size; ++i) {
      ret = bpf_map_update_elem(inner.get(), &slot_keys_[i], &slots[i], BPF_ANY);
      if (ret < 0) {
        return Error::FromRet(ret, ctx + ": bpf_map_update_elem slot " + std::to_string(i));
      }
    }
  } else if (ret < 0) {
    return Error::FromRet(ret, ctx + ": bpf_map_update_batch (" + std::to_string(count) + " of " +
                                   std::to_string(size) + " written)");
  } else if (count != size) {
    return Error{EIO, ctx + ": bpf_map_update_batch wrote " + std::to_string(count) + " of " +
                          std::to_string(size)};
  }

  // The swap: readers see the old table or this one. The old one goes when its last reader
  // is done; ours goes with the outer slot, so our fd closes here.
  int inner_fd = inner.get();
  ret = bpf_map_update_elem(maglev_fd(), &service_id, &inner_fd, BPF_ANY);
  if (ret < 0) {
    return Error::FromRet(ret, ctx + ": bpf_map_update_elem(" XLB_MAP_MAGLEV ")" +
                                   (ret == -EINVAL ? " (table size differs from the outer "
                                                     "map's template?)"
                                                   : ""));
  }
  return {};
}

Result<uint32_t> XdpDatapath::MaglevTableId(uint32_t service_id) const {
  uint32_t id = 0;
  int ret = bpf_map_lookup_elem(maglev_fd(), &service_id, &id);
  if (ret < 0) {
    return Error::FromRet(ret, "no Maglev table for service " + std::to_string(service_id));
  }
  return id;
}

Result<std::vector<uint32_t>> XdpDatapath::ReadMaglevTable(uint32_t service_id) const {
  const std::string ctx = "Maglev table of service " + std::to_string(service_id);
  UniqueFd inner;
  // A concurrent install may free the table between the two calls: look again.
  for (int attempt = 0; attempt < 3 && !inner.valid(); ++attempt) {
    auto id = MaglevTableId(service_id);
    if (!id.ok()) {
      return std::move(id).take_error();
    }
    int fd = bpf_map_get_fd_by_id(*id);
    if (fd < 0 && fd != -ENOENT) {
      return Error::FromRet(fd, ctx + ": bpf_map_get_fd_by_id");
    }
    inner.reset(fd);
  }
  if (!inner.valid()) {
    return Error{EAGAIN, ctx + ": replaced while being read"};
  }
  auto info = MapView(inner.get(), "xlb_mag").Info();
  if (!info.ok()) {
    return std::move(info).take_error();
  }
  const uint32_t size = info->max_entries;
  std::vector<uint32_t> keys(size), values(size), table(size);

  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  uint32_t in_token = 0, out_token = 0, done = 0;
  bool first = true;
  while (done < size) {
    uint32_t count = size - done;
    int ret = bpf_map_lookup_batch(inner.get(), first ? nullptr : &in_token, &out_token,
                                   keys.data() + done, values.data() + done, &count, &batch);
    if (ret == -kENOTSUPP || ret == -EOPNOTSUPP) {
      for (uint32_t k = 0; k < size; ++k) {
        ret = bpf_map_lookup_elem(inner.get(), &k, &table[k]);
        if (ret < 0) {
          return Error::FromRet(ret, ctx + ": bpf_map_lookup_elem slot " + std::to_string(k));
        }
      }
      return table;
    }
    if (ret < 0 && ret != -ENOENT) {
      return Error::FromRet(ret, ctx + ": bpf_map_lookup_batch");
    }
    done += count;
    if (ret == -ENOENT) {  // the end of the map
      break;
    }
    in_token = out_token;
    first = false;
  }
  if (done != size) {
    return Error{EIO,
                 ctx + ": read " + std::to_string(done) + " of " + std::to_string(size) + " slots"};
  }
  for (uint32_t i = 0; i < size; ++i) {
    if (keys[i] >= size) {
      return Error{EIO, ctx + ": slot key " + std::to_string(keys[i]) + " out of range"};
    }
    table[keys[i]] = values[i];
  }
  return table;
}

Result<void> XdpDatapath::RemoveMaglevTable(uint32_t service_id) {
  int ret = bpf_map_delete_elem(maglev_fd(), &service_id);
  if (ret < 0 && ret != -ENOENT) {
    return Error::FromRet(ret, "remove Maglev table of service " + std::to_string(service_id));
  }
  return {};
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

Result<void> RemovePins(const std::string& pin_dir) {
  if (pin_dir.empty()) {
    return Error{EINVAL, "RemovePins: empty pin dir"};
  }
  for (const char* name : kPinnedMaps) {
    std::string path = PinPath(pin_dir, name);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
      int err = errno;
      return Error::FromErrno(err, "unlink " + path);
    }
  }
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
