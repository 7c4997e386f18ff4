#include "userspace/kube/source/kube_config.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "userspace/model/config_source.h"
#include "userspace/model/model.h"
#include "userspace/model/yaml_fields.h"

namespace xlb::kube {

uint16_t ClusterIdOf(std::string_view cluster_name) {
  uint32_t hash = 2166136261u;
  for (const char c : cluster_name) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 16777619u;
  }
  return static_cast<uint16_t>(1 + hash % 65535);
}

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data() || n <= 0) {
    return std::nullopt;
  }
  const std::string_view unit(end, text.data() + text.size() - end);
  int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  }
  if (scale == 0 || n > INT64_MAX / scale / 1000) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(n * scale);
}

namespace {

using yaml::Field;

// The cluster name a kubeconfigDir file stands for: its name without a known extension.
std::string ClusterNameOfFile(const std::string& file) {
  for (const std::string_view ext : {".kubeconfig", ".yaml", ".yml", ".conf"}) {
    if (file.size() > ext.size() && file.compare(file.size() - ext.size(), ext.size(), ext) == 0) {
      return file.substr(0, file.size() - ext.size());
    }
  }
  return file;
}

class KubeConfigParser {
 public:
  explicit KubeConfigParser(std::string file) : file_(std::move(file)) {}

  ConfigResult<KubeSourcesConfig> Parse(const std::string& text) {
    XLB_ASSIGN_OR_RETURN(const yaml::LoadedDocument one, yaml::LoadOneDocument(file_, text));
    const yaml::Document doc(file_, one.index, errors_);
    ParseRoot(Field(doc, one.root));
    if (!errors_.empty()) {
      return std::move(errors_);
    }
    return std::move(config_);
  }

 private:
  void ParseRoot(const Field& root) {
    if (!root.IsMap()) {
      return;
    }
    root.OnlyFields({"apiVersion", "kind", "node", "staleAfter", "serviceImports", "local",
                     "clusters", "kubeconfigDir"});
    root["apiVersion"].RequiredValue(kConfigApiVersion);
    root["kind"].RequiredValue(kKubeSourcesKind);
    if (!errors_.empty()) {
      return;  // not our kind of file: the rest would only add noise
    }
    if (const Field node = root["node"]; node.present() && node.IsMap()) {
      node.OnlyFields({"name", "addresses"});
      config_.node_name = node["name"].String().value_or("");
      for (const Field& af : node["addresses"].Items()) {
        if (auto a = Address(af)) {
          if (std::find(config_.node_addresses.begin(), config_.node_addresses.end(), *a) !=
              config_.node_addresses.end()) {
            af.Fail("address " + a->ToString() + " given twice");
          } else {
            config_.node_addresses.push_back(*a);
          }
        }
      }
    }
    if (const Field stale = root["staleAfter"]; stale.present()) {
      default_stale_ = Duration(stale).value_or(kDefaultStaleAfter);
    }

    const Field local = root["local"];
    if (local.Required() && local.IsMap()) {
      ParseLocal(local);
    }
    std::map<std::string, std::string> seen;  // name -> field path
    for (const Field& c : root["clusters"].Items()) {
      ParseRemote(c, seen);
    }
    if (const Field dir = root["kubeconfigDir"]; dir.present()) {
      if (auto path = dir.String()) {
        config_.kubeconfig_dir = *path;
        ReadKubeconfigDir(dir, *path, seen);
      }
    }
    std::sort(config_.remotes.begin(), config_.remotes.end(),
              [](const ClusterConfig& a, const ClusterConfig& b) { return a.name < b.name; });

    const bool any_mcs = std::any_of(config_.remotes.begin(), config_.remotes.end(),
                                     [](const auto& c) { return c.mode == ClusterMode::kMcs; });
    config_.service_imports = any_mcs ? "v1alpha1" : "";
    if (const Field imports = root["serviceImports"]; imports.present()) {
      if (auto v = imports.OneOf({"v1alpha1", "v1beta1", "none"})) {
        config_.service_imports = *v == "none" ? "" : *v;
        if (*v == "none" && any_mcs) {
          imports.Fail("clusters of mode mcs are seen through the local cluster's ServiceImports");
        }
      }
    }
    CheckIds(root);
  }

  std::optional<IpAddress> Address(const Field& f) {
    auto s = f.String();
    if (!s) {
      return std::nullopt;
    }
    auto a = IpAddress::Parse(*s);
    if (!a) {
      f.Fail("expected an IPv4 or IPv6 address, got " + f.Describe());
    }
    return a;
  }

  std::optional<std::chrono::milliseconds> Duration(const Field& f) {
    auto s = f.String();
    if (!s) {
      return std::nullopt;
    }
    auto d = ParseDuration(*s);
    if (!d) {
      f.Fail("expected a duration such as 200ms, 60s, 5m, got " + f.Describe());
    }
    return d;
  }

  std::optional<std::string> Name(const Field& f) {
    auto s = f.String();
    if (s && !IsDnsLabel(*s)) {
      f.Fail("expected a DNS-1123 label (1-63 of a-z, 0-9, '-'), got " + f.Describe());
      return std::nullopt;
    }
    return s;
  }

  std::optional<uint16_t> Id(const Field& f) {
    if (auto v = f.IntegerIn(1, 65535)) {
      return static_cast<uint16_t>(*v);
    }
    return std::nullopt;
  }

  void ParseLocal(const Field& f) {
    f.OnlyFields({"name", "id", "inCluster", "kubeconfig", "staleAfter"});
    ClusterConfig& c = config_.local;
    if (f["name"].present()) {
      c.name = Name(f["name"]).value_or("");
    }
    c.id = Id(f["id"]);
    c.in_cluster = f["inCluster"].Bool().value_or(false);
    c.kubeconfig = f["kubeconfig"].String().value_or("");
    if (c.in_cluster == !c.kubeconfig.empty()) {
      f.Fail(c.in_cluster ? "give inCluster: true or a kubeconfig, not both"
                          : "required: inCluster: true or kubeconfig: PATH");
    }
    if (f["staleAfter"].present()) {
      // The local cluster's state is never dropped (see kube_source.h): say so, not ignore it.
      f["staleAfter"].Fail(
          "not for the local cluster: its last known state stays in force while its API "
          "server is away");
    }
  }

  void ParseRemote(const Field& f, std::map<std::string, std::string>& seen) {
    if (!f.IsMap()) {
      return;
    }
    f.OnlyFields({"name", "id", "mode", "kubeconfig", "staleAfter"});
    ClusterConfig c;
    const Field name_field = f["name"];
    if (!name_field.Required()) {
      return;
    }
    const auto name = Name(name_field);
    c.id = Id(f["id"]);
    bool mode_ok = true;
    if (const Field mode_field = f["mode"]; mode_field.present()) {
      const auto mode = mode_field.OneOf({"direct", "mcs"});
      mode_ok = mode.has_value();
      c.mode = mode == "mcs" ? ClusterMode::kMcs : ClusterMode::kDirect;
    }
    const Field kubeconfig = f["kubeconfig"];
    c.kubeconfig = kubeconfig.String().value_or("");
    // With an unknown mode, whether a kubeconfig belongs here is anyone's guess: say only that.
    if (mode_ok && c.mode == ClusterMode::kDirect && !kubeconfig.present()) {
      kubeconfig.Fail("required for a cluster of mode direct");
    }
    if (mode_ok && c.mode == ClusterMode::kMcs && kubeconfig.present()) {
      kubeconfig.Fail(
          "not used by a cluster of mode mcs (its endpoints come from the local cluster's "
          "EndpointSlices)");
    }
    c.stale_after = default_stale_;
    if (const Field stale = f["staleAfter"]; stale.present()) {
      c.stale_after = Duration(stale).value_or(default_stale_);
    }
    if (!name) {
      return;
    }
    c.name = *name;
    if (c.name == config_.local.name) {
      name_field.Fail("\"" + c.name + "\" is the local cluster");
      return;
    }
    if (const auto [it, inserted] = seen.emplace(c.name, name_field.path()); !inserted) {
      name_field.Fail("cluster \"" + c.name + "\" declared twice (first at " + it->second + ")");
      return;
    }
    config_.remotes.push_back(std::move(c));
  }

  void ReadKubeconfigDir(const Field& f, const std::string& path,
                         std::map<std::string, std::string>& seen) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::directory_iterator it(path, ec);
    if (ec) {
      f.Fail("cannot list directory " + path + ": " + ec.message());
      return;
    }
    std::vector<fs::path> files;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      const std::string file = it->path().filename().string();
      if (file.empty() || file[0] == '.') {
        continue;  // ..data, ..2024_01_01_...: a Secret volume's own plumbing
      }
      if (fs::is_regular_file(it->path(), ec)) {  // follows the volume's symlinks
        files.push_back(it->path());
      }
    }
    if (ec) {
      f.Fail("cannot list directory " + path + ": " + ec.message());
      return;
    }
    std::sort(files.begin(), files.end());
    std::map<std::string, std::string> from_dir;  // cluster -> file
    for (const fs::path& p : files) {
      const std::string file = p.filename().string();
      const std::string name = ClusterNameOfFile(file);
      if (!IsDnsLabel(name)) {
        f.Fail("file " + p.string() + ": cluster name \"" + name +
               "\" (from the file name) is no DNS-1123 label (1-63 of a-z, 0-9, '-')");
        continue;
      }
      if (const auto [at, inserted] = from_dir.emplace(name, file); !inserted) {
        f.Fail("files " + at->second + " and " + file + " both name cluster \"" + name + "\"");
        continue;
      }
      if (seen.count(name) != 0 || name == config_.local.name) {
        continue;  // listed explicitly: that entry wins
      }
      ClusterConfig c;
      c.name = name;
      c.mode = ClusterMode::kDirect;
      c.kubeconfig = p.string();
      c.stale_after = default_stale_;
      seen.emplace(name, f.path() + " (" + file + ")");
      config_.remotes.push_back(std::move(c));
    }
  }

  // Every cluster id distinct; a derived one is only known for a named local cluster.
  void CheckIds(const Field& root) {
    std::map<uint16_t, std::string> owner;
    const auto check = [&](const ClusterConfig& c, const std::string& where) {
      if (c.name.empty()) {
        return;
      }
      const uint16_t id = c.Id();
      const auto [it, inserted] = owner.emplace(id, c.name);
      if (!inserted) {
        root.Fail(where + ": cluster \"" + c.name + "\" has id " + std::to_string(id) +
                  (c.id ? "" : " (derived from its name)") + ", as cluster \"" + it->second +
                  "\" has: give one of them an explicit id");
      }
    };
    check(config_.local, "local");
    for (const ClusterConfig& c : config_.remotes) {
      check(c, "clusters[" + c.name + "]");
    }
  }

  std::string file_;
  ConfigErrors errors_;
  KubeSourcesConfig config_;
  std::chrono::milliseconds default_stale_ = kDefaultStaleAfter;
};

}  // namespace

ConfigResult<KubeSourcesConfig> ParseKubeSourcesConfig(const std::string& file,
                                                       const std::string& text) {
  return KubeConfigParser(file).Parse(text);
}

ConfigResult<KubeSourcesConfig> LoadKubeSourcesConfig(const std::string& path) {
  XLB_ASSIGN_OR_RETURN(const std::string text, yaml::ReadFile(path));
  return ParseKubeSourcesConfig(path, text);
}

}  // namespace xlb::kube
