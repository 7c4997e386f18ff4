#include "userspace/agent/reconciler.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>
#include <vector>

#include "userspace/model/config_source.h"

namespace xlb {
namespace {

std::string StatToken(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return "missing:" + std::to_string(errno);
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%lu:%lu:%lld:%lld.%09ld:%lld.%09ld",
                static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino),
                static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                st.st_mtim.tv_nsec, static_cast<long long>(st.st_ctim.tv_sec), st.st_ctim.tv_nsec);
  return buf;
}

std::string Indent(const ConfigErrors& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    out += "\n  " + e.ToString();
  }
  return out;
}

}  // namespace

std::string Fingerprint(const std::string& path) {
  if (path.empty()) {
    return "";
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return StatToken(path);
  }
  // A directory: its own entry changes when files come and go; each file's when it is
  // rewritten. Names starting with '.' are what ReadPolicyPath() skips.
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') {
        names.emplace_back(e->d_name);
      }
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::string out = "dir " + StatToken(path);
  for (const std::string& name : names) {
    out.append(";").append(name).append("=").append(StatToken(path + "/" + name));
  }
  return out;
}

Reconciler::Reconciler(SourcePaths paths, LogFn log)
    : paths_(std::move(paths)), log_(std::move(log)) {}

ConfigResult<void> Reconciler::Start() {
  config_seen_ = Fingerprint(paths_.config);
  auto model = LoadConfigFile(paths_.config);
  if (!model.ok()) {
    return std::move(model).take_errors();
  }
  model_ = std::move(*model);
  AdoptNodeAddresses();
  policy_seen_ = Fingerprint(paths_.policy);
  if (!paths_.policy.empty()) {
    auto accepted = store_.ReplaceFromPath(paths_.policy, model_);
    if (!accepted.ok()) {
      return accepted.errors();
    }
  }
  const Cluster* local = model_.LocalCluster();
  log_(LogLevel::kInfo, "config " + paths_.config + ": " +
                            std::to_string(model_.clusters().size()) +
                            " clusters (local: " + (local ? local->name : std::string("none")) +
                            "), " + std::to_string(model_.services().size()) + " services" +
                            (paths_.policy.empty() ? "; no policies, every endpoint weighs the same"
                                                   : "; policies from " + paths_.policy));
  if (local == nullptr) {
    // Without a local cluster every endpoint with a node address is tunnelled, even this
    // node's own pods: almost certainly a config meant for another node.
    log_(LogLevel::kWarn, "config " + paths_.config + " marks no cluster `local: true`");
  }
  return {};
}

Result<void> Reconciler::Adopt(MapStore& store) {
  syncer_.emplace(store);
  if (auto adopted = syncer_->Adopt(); !adopted.ok()) {
    syncer_.reset();
    return std::move(adopted).take_error();
  }
  const MapContents& held = syncer_->held();
  size_t valid = std::count_if(held.backends.begin(), held.backends.end(), [](const auto& b) {
    return (b.second.flags & XLB_BE_F_VALID) != 0;
  });
  log_(LogLevel::kInfo, "adopted the maps: " + std::to_string(held.services.size()) +
                            " VIP keys, " + std::to_string(held.tables.size()) + " tables, " +
                            std::to_string(valid) + " valid backends");
  return {};
}

bool Reconciler::ReadConfig() {
  auto model = LoadConfigFile(paths_.config);
  if (!model.ok()) {
    ++config_rejected_;
    log_(LogLevel::kWarn,
         "config " + paths_.config +
             " rejected; the last good config stays in force:" + Indent(model.errors()));
    return false;
  }
  model_ = std::move(*model);
  AdoptNodeAddresses();
  ++config_reloaded_;
  log_(LogLevel::kInfo, "config " + paths_.config +
                            " reloaded: " + std::to_string(model_.services().size()) + " services");
  return true;
}

void Reconciler::AdoptNodeAddresses() {
  if (!node_addrs_.empty()) {
    LocalNode node = model_.local_node();
    node.addresses = node_addrs_;
    model_.SetLocalNode(std::move(node));
  }
  if (node_ports_noted_ || !model_.local_node().addresses.empty()) {
    return;
  }
  for (const auto& [name, service] : model_.services()) {
    for (const ServicePort& port : service.ports) {
      if (port.node_port != 0) {
        node_ports_noted_ = true;
        log_(LogLevel::kInfo, "service " + name.ToString() + " has nodePort " +
                                  std::to_string(port.node_port) +
                                  ", but no node address is known (config `node.addresses` or "
                                  "--node-addr): NodePorts are not served");
        return;
      }
    }
  }
}

bool Reconciler::ReadPolicies() {
  if (paths_.policy.empty()) {
    return false;
  }
  auto accepted = store_.ReplaceFromPath(paths_.policy, model_);
  if (!accepted.ok()) {
    log_(LogLevel::kWarn,
         "policies " + paths_.policy +
             " rejected; the last good set stays in force:" + Indent(accepted.errors()));
    return false;
  }
  ++policy_reloaded_;
  log_(LogLevel::kInfo, "policies " + paths_.policy + " accepted");
  return true;
}

std::optional<SyncResult> Reconciler::Poll() {
  bool model_changed = false;
  if (std::string fp = Fingerprint(paths_.config); fp != config_seen_) {
    config_seen_ = std::move(fp);
    model_changed = ReadConfig();
  }
  // A new model may make a policy resolve that did not, or the other way round: offer the
  // policies again against it.
  if (std::string fp = Fingerprint(paths_.policy); fp != policy_seen_ || model_changed) {
    policy_seen_ = std::move(fp);
    dirty_ = ReadPolicies() || dirty_;
  }
  dirty_ = dirty_ || model_changed;
  if (!dirty_ || !syncer_) {
    return std::nullopt;
  }
  SyncResult r = RunSync();
  dirty_ = !r.ok();
  return r;
}

SyncResult Reconciler::RunSync() {
  const uint64_t n = ++syncs_;
  ConfigErrors policy_problems;
  std::vector<ServiceBackends> plans = store_.Plan(model_, policy_problems);
  auto desired = syncer_->Plan(model_, plans);
  if (!desired.ok()) {
    SyncResult failed;
    failed.error = desired.error();
    log_(LogLevel::kWarn, "sync #" + std::to_string(n) +
                              ": plan failed: " + desired.error().ToString() + "; retrying");
    return failed;
  }
  NameIds(*desired);
  std::string problems = Indent(policy_problems);
  for (const std::string& p : desired->problems) {
    problems += "\n  " + p;
  }
  if (problems != last_problems_) {
    last_problems_ = problems;
    if (!problems.empty()) {
      log_(LogLevel::kWarn,
           "what the inputs ask for that cannot be had (the rest is synced):" + problems);
    }
  }

  SyncResult r = syncer_->Sync(*desired);
  char took[32];
  std::snprintf(took, sizeof(took), "%.2f ms",
                std::chrono::duration<double, std::milli>(r.duration).count());
  std::string line = "sync #" + std::to_string(n) + ": " + std::to_string(r.writes.total()) +
                     " writes (" + r.writes.ToString() + ") in " + took + "; " +
                     std::to_string(desired->services.size()) + " service tables, " +
                     std::to_string(desired->maps.backends.size()) + " backends, " +
                     std::to_string(desired->maps.services.size()) + " VIP keys";
  if (r.ok()) {
    log_(LogLevel::kInfo, line);
  } else {
    log_(LogLevel::kWarn, line + "; FAILED at " + r.error->ToString() + "; retrying");
  }
  return r;
}

void Reconciler::NameIds(const DesiredState& desired) {
  IdNames names;
  for (const DesiredService& s : desired.services) {
    names.services[s.id] =
        ServiceLabel{s.service.ToString(),
                     std::to_string(s.port.port) + "/" + std::string(ToString(s.port.protocol)),
                     std::string(ToString(s.family))};
  }
  std::map<uint16_t, std::string> clusters;
  for (const Cluster& c : model_.clusters()) {
    clusters[c.id] = c.name;
  }
  for (const auto& [id, b] : desired.maps.backends) {
    char text[INET6_ADDRSTRLEN] = {};
    const bool v6 = b.family == XLB_FAMILY_IPV6;
    inet_ntop(v6 ? AF_INET6 : AF_INET, b.addr, text, sizeof(text));
    const std::string port = std::to_string(ntohs(b.port));
    auto cluster = clusters.find(b.cluster_id);
    names.backends[id] =
        BackendLabel{v6 ? "[" + std::string(text) + "]:" + port : std::string(text) + ":" + port,
                     cluster != clusters.end() ? cluster->second : ""};
  }
  names_ = std::move(names);
  planned_backends_ = desired.maps.backends.size();
  planned_tables_ = desired.maps.tables.size();
}

}  // namespace xlb
