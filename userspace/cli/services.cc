// xlbctl services: every service entry and how its Maglev table divides the slots.
#include <arpa/inet.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

struct ServicesResult {
  std::vector<std::pair<xlb_service_key, xlb_service>> entries;  // in key order
  std::map<uint32_t, TableShares> tables;                        // by service id
};

Result<ServicesResult> ComputeServices(const PinnedDatapath& dp) {
  ServicesResult r;
  XLB_ASSIGN_OR_RETURN(auto services, dp.Services());
  XLB_ASSIGN_OR_RETURN(auto backends, dp.Backends());
  r.entries = std::move(services);
  for (const auto& [k, s] : r.entries) {
    if (!r.tables.count(s.id)) {
      r.tables[s.id] = SharesOf(dp, s.id, backends);
    }
  }
  return r;
}

json SharesJson(const TableShares& t) {
  json j;
  j["installed"] = t.installed;
  if (!t.error.empty()) {
    j["error"] = t.error;
  }
  if (!t.installed) {
    return j;
  }
  j["size"] = t.size;
  j["empty_slots"] = t.empty;
  json clusters = json::array();
  for (const auto& [cluster, n] : t.per_cluster) {
    clusters.push_back({{"cluster_id", cluster}, {"slots", n}, {"share", t.Pct(n)}});
  }
  j["clusters"] = clusters;
  json bes = json::array();
  for (const auto& [id, n] : t.per_backend) {
    bes.push_back({{"backend_id", id}, {"slots", n}, {"share", t.Pct(n)}});
  }
  j["backends"] = bes;
  return j;
}

std::string ClusterSharesText(const TableShares& t) {
  if (!t.error.empty()) {
    return "unreadable";
  }
  if (!t.installed) {
    return "no table";
  }
  std::string out;
  for (const auto& [cluster, n] : t.per_cluster) {
    if (!out.empty()) {
      out += "  ";
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "c%u %.1f%%", static_cast<unsigned>(cluster), t.Pct(n));
    out += buf;
  }
  return out.empty() ? "empty" : out;
}

std::string BackendSlotsText(const TableShares& t) {
  std::string out;
  for (const auto& [id, n] : t.per_backend) {
    if (!out.empty()) {
      out += " ";
    }
    out += std::to_string(id) + ":" + std::to_string(n);
  }
  return out.empty() ? "-" : out;
}

json ServicesJson(const ServicesResult& r) {
  json list = json::array();
  for (const auto& [k, s] : r.entries) {
    json j;
    j["vip"] = AddrText(k.addr, k.family);
    j["port"] = ntohs(k.port);
    j["proto"] = ProtoName(k.proto);
    j["family"] = k.family == XLB_FAMILY_IPV6 ? "ipv6" : "ipv4";
    j["id"] = s.id;
    j["flags"] = ServiceFlagsJson(s);
    j["affinity_timeout"] = s.affinity_timeout;
    j["backend_count"] = s.backend_count;
    j["table"] = SharesJson(r.tables.at(s.id));
    list.push_back(j);
  }
  return json{{"services", list}};
}

void PrintServices(const ServicesResult& r) {
  Table t({{"SERVICE"},
           {"ID", Align::kRight},
           {"FLAGS"},
           {"BACKENDS", Align::kRight},
           {"SLOTS", Align::kRight},
           {"CLUSTER SHARE"},
           {"SLOTS PER BACKEND (id:slots)"}});
  for (const auto& [k, s] : r.entries) {
    const TableShares& sh = r.tables.at(s.id);
    t.Add({ServiceKeyText(k), N(s.id), ServiceFlagsText(s), N(s.backend_count),
           sh.installed ? N(sh.size) : "-", ClusterSharesText(sh), BackendSlotsText(sh)});
  }
  t.Print();
}

}  // namespace

int Services(const InspectOptions& o) {
  return Show(o, ComputeServices, ServicesJson, PrintServices);
}

}  // namespace xlb::cli
