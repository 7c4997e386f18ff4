#include "loader/uninstall.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "loader/fd.h"

namespace xlb {
namespace {

struct Interface {
  int ifindex;
  std::string name;
};

Result<std::vector<Interface>> Interfaces() {
  struct FreeList {
    void operator()(struct if_nameindex* list) const { if_freenameindex(list); }
  };
  std::unique_ptr<struct if_nameindex, FreeList> list(if_nameindex());
  if (list == nullptr) {
    int err = errno;
    return Error::FromErrno(err, "list the interfaces of this network namespace");
  }
  std::vector<Interface> out;
  for (const struct if_nameindex* i = list.get(); i->if_index != 0; ++i) {
    out.push_back({static_cast<int>(i->if_index), i->if_name});
  }
  return out;
}

// Reading which program is attached (by id) is the one step that needs CAP_SYS_ADMIN; say so
// instead of a bare EPERM.
Error NameError(Error e, const std::string& where) {
  if (e.err == EPERM) {
    e.what = "read the program on " + where + " (needs CAP_SYS_ADMIN)";
  }
  return e;
}

void DetachXdpPrograms(const Interface& iface, Uninstalled& out) {
  auto state = QueryXdp(iface.ifindex);
  if (!state.ok()) {
    out.failures.push_back(std::move(state).take_error());
    return;
  }
  // Native and generic XDP are never attached together; offloaded programs are never xlb's.
  const bool native = state->drv_prog_id != 0;
  const uint32_t prog_id = native ? state->drv_prog_id : state->skb_prog_id;
  if (prog_id == 0) {
    return;
  }
  auto name = ProgramName(prog_id);
  if (!name.ok()) {
    out.failures.push_back(NameError(std::move(name).take_error(), "XDP of " + iface.name));
    return;
  }
  if (*name != "xlb_xdp") {
    out.left.push_back("XDP program " + std::to_string(prog_id) + " (" + *name + ") on " +
                       iface.name + ": not xlb's");
    return;
  }
  auto mode = DetachXdp(iface.ifindex);
  if (!mode.ok()) {
    out.failures.push_back(std::move(mode).take_error());
    return;
  }
  out.xdp.push_back({iface.name, *mode, prog_id});
}

void DetachTcFilters(const Interface& iface, Uninstalled& out) {
  for (TcDirection direction : {TcDirection::kIngress, TcDirection::kEgress}) {
    const char* hook = direction == TcDirection::kIngress ? "TC ingress" : "TC egress";
    auto prog_id = QueryTc(iface.ifindex, direction);
    if (!prog_id.ok()) {
      out.failures.push_back(std::move(prog_id).take_error());
      continue;
    }
    if (*prog_id == 0) {
      continue;
    }
    auto name = ProgramName(*prog_id);
    if (!name.ok()) {
      out.failures.push_back(
          NameError(std::move(name).take_error(), std::string(hook) + " of " + iface.name));
      continue;
    }
    const char* ours = direction == TcDirection::kIngress ? "xlb_tc" : "xlb_tc_egress";
    if (*name != ours) {
      out.left.push_back(std::string(hook) + " filter of " + iface.name + " at xlb's handle runs " +
                         *name + ", not " + ours);
      continue;
    }
    if (auto r = DetachTc(iface.ifindex, direction); !r.ok()) {
      out.failures.push_back(std::move(r).take_error());
      continue;
    }
    out.tc.push_back({iface.name, direction, *prog_id});
  }
}

// What kind of BPF object an fd is: "bpf-link", "bpf-map", "bpf-prog" (its anon inode's name).
std::string ObjectKind(int fd) {
  char target[64] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) {
    return "";
  }
  std::string kind(target, static_cast<size_t>(n));
  const std::string prefix = "anon_inode:";
  return kind.starts_with(prefix) ? kind.substr(prefix.size()) : kind;
}

// A pinned link: detached for everyone (an agent still running keeps a dead link), before its
// pin goes.
void DetachPinnedLink(const std::string& name, int fd, Uninstalled& out) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (int ret = bpf_obj_get_info_by_fd(fd, &info, &len); ret < 0) {
    out.failures.push_back(Error::FromRet(ret, "read pinned link " + name));
    return;
  }
  if (int ret = bpf_link_detach(fd); ret < 0) {
    out.failures.push_back(Error::FromRet(ret, "detach pinned link " + name));
    return;
  }
  out.links.push_back(
      {name, info.prog_id, info.type == BPF_LINK_TYPE_CGROUP ? info.cgroup.cgroup_id : 0});
}

Result<bool> IsBpffsMountPoint(const std::string& dir) {
  struct stat self {};
  struct stat parent {};
  if (::stat(dir.c_str(), &self) < 0 || ::stat((dir + "/..").c_str(), &parent) < 0) {
    int err = errno;
    return Error::FromErrno(err, "stat " + dir);
  }
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

void RemovePinDir(const std::string& pin_dir, Uninstalled& out) {
  struct statfs fs {};
  if (::statfs(pin_dir.c_str(), &fs) < 0) {
    if (errno != ENOENT) {
      int err = errno;
      out.failures.push_back(Error::FromErrno(err, "statfs " + pin_dir));
    }
    return;  // nothing pinned
  }
  if (fs.f_type != BPF_FS_MAGIC) {
    out.failures.push_back(Error{ENOTDIR, pin_dir + " is not on bpffs: it holds no pins"});
    return;
  }
  auto mount_point = IsBpffsMountPoint(pin_dir);
  if (!mount_point.ok()) {
    out.failures.push_back(std::move(mount_point).take_error());
    return;
  }
  if (*mount_point) {
    out.failures.push_back(Error{EINVAL, pin_dir + " is bpffs's mount point, not xlb's pin dir: "
                                                   "nothing there removed"});
    return;
  }
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::opendir(pin_dir.c_str()));
  if (dir == nullptr) {
    int err = errno;
    out.failures.push_back(Error::FromErrno(err, "open " + pin_dir));
    return;
  }
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(dir.get())) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    if (e->d_type == DT_DIR) {
      out.left.push_back(pin_dir + "/" + name + ": a directory, not an xlb pin");
      continue;
    }
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  // Links first, so that every hook is off before the maps its programs read go away.
  for (const std::string& name : names) {
    UniqueFd fd(bpf_obj_get((pin_dir + "/" + name).c_str()));
    if (fd.valid() && ObjectKind(fd.get()) == "bpf-link") {
      DetachPinnedLink(name, fd.get(), out);
    }
  }
  for (const std::string& name : names) {
    const std::string path = pin_dir + "/" + name;
    if (::unlink(path.c_str()) < 0) {
      int err = errno;
      out.failures.push_back(Error::FromErrno(err, "unlink " + path));
      continue;
    }
    out.pins.push_back(name);
  }
  if (::rmdir(pin_dir.c_str()) == 0) {
    out.removed_pin_dir = true;
  } else if (errno != ENOTEMPTY) {
    int err = errno;
    out.failures.push_back(Error::FromErrno(err, "rmdir " + pin_dir));
  }
}

}  // namespace

Result<Uninstalled> Uninstall(const std::string& pin_dir) {
  if (pin_dir.empty()) {
    return Error{EINVAL, "uninstall needs a pin dir"};
  }
  XLB_ASSIGN_OR_RETURN(const std::vector<Interface> interfaces, Interfaces());
  Uninstalled out;
  for (const Interface& iface : interfaces) {
    DetachXdpPrograms(iface, out);
    DetachTcFilters(iface, out);
  }
  // A program left attached without its pins would keep balancing with maps nobody can reach
  // or update any more: keep them until every program is off.
  if (!out.failures.empty()) {
    out.failures.push_back(Error{EAGAIN, "nothing under " + pin_dir +
                                             " removed while an xlb program is still attached"});
    return out;
  }
  RemovePinDir(pin_dir, out);
  return out;
}

}  // namespace xlb
