#include "userspace/agent/node_settings.h"

#include <fnmatch.h>

#include <map>
#include <optional>

#include "userspace/model/config_source.h"
#include "userspace/model/yaml_fields.h"

namespace xlb {
namespace {

using yaml::Field;

// One group of settings (`defaults`, or a `nodes` entry): flag -> its values, in the order the
// flag parser takes them (a repeatable flag has several).
using FlagValues = std::map<std::string, std::vector<std::string>>;

void ReadSettings(const Field& f, FlagValues& out) {
  if (const Field uplink = f["uplink"]; uplink.present()) {
    if (uplink.node().IsSequence()) {
      if (auto names = uplink.Strings()) {
        std::string joined;
        for (const std::string& n : *names) {
          joined += (joined.empty() ? "" : ",") + n;
        }
        if (joined.empty()) {
          uplink.Fail("an empty list: name an interface, or write auto");
        } else {
          out["--uplink"] = {joined};
        }
      }
    } else if (auto v = uplink.String()) {
      out["--uplink"] = {*v};
    }
  }
  if (auto globs = f["podIfaces"].Strings()) {
    out["--pod-iface"] = *globs;
  }
  if (auto encap = f["encap"].OneOf({"vxlan", "gue"})) {
    out["--encap"] = {*encap};
  }
  if (auto mtu = f["tunnelMtu"].IntegerIn(576, 65535)) {
    out["--tunnel-mtu"] = {std::to_string(*mtu)};
  }
}

}  // namespace

ConfigResult<std::vector<std::string>> NodeSettingsFlags(const std::string& file,
                                                         const std::string& text,
                                                         const std::string& node_name,
                                                         const std::set<std::string>& given) {
  XLB_ASSIGN_OR_RETURN(const yaml::LoadedDocument one, yaml::LoadOneDocument(file, text));
  ConfigErrors errors;
  const yaml::Document doc(file, one.index, errors);
  const Field root(doc, one.root);
  if (!root.IsMap()) {
    return errors;
  }
  root.OnlyFields({"apiVersion", "kind", "defaults", "nodes"});
  root["apiVersion"].RequiredValue(kConfigApiVersion);
  root["kind"].RequiredValue(kNodeSettingsKind);
  if (!errors.empty()) {
    return errors;  // not our kind of file: the rest would only add noise
  }
  FlagValues flags;
  if (const Field defaults = root["defaults"]; defaults.present() && defaults.IsMap()) {
    defaults.OnlyFields({"uplink", "podIfaces", "encap", "tunnelMtu"});
    ReadSettings(defaults, flags);
  }
  // Every entry is read (and checked) whether it matches or not: a typo in another pool's
  // entry is found on every node, not only on that pool's.
  const std::vector<Field> entries = root["nodes"].Items();
  bool matched = false;
  for (const Field& entry : entries) {
    if (!entry.IsMap()) {
      continue;
    }
    entry.OnlyFields({"names", "uplink", "podIfaces", "encap", "tunnelMtu"});
    const Field names = entry["names"];
    bool matches = false;
    if (names.Required()) {
      for (const std::string& glob : names.Strings().value_or(std::vector<std::string>{})) {
        matches = matches || ::fnmatch(glob.c_str(), node_name.c_str(), 0) == 0;
      }
    }
    FlagValues entry_flags;
    ReadSettings(entry, entry_flags);
    if (matches && !matched && !node_name.empty()) {
      matched = true;
      for (auto& [flag, values] : entry_flags) {
        flags[flag] = std::move(values);
      }
    }
  }
  if (!entries.empty() && node_name.empty()) {
    root["nodes"].Fail(
        "per-node entries, but this node's name is not known (--node-name or $NODE_NAME)");
  }
  if (!errors.empty()) {
    return errors;
  }
  std::vector<std::string> out;
  for (const auto& [flag, values] : flags) {
    if (given.count(flag) != 0) {
      continue;
    }
    for (const std::string& v : values) {
      out.push_back(flag);
      out.push_back(v);
    }
  }
  return out;
}

}  // namespace xlb
