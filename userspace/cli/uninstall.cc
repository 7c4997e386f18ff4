// xlbctl uninstall: xlb off this node (loader/uninstall.h does it), said line by line or as
// one JSON document.
#include "loader/uninstall.h"

#include <string>

#include "userspace/cli/common.h"

namespace xlb::cli {
namespace {

const char* HookName(TcDirection d) {
  return d == TcDirection::kIngress ? "ingress" : "egress";
}

json ToJson(const Uninstalled& u, const std::string& pin_dir) {
  json doc;
  doc["xdp"] = json::array();
  for (const DetachedXdp& x : u.xdp) {
    doc["xdp"].push_back({{"interface", x.ifname},
                          {"mode", std::string(XdpModeName(x.mode))},
                          {"prog_id", x.prog_id}});
  }
  doc["tc"] = json::array();
  for (const DetachedTc& t : u.tc) {
    doc["tc"].push_back(
        {{"interface", t.ifname}, {"hook", HookName(t.direction)}, {"prog_id", t.prog_id}});
  }
  doc["links"] = json::array();
  for (const DetachedLink& l : u.links) {
    doc["links"].push_back({{"pin", l.pin}, {"prog_id", l.prog_id}, {"cgroup_id", l.cgroup_id}});
  }
  doc["pin_dir"] = pin_dir;
  doc["pins"] = u.pins;
  doc["removed_pin_dir"] = u.removed_pin_dir;
  doc["left"] = u.left;
  doc["failures"] = json::array();
  for (const Error& e : u.failures) {
    doc["failures"].push_back(e.ToString());
  }
  return doc;
}

void Print(const Uninstalled& u, const std::string& pin_dir) {
  for (const DetachedXdp& x : u.xdp) {
    std::printf("detached xlb_xdp (program %u, %s) from %s\n", x.prog_id,
                std::string(XdpModeName(x.mode)).c_str(), x.ifname.c_str());
  }
  for (const DetachedTc& t : u.tc) {
    std::printf("detached %s (program %u) from %s (TC %s)\n",
                t.direction == TcDirection::kIngress ? "xlb_tc" : "xlb_tc_egress", t.prog_id,
                t.ifname.c_str(), HookName(t.direction));
  }
  for (const DetachedLink& l : u.links) {
    std::printf("detached link %s (program %u) from cgroup %llu\n", l.pin.c_str(), l.prog_id,
                static_cast<unsigned long long>(l.cgroup_id));
  }
  if (!u.pins.empty()) {
    std::printf("removed %zu pins under %s\n", u.pins.size(), pin_dir.c_str());
  }
  if (u.removed_pin_dir) {
    std::printf("removed %s\n", pin_dir.c_str());
  }
  for (const std::string& l : u.left) {
    std::printf("left in place: %s\n", l.c_str());
  }
  if (u.nothing_found() && u.failures.empty()) {
    std::printf(
        "nothing of xlb here: no xlb program attached in this network namespace, "
        "nothing pinned under %s\n",
        pin_dir.c_str());
  }
  for (const Error& e : u.failures) {
    std::fprintf(stderr, "xlbctl: uninstall: %s\n", e.ToString().c_str());
  }
}

}  // namespace

int Uninstall(const InspectOptions& o) {
  auto removed = xlb::Uninstall(o.pin_dir);
  if (!removed.ok()) {
    return Fail(removed.error());
  }
  if (o.json) {
    PrintJson(ToJson(*removed, o.pin_dir));
  } else {
    Print(*removed, o.pin_dir);
  }
  return removed->failures.empty() ? 0 : 1;
}

}  // namespace xlb::cli
