#include "loader/tc_loader.h"

// clang-format off: the skeleton names struct xlb_config without defining it
#include "maps/xlb_abi.h"
#include "xlb_tc.skel.h"
// clang-format on

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "loader/libbpf_opts.h"
#include "loader/log.h"

namespace xlb {
namespace {

bpf_tc_hook Hook(int ifindex, TcDirection direction) {
  bpf_tc_hook hook{};
  InitLibbpfOpts(hook);
  hook.ifindex = ifindex;
  hook.attach_point = direction == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return hook;
}

// BPF_TC_INGRESS|BPF_TC_EGRESS is how libbpf names the clsact qdisc itself.
bpf_tc_hook Clsact(int ifindex) {
  bpf_tc_hook hook = Hook(ifindex, TcDirection::kIngress);
  hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  return hook;
}

std::string Where(int ifindex, TcDirection direction) {
  return std::string(direction == TcDirection::kIngress ? "TC ingress" : "TC egress") +
         " of ifindex " + std::to_string(ifindex);
}

bpf_tc_opts FilterOpts(uint32_t handle, uint32_t priority) {
  bpf_tc_opts opts{};
  InitLibbpfOpts(opts);
  opts.handle = handle;
  opts.priority = priority;
  return opts;
}

}  // namespace

TcAttachment::TcAttachment(TcAttachment&& other) noexcept
    : ifindex_(std::exchange(other.ifindex_, 0)),
      direction_(other.direction_),
      handle_(other.handle_),
      priority_(other.priority_),
      prog_id_(other.prog_id_),
      created_hook_(other.created_hook_) {}

TcAttachment& TcAttachment::operator=(TcAttachment&& other) noexcept {
  if (this != &other) {
    if (attached()) {
      if (auto r = Detach(); !r.ok()) {
        Log(LogLevel::kWarn, r.error().ToString());
      }
    }
    ifindex_ = std::exchange(other.ifindex_, 0);
    direction_ = other.direction_;
    handle_ = other.handle_;
    priority_ = other.priority_;
    prog_id_ = other.prog_id_;
    created_hook_ = other.created_hook_;
  }
  return *this;
}

TcAttachment::~TcAttachment() {
  if (attached()) {
    if (auto r = Detach(); !r.ok()) {
      Log(LogLevel::kWarn, r.error().ToString());
    }
  }
}

void TcAttachment::release() {
  ifindex_ = 0;
}

Result<void> TcAttachment::Detach() {
  if (!attached()) {
    return {};
  }
  const int ifindex = std::exchange(ifindex_, 0);
  const std::string where = Where(ifindex, direction_);
  bpf_tc_hook hook = Hook(ifindex, direction_);
  bpf_tc_opts query = FilterOpts(handle_, priority_);
  int ret = bpf_tc_query(&hook, &query);
  if (ret == -ENOENT || ret == -ENODEV || ret == -EINVAL) {
    return {};  // gone already (the interface, or someone removed the filter)
  }
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_tc_query(" + where + ")");
  }
  if (query.prog_id != prog_id_) {
    Log(LogLevel::kInfo, where + " now runs program " + std::to_string(query.prog_id) +
                             ", not ours (" + std::to_string(prog_id_) + "): left in place");
    return {};
  }
  bpf_tc_opts detach = FilterOpts(handle_, priority_);
  ret = bpf_tc_detach(&hook, &detach);
  if (ret < 0 && ret != -ENOENT) {
    return Error::FromRet(ret, "bpf_tc_detach(" + where + ")");
  }
  if (created_hook_) {
    // Only ours to remove when we made it; a filter someone else added since then goes with
    // it.
    bpf_tc_hook clsact = Clsact(ifindex);
    ret = bpf_tc_hook_destroy(&clsact);
    if (ret < 0 && ret != -ENOENT && ret != -ENODEV) {
      return Error::FromRet(ret, "remove clsact of ifindex " + std::to_string(ifindex));
    }
  }
  return {};
}

Result<TcAttachment> AttachTc(int prog_fd, int ifindex, TcDirection direction) {
  const std::string where = Where(ifindex, direction);
  bpf_tc_hook hook = Hook(ifindex, direction);
  bool created = false;
  int ret = bpf_tc_hook_create(&hook);
  if (ret == 0) {
    created = true;
  } else if (ret != -EEXIST) {
    return Error::FromRet(ret, "create clsact on ifindex " + std::to_string(ifindex));
  }
  bpf_tc_opts opts = FilterOpts(kTcHandle, kTcPriority);
  opts.prog_fd = prog_fd;
  opts.flags = BPF_TC_F_REPLACE;
  ret = bpf_tc_attach(&hook, &opts);
  if (ret < 0) {
    Error err = Error::FromRet(ret, "bpf_tc_attach(" + where + ")");
    if (created) {
      bpf_tc_hook clsact = Clsact(ifindex);
      bpf_tc_hook_destroy(&clsact);
    }
    return err;
  }
  TcAttachment att;
  att.ifindex_ = ifindex;
  att.direction_ = direction;
  att.handle_ = opts.handle;
  att.priority_ = opts.priority;
  att.prog_id_ = opts.prog_id;
  att.created_hook_ = created;
  return att;
}

Result<uint32_t> QueryTc(int ifindex, TcDirection direction) {
  bpf_tc_hook hook = Hook(ifindex, direction);
  bpf_tc_opts query = FilterOpts(kTcHandle, kTcPriority);
  // Most interfaces have no clsact qdisc: libbpf would print the kernel's "Parent Qdisc
  // doesn't exists" for each one asked (uninstall asks every interface).
  const libbpf_print_fn_t print = libbpf_set_print(nullptr);
  int ret = bpf_tc_query(&hook, &query);
  libbpf_set_print(print);
  // No filter at xlb's handle (ENOENT), or no clsact qdisc at all (EINVAL).
  if (ret == -ENOENT || ret == -EINVAL) {
    return 0u;
  }
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_tc_query(" + Where(ifindex, direction) + ")");
  }
  return query.prog_id;
}

Result<void> DetachTc(int ifindex, TcDirection direction) {
  const std::string where = Where(ifindex, direction);
  const std::string ours = direction == TcDirection::kIngress ? "xlb_tc" : "xlb_tc_egress";
  XLB_ASSIGN_OR_RETURN(const uint32_t prog_id, QueryTc(ifindex, direction));
  if (prog_id == 0) {
    return Error{ENOENT, "no xlb_tc filter on " + where};
  }
  XLB_ASSIGN_OR_RETURN(const std::string name, ProgramName(prog_id));
  if (name != ours) {
    return Error{EPERM, where + " runs program " + name + ", not " + ours + ": left in place"};
  }
  bpf_tc_hook hook = Hook(ifindex, direction);
  bpf_tc_opts detach = FilterOpts(kTcHandle, kTcPriority);
  if (int ret = bpf_tc_detach(&hook, &detach); ret < 0) {
    return Error::FromRet(ret, "bpf_tc_detach(" + where + ")");
  }
  return {};
}

Result<std::unique_ptr<TcDatapath>> TcDatapath::Load(const XdpDatapath& xdp) {
  xlb_tc* raw = xlb_tc__open();
  if (raw == nullptr) {
    int err = errno;
    return Error::FromErrno(err, "open xlb_tc skeleton");
  }
  std::unique_ptr<TcDatapath> dp(new TcDatapath(raw));
  xlb_tc* skel = dp->skel_;
  skel->rodata->xlb_cfg = xdp.options().config;

  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) {
      continue;
    }
    const std::string name = bpf_map__name(map);
    // No pin path: libbpf would otherwise open the pin (or /sys/fs/bpf/NAME) and use that
    // instead of the fd handed over below.
    if (int ret = bpf_map__set_pin_path(map, nullptr); ret < 0) {
      return Error::FromRet(ret, "bpf_map__set_pin_path(" + name + ", none)");
    }
    int fd = xdp.map_fd(name);
    if (fd < 0) {
      return Error{ENOENT, "xlb_tc has map " + name +
                               ", which xlb_xdp does not: the programs must share every map"};
    }
    if (int ret = bpf_map__reuse_fd(map, fd); ret < 0) {
      return Error::FromRet(ret, "bpf_map__reuse_fd(" + name + ")");
    }
  }
  int ret = xlb_tc__load(skel);
  if (ret < 0) {
    return Error::FromRet(ret, "load xlb_tc (program; libbpf logged why)");
  }
  return dp;
}

TcDatapath::~TcDatapath() {
  xlb_tc__destroy(skel_);
}

int TcDatapath::prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_tc);
}

int TcDatapath::egress_prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_tc_egress);
}

Result<TcAttachment> TcDatapath::Attach(std::string_view ifname, TcDirection direction) const {
  XLB_ASSIGN_OR_RETURN(auto ifindex, IfIndex(ifname));
  return Attach(ifindex, direction);
}

}  // namespace xlb
