#include "userspace/cli/pinned_datapath.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "loader/libbpf_opts.h"
#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "maps/typed_map.h"
#include "maps/xlb_rules.h"

namespace xlb::cli {
namespace {

bool KeyLess(const xlb_service_key& a, const xlb_service_key& b) {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

Result<bpf_prog_info> ProgInfo(int fd, std::vector<uint32_t>* map_ids) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_obj_get_info_by_fd(program)");
  }
  if (map_ids == nullptr || info.nr_map_ids == 0) {
    return info;
  }
  const uint32_t n = info.nr_map_ids;
  map_ids->assign(n, 0);
  bpf_prog_info again{};
  again.nr_map_ids = n;
  again.map_ids = reinterpret_cast<uint64_t>(map_ids->data());
  len = sizeof(again);
  ret = bpf_obj_get_info_by_fd(fd, &again, &len);
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_obj_get_info_by_fd(program map ids)");
  }
  map_ids->resize(std::min(n, again.nr_map_ids));
  return again;
}

// xlb_cfg out of a program's `.rodata` map, located through the map's BTF (DATASEC vars).
std::optional<xlb_config> ReadRodataConfig(int map_fd, const bpf_map_info& info) {
  if (info.btf_id == 0 || info.btf_value_type_id == 0 || info.max_entries != 1) {
    return std::nullopt;
  }
  btf* b = btf__load_from_kernel_by_id(info.btf_id);
  if (b == nullptr) {
    return std::nullopt;
  }
  std::optional<uint32_t> offset;
  const btf_type* sec = btf__type_by_id(b, info.btf_value_type_id);
  if (sec != nullptr && btf_is_datasec(sec)) {
    const btf_var_secinfo* vars = btf_var_secinfos(sec);
    for (uint16_t i = 0; i < btf_vlen(sec); ++i) {
      const btf_type* var = btf__type_by_id(b, vars[i].type);
      const char* name = var != nullptr ? btf__name_by_offset(b, var->name_off) : nullptr;
      if (name != nullptr && std::strcmp(name, "xlb_cfg") == 0 &&
          vars[i].size == sizeof(xlb_config)) {
        offset = vars[i].offset;
      }
    }
  }
  btf__free(b);
  if (!offset || *offset + sizeof(xlb_config) > info.value_size) {
    return std::nullopt;
  }
  std::vector<uint8_t> value(info.value_size);
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(map_fd, &key, value.data()) < 0) {
    return std::nullopt;
  }
  xlb_config cfg{};
  std::memcpy(&cfg, value.data() + *offset, sizeof(cfg));
  return cfg;
}

template <typename K, typename V>
Result<std::vector<std::pair<K, V>>> Dump(int fd, const char* name) {
  if (fd < 0) {
    return Error{ENOENT, std::string(name) + " is not pinned"};
  }
  std::vector<std::pair<K, V>> out;
  // The map may change under us (LRU eviction, the datapath inserting): ForEach skips keys
  // that vanish; a key seen twice after a restart of the walk is kept once.
  std::map<std::vector<uint8_t>, size_t> seen;
  auto r = TypedMap<K, V>(fd, name).ForEach([&](const K& k, const V& v) {
    std::vector<uint8_t> bytes(reinterpret_cast<const uint8_t*>(&k),
                               reinterpret_cast<const uint8_t*>(&k) + sizeof(k));
    auto [it, fresh] = seen.emplace(std::move(bytes), out.size());
    if (fresh) {
      out.emplace_back(k, v);
    } else {
      out[it->second].second = v;
    }
  });
  if (!r.ok()) {
    return std::move(r).take_error();
  }
  return out;
}

}  // namespace

std::string NotLoaded(const std::string& pin_dir, const char* missing) {
  if (missing == nullptr) {
    return "xlb is not loaded (no pins under " + pin_dir +
           "; xlbctl load or xlb-agent pin the maps there)";
  }
  return "xlb is not loaded (" + pin_dir + "/" + missing + " is not pinned)";
}

Result<PinnedDatapath> PinnedDatapath::Open(const std::string& pin_dir, bool require_all) {
  PinnedDatapath dp;
  dp.pin_dir_ = pin_dir;
  struct stat st {};
  if (::stat(pin_dir.c_str(), &st) != 0) {
    int err = errno;
    return Error::FromErrno(err, NotLoaded(pin_dir));
  }
  size_t found = 0;
  for (const char* name : kPinnedMaps) {
    PinnedMap m;
    m.name = name;
    m.path = pin_dir + "/" + name;
    auto fd = OpenPinnedMap(pin_dir, name);
    if (!fd.ok()) {
      m.error = fd.error().ToString();
      if (require_all && fd.error().NotFound()) {
        return Error{ENOENT, NotLoaded(pin_dir, name)};
      }
      if (fd.error().err == EPERM || fd.error().err == EACCES) {  // not a "not loaded"
        return Error{fd.error().err,
                     "open " + m.path + ": reading xlb's maps needs root (CAP_BPF, CAP_SYS_ADMIN)"};
      }
      if (require_all) {
        return std::move(fd).take_error();
      }
    } else {
      m.fd = std::move(*fd);
      XLB_ASSIGN_OR_RETURN(auto info, MapView(m.fd.get(), name).Info());
      m.info = info;
      ++found;
    }
    dp.maps_.push_back(std::move(m));
  }
  if (found == 0) {
    return Error{ENOENT, NotLoaded(pin_dir)};
  }
  return dp;
}

const PinnedMap* PinnedDatapath::Find(const char* name) const {
  for (const PinnedMap& m : maps_) {
    if (m.name == name && m.fd.valid()) {
      return &m;
    }
  }
  return nullptr;
}

int PinnedDatapath::fd(const char* name) const {
  const PinnedMap* m = Find(name);
  return m != nullptr ? m->fd.get() : -1;
}

Result<std::vector<std::pair<xlb_service_key, xlb_service>>> PinnedDatapath::Services() const {
  auto out = Dump<xlb_service_key, xlb_service>(fd(XLB_MAP_SERVICES), XLB_MAP_SERVICES);
  if (out.ok()) {
    std::sort(out->begin(), out->end(),
              [](const auto& a, const auto& b) { return KeyLess(a.first, b.first); });
  }
  return out;
}

Result<std::map<uint32_t, xlb_backend>> PinnedDatapath::Backends() const {
  const PinnedMap* m = Find(XLB_MAP_BACKENDS);
  if (m == nullptr) {
    return Error{ENOENT, std::string(XLB_MAP_BACKENDS) + " is not pinned"};
  }
  const uint32_t n = m->info.max_entries;
  std::vector<uint32_t> keys(n);
  std::vector<xlb_backend> values(n);
  std::map<uint32_t, xlb_backend> out;
  bpf_map_batch_opts opts{};
  InitLibbpfOpts(opts);
  uint32_t in_token = 0, out_token = 0, done = 0;
  bool batched = true;
  while (done < n) {
    uint32_t count = n - done;
    int ret = bpf_map_lookup_batch(m->fd.get(), done == 0 ? nullptr : &in_token, &out_token,
                                   keys.data() + done, values.data() + done, &count, &opts);
    if (ret < 0 && ret != -ENOENT) {
      batched = false;
      break;
    }
    done += count;
    in_token = out_token;
    if (ret == -ENOENT || count == 0) {
      break;
    }
  }
  if (!batched) {  // kernels without batch ops on arrays: one lookup per id
    done = 0;
    TypedMap<uint32_t, xlb_backend> map(m->fd.get(), XLB_MAP_BACKENDS);
    for (uint32_t id = 0; id < n; ++id) {
      XLB_ASSIGN_OR_RETURN(auto v, map.Lookup(id));
      keys[done] = id;
      values[done++] = v;
    }
  }
  static const xlb_backend kZero{};
  for (uint32_t i = 0; i < done; ++i) {
    if (std::memcmp(&values[i], &kZero, sizeof(kZero)) != 0) {
      out[keys[i]] = values[i];
    }
  }
  return out;
}

MaglevTables PinnedDatapath::Tables() const {
  const PinnedMap* m = Find(XLB_MAP_MAGLEV);
  return m != nullptr ? MaglevTables(m->fd.get(), 0, m->info.max_entries) : MaglevTables();
}

Result<std::vector<uint32_t>> PinnedDatapath::Table(uint32_t service_id) const {
  if (Find(XLB_MAP_MAGLEV) == nullptr) {
    return Error{ENOENT, std::string(XLB_MAP_MAGLEV) + " is not pinned"};
  }
  return Tables().Read(service_id);
}

namespace {

// The half-open flows (xlb_cthalf_v2; none in pins made before it existed).
Result<std::vector<std::pair<xlb_half_key, xlb_half_open>>> HalfOpen(const PinnedDatapath& dp) {
  if (dp.Find(XLB_MAP_CT_HALF_OPEN) == nullptr) {
    return std::vector<std::pair<xlb_half_key, xlb_half_open>>{};
  }
  return Dump<xlb_half_key, xlb_half_open>(dp.fd(XLB_MAP_CT_HALF_OPEN), XLB_MAP_CT_HALF_OPEN);
}

}  // namespace

// Established flows, then the half-open ones under the tuple xlb_ct_v1 will key them by
// (client -> the VIP and port of their REVNAT entry).
Result<std::vector<std::pair<xlb_ct_key, xlb_ct_value>>> PinnedDatapath::Conntrack() const {
  XLB_ASSIGN_OR_RETURN(auto out, (Dump<xlb_ct_key, xlb_ct_value>(fd(XLB_MAP_CT), XLB_MAP_CT)));
  XLB_ASSIGN_OR_RETURN(auto half, HalfOpen(*this));
  for (const auto& [k, h] : half) {
    xlb_ct_key flow{};
    xlb_half_flow_of(&k, &h, &flow);
    out.emplace_back(flow, h.ct);
  }
  return out;
}

// Established replies, the TUNNEL entries of SYNs decapsulated here, and the REVNAT entries
// inside half-open flows under the tuple their backend answers with (backend:port ->
// client:port, xlb_revnat_key); a flow whose backend slot is empty has none.
Result<std::vector<std::pair<xlb_ct_key, xlb_reply>>> PinnedDatapath::Replies() const {
  XLB_ASSIGN_OR_RETURN(auto out, (Dump<xlb_ct_key, xlb_reply>(fd(XLB_MAP_REPLY), XLB_MAP_REPLY)));
  if (Find(XLB_MAP_REPLY_HALF_OPEN) != nullptr) {
    XLB_ASSIGN_OR_RETURN(auto tunnel, (Dump<xlb_ct_key, xlb_reply>(fd(XLB_MAP_REPLY_HALF_OPEN),
                                                                   XLB_MAP_REPLY_HALF_OPEN)));
    out.insert(out.end(), tunnel.begin(), tunnel.end());
  }
  XLB_ASSIGN_OR_RETURN(auto half, HalfOpen(*this));
  if (half.empty()) {
    return out;
  }
  const TypedMap<uint32_t, xlb_backend> backends(fd(XLB_MAP_BACKENDS), XLB_MAP_BACKENDS);
  for (const auto& [k, h] : half) {
    auto be = backends.Lookup(h.ct.backend_id);
    if (!be.ok()) {
      if (be.error().NotFound()) {
        continue;
      }
      return std::move(be).take_error();
    }
    if (be->family == 0) {  // an array slot no backend was written to: nothing answers
      continue;
    }
    xlb_ct_key flow{}, answer{};
    xlb_half_flow_of(&k, &h, &flow);
    xlb_revnat_key(&flow, &*be, &answer);
    out.emplace_back(answer, h.revnat);
  }
  return out;
}

Result<std::vector<std::pair<xlb_ct_key, xlb_snat>>> PinnedDatapath::Snat() const {
  return Dump<xlb_ct_key, xlb_snat>(fd(XLB_MAP_SNAT), XLB_MAP_SNAT);
}

Result<xlb_flow_counter> PinnedDatapath::ServiceStats(uint32_t service_id) const {
  XLB_ASSIGN_OR_RETURN(auto map, PerCpuMap<xlb_flow_counter>::FromFd(fd(XLB_MAP_SVC_STATS)));
  return map.LookupSum(service_id);
}

Result<xlb_flow_counter> PinnedDatapath::BackendStats(uint32_t backend_id) const {
  XLB_ASSIGN_OR_RETURN(auto map, PerCpuMap<xlb_flow_counter>::FromFd(fd(XLB_MAP_BE_STATS)));
  return map.LookupSum(backend_id);
}

Result<std::vector<xlb_counter>> PinnedDatapath::Reasons() const {
  XLB_ASSIGN_OR_RETURN(auto map, PerCpuMap<xlb_counter>::FromFd(fd(XLB_MAP_REASONS)));
  std::vector<xlb_counter> out;
  for (uint32_t r = 0; r < XLB_REASON_MAX; ++r) {
    XLB_ASSIGN_OR_RETURN(auto sum, map.LookupSum(r));
    out.push_back(sum);
  }
  return out;
}

Result<std::vector<ProgramConfig>> PinnedDatapath::Programs() const {
  const PinnedMap* services = Find(XLB_MAP_SERVICES);
  if (services == nullptr) {
    return Error{ENOENT, std::string(XLB_MAP_SERVICES) + " is not pinned"};
  }
  const uint32_t our_map = services->info.id;
  std::vector<ProgramConfig> out;
  uint32_t id = 0;
  for (;;) {
    int ret = bpf_prog_get_next_id(id, &id);
    if (ret == -ENOENT) {
      break;
    }
    if (ret < 0) {
      return Error::FromRet(ret, "bpf_prog_get_next_id");
    }
    UniqueFd prog(bpf_prog_get_fd_by_id(id));
    if (!prog.valid()) {
      continue;  // unloaded meanwhile
    }
    std::vector<uint32_t> map_ids;
    auto info = ProgInfo(prog.get(), &map_ids);
    if (!info.ok() || std::find(map_ids.begin(), map_ids.end(), our_map) == map_ids.end()) {
      continue;
    }
    ProgramConfig p;
    p.prog_id = id;
    p.name = info->name;
    for (uint32_t map_id : map_ids) {
      UniqueFd m(bpf_map_get_fd_by_id(map_id));
      if (!m.valid()) {
        continue;
      }
      auto mi = MapView(m.get(), "map").Info();
      if (!mi.ok() || !std::string_view(mi->name).ends_with(".rodata")) {
        continue;
      }
      if (auto cfg = ReadRodataConfig(m.get(), *mi)) {
        p.config = cfg;
        p.rodata_map = mi->name;
        break;
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<ProgramConfig> PinnedDatapath::ConfigOf(const std::vector<ProgramConfig>& programs,
                                                      const std::vector<Attachment>& attachments) {
  const ProgramConfig* best = nullptr;
  auto attached = [&](uint32_t id) {
    return std::any_of(attachments.begin(), attachments.end(),
                       [&](const Attachment& a) { return a.prog_id == id; });
  };
  auto rank = [&](const ProgramConfig& p) {
    return (p.config ? 4 : 0) + (p.name == "xlb_xdp" ? 2 : 0) + (attached(p.prog_id) ? 1 : 0);
  };
  for (const ProgramConfig& p : programs) {
    if (best == nullptr || rank(p) > rank(*best) ||
        (rank(p) == rank(*best) && p.prog_id > best->prog_id)) {
      best = &p;
    }
  }
  if (best == nullptr || !best->config) {
    return std::nullopt;
  }
  return *best;
}

std::vector<Attachment> FindAttachments(const std::vector<ProgramConfig>& programs) {
  std::vector<Attachment> out;
  if (programs.empty()) {
    return out;
  }
  auto ours = [&](uint32_t id) {
    return id != 0 && std::any_of(programs.begin(), programs.end(),
                                  [&](const ProgramConfig& p) { return p.prog_id == id; });
  };
  struct if_nameindex* names = ::if_nameindex();
  if (names == nullptr) {
    return out;
  }
  // Most interfaces have no clsact qdisc, and libbpf prints the kernel's complaint about
  // each one; a missing hook only means "not attached" here.
  const libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  for (struct if_nameindex* i = names; i->if_index != 0; ++i) {
    const int ifindex = static_cast<int>(i->if_index);
    auto xdp = QueryXdp(ifindex);
    if (xdp.ok()) {
      const std::pair<uint32_t, const char*> modes[] = {{xdp->drv_prog_id, "xdp/native"},
                                                        {xdp->skb_prog_id, "xdp/generic"},
                                                        {xdp->hw_prog_id, "xdp/offload"}};
      for (const auto& [id, hook] : modes) {
        if (ours(id)) {
          out.push_back({i->if_name, ifindex, hook, id});
        }
      }
    }
    bpf_tc_hook hook{};
    InitLibbpfOpts(hook);
    hook.ifindex = ifindex;
    hook.attach_point = BPF_TC_INGRESS;
    bpf_tc_opts query{};
    InitLibbpfOpts(query);
    query.handle = kTcHandle;
    query.priority = kTcPriority;
    if (bpf_tc_query(&hook, &query) == 0 && ours(query.prog_id)) {
      out.push_back({i->if_name, ifindex, "tc/ingress", query.prog_id});
    }
  }
  ::if_freenameindex(names);
  libbpf_set_print(previous);
  return out;
}

uint64_t MonotonicNowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace xlb::cli
