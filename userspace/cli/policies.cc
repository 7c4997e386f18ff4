// xlbctl policies: the config and the policies read exactly as xlb-agent reads them
// (LoadConfigFile, PolicyStore::ReplaceFromPath, PolicyStore::Plan), and what they come to:
// the effective share of every cluster and weight of every endpoint per service port, after
// spill-over. No kernel access: it checks files before they are handed to an agent.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"
#include "userspace/cli/table.h"
#include "userspace/model/config_source.h"
#include "userspace/policy/policy_store.h"
#include "userspace/policy/weights.h"

namespace xlb::cli {
namespace {

// The error lines as the agent logs them: one per error, indented under a heading.
void PrintErrors(const std::string& heading, const ConfigErrors& errors) {
  std::string out = "xlbctl: " + heading;
  for (const ConfigError& e : errors) {
    out += "\n  " + e.ToString();
  }
  std::fprintf(stderr, "%s\n", out.c_str());
}

std::string PortText(const ServiceBackends& p) {
  return std::to_string(p.port.port) + "/" + std::string(ToString(p.port.protocol)) +
         (p.port.name.empty() ? "" : " (" + p.port.name + ")");
}

struct PoliciesResult {
  std::string config;
  std::string policy;
  std::vector<ServiceBackends> plans;  // per service port
  ConfigErrors problems;               // what cannot be had; the rest applies
};

json PoliciesJson(const PoliciesResult& r) {
  json list = json::array();
  for (const ServiceBackends& p : r.plans) {
    const double total = static_cast<double>(p.TotalWeight());
    json clusters = json::array();
    for (const ClusterShare& c : p.clusters) {
      clusters.push_back({{"cluster", c.cluster},
                          {"cluster_id", c.cluster_id},
                          {"ready", c.ready},
                          {"share", 100.0 * c.share}});
    }
    json endpoints = json::array();
    for (const WeightedBackend& b : p.backends) {
      endpoints.push_back({{"key", b.key},
                           {"address", b.address.ToString()},
                           {"port", b.port},
                           {"cluster", b.cluster},
                           {"cluster_id", b.cluster_id},
                           {"path", ToString(b.path)},
                           {"tunnel", b.Tunnelled() ? json(b.node_address->ToString()) : json()},
                           {"weight", b.weight},
                           {"share", total == 0 ? 0.0 : 100.0 * b.weight / total},
                           {"terminating", b.terminating}});
    }
    list.push_back({{"service", p.service.ToString()},
                    {"port", p.port.port},
                    {"protocol", std::string(ToString(p.port.protocol))},
                    {"port_name", p.port.name},
                    {"family", std::string(ToString(p.family))},
                    {"policy", p.policy},
                    {"spillover", ToString(p.spillover)},
                    {"clusters", clusters},
                    {"endpoints", endpoints}});
  }
  json errs = json::array();
  for (const ConfigError& e : r.problems) {
    errs.push_back(e.ToString());
  }
  return json{{"config", r.config}, {"policy", r.policy}, {"ports", list}, {"problems", errs}};
}

void PrintPolicies(const PoliciesResult& r) {
  Table ct({{"SERVICE"},
            {"PORT"},
            {"FAMILY"},
            {"POLICY"},
            {"SPILLOVER"},
            {"CLUSTER"},
            {"READY", Table::Align::kRight},
            {"SHARE", Table::Align::kRight}});
  Table et({{"SERVICE"},
            {"PORT"},
            {"ENDPOINT"},
            {"CLUSTER"},
            {"PATH"},
            {"WEIGHT", Table::Align::kRight},
            {"SHARE", Table::Align::kRight},
            {"STATE"}});
  for (const ServiceBackends& p : r.plans) {
    const double total = static_cast<double>(p.TotalWeight());
    for (const ClusterShare& c : p.clusters) {
      ct.Add({p.service.ToString(), PortText(p), std::string(ToString(p.family)), p.policy,
              ToString(p.spillover), c.cluster + " (" + std::to_string(c.cluster_id) + ")",
              std::to_string(c.ready), Percent(100.0 * c.share)});
    }
    for (const WeightedBackend& b : p.backends) {
      et.Add({p.service.ToString(), PortText(p), b.key, b.cluster,
              b.Tunnelled() ? "tunnel " + b.node_address->ToString() : ToString(b.path),
              std::to_string(b.weight), Percent(total == 0 ? 0.0 : 100.0 * b.weight / total),
              b.terminating   ? "terminating"
              : b.weight == 0 ? "no new flows"
                              : "ready"});
    }
  }
  std::printf("config %s, policies %s: accepted\n\nper cluster:\n", r.config.c_str(),
              r.policy.empty() ? "(none)" : r.policy.c_str());
  ct.Print();
  std::printf("\nper endpoint:\n");
  et.Print();
}

}  // namespace

int Policies(const InspectOptions& o) {
  if (o.config.empty()) {
    std::fprintf(stderr, "xlbctl: policies needs --config FILE (and --policy PATH)\n");
    return 2;
  }
  auto model = LoadConfigFile(o.config);
  if (!model.ok()) {
    PrintErrors("config " + o.config + " rejected:", model.error());
    return 1;
  }
  PolicyStore store;
  if (!o.policy.empty()) {
    auto accepted = store.ReplaceFromPath(o.policy, *model);
    if (!accepted.ok()) {
      PrintErrors("policies " + o.policy + " rejected:", accepted.error());
      return 1;
    }
  }
  PoliciesResult r{o.config, o.policy, {}, {}};
  r.plans = store.Plan(*model, r.problems);
  if (!r.problems.empty()) {
    PrintErrors("what the inputs ask for that cannot be had (the rest applies):", r.problems);
  }
  if (o.json) {
    PrintJson(PoliciesJson(r));
  } else {
    PrintPolicies(r);
  }
  return 0;
}

}  // namespace xlb::cli
