// xlbctl stats: packets, bytes and new flows per service, backend and cluster; packets per
// reason. Per-CPU counters, summed.
#include <arpa/inet.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "loader/reasons.h"
#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

struct ServiceRow {
  uint32_t id = 0;
  std::vector<std::string> keys;  // its service entries, as text
  xlb_flow_counter counter{};
};

struct BackendRow {
  uint32_t id = 0;
  xlb_backend backend{};
  xlb_flow_counter counter{};
};

struct ClusterRow {
  xlb_flow_counter sum{};
  uint32_t backends = 0;
};

struct StatsResult {
  std::vector<ServiceRow> services;
  std::vector<BackendRow> backends;
  std::map<uint16_t, ClusterRow> clusters;  // summed over their backends
  std::vector<xlb_counter> reasons;         // indexed by enum xlb_reason
  uint64_t drops = 0;
};

Result<StatsResult> ComputeStats(const PinnedDatapath& dp) {
  XLB_ASSIGN_OR_RETURN(auto services, dp.Services());
  XLB_ASSIGN_OR_RETURN(auto backends, dp.Backends());
  XLB_ASSIGN_OR_RETURN(auto reasons, dp.Reasons());
  StatsResult r;
  std::map<uint32_t, std::vector<std::string>> keys;  // service id -> its keys
  for (const auto& [k, s] : services) {
    keys[s.id].push_back(ServiceKeyText(k));
  }
  for (auto& [id, texts] : keys) {
    XLB_ASSIGN_OR_RETURN(auto c, dp.ServiceStats(id));
    r.services.push_back({id, std::move(texts), c});
  }
  for (const auto& [id, b] : backends) {
    XLB_ASSIGN_OR_RETURN(auto c, dp.BackendStats(id));
    r.backends.push_back({id, b, c});
    ClusterRow& sum = r.clusters[b.cluster_id];
    sum.sum.packets += c.packets;
    sum.sum.bytes += c.bytes;
    sum.sum.new_flows += c.new_flows;
    ++sum.backends;
  }
  r.reasons = std::move(reasons);
  for (const ReasonInfo& info : kReasons) {
    if (info.verdict == Verdict::kDrop) {
      r.drops += r.reasons[info.reason].packets;
    }
  }
  return r;
}

std::string AddressText(const xlb_backend& b) {
  return HostPort(b.addr, b.family, ntohs(b.port));
}

json StatsJson(const StatsResult& r) {
  json services = json::array();
  for (const ServiceRow& s : r.services) {
    json j{{"id", s.id}, {"vips", s.keys}};
    j.update(CounterJson(s.counter));
    services.push_back(j);
  }
  json backends = json::array();
  for (const BackendRow& b : r.backends) {
    json j{{"id", b.id},
           {"address", AddressText(b.backend)},
           {"cluster_id", b.backend.cluster_id},
           {"valid", (b.backend.flags & XLB_BE_F_VALID) != 0}};
    j.update(CounterJson(b.counter));
    backends.push_back(j);
  }
  json clusters = json::array();
  for (const auto& [cluster, c] : r.clusters) {
    json j{{"cluster_id", cluster}, {"backends", c.backends}};
    j.update(CounterJson(c.sum));
    clusters.push_back(j);
  }
  json reasons = json::array();
  for (const ReasonInfo& info : kReasons) {
    const xlb_counter& c = r.reasons[info.reason];
    reasons.push_back({{"reason", info.name},
                       {"verdict", VerdictName(info.verdict)},
                       {"packets", c.packets},
                       {"bytes", c.bytes}});
  }
  return json{{"services", services},
              {"backends", backends},
              {"clusters", clusters},
              {"reasons", reasons},
              {"drops", r.drops}};
}

void PrintStats(const StatsResult& r) {
  Table st({{"SERVICE", Align::kRight},
            {"VIPS"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const ServiceRow& s : r.services) {
    std::string joined;
    for (const std::string& k : s.keys) {
      joined += (joined.empty() ? "" : ", ") + k;
    }
    st.Add({N(s.id), joined, N(s.counter.packets), N(s.counter.bytes), N(s.counter.new_flows)});
  }
  Table bt({{"BACKEND", Align::kRight},
            {"ADDRESS"},
            {"CLUSTER", Align::kRight},
            {"STATE"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const BackendRow& b : r.backends) {
    bt.Add({N(b.id), AddressText(b.backend), N(b.backend.cluster_id),
            (b.backend.flags & XLB_BE_F_VALID) ? "valid" : "invalid", N(b.counter.packets),
            N(b.counter.bytes), N(b.counter.new_flows)});
  }
  Table ct({{"CLUSTER", Align::kRight},
            {"BACKENDS", Align::kRight},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const auto& [cluster, c] : r.clusters) {
    ct.Add({N(cluster), N(c.backends), N(c.sum.packets), N(c.sum.bytes), N(c.sum.new_flows)});
  }
  Table rt({{"REASON"},
            {"VERDICT"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"DESCRIPTION"}});
  for (const ReasonInfo& info : kReasons) {
    const xlb_counter& c = r.reasons[info.reason];
    if (c.packets != 0) {
      rt.Add({std::string(info.name), std::string(VerdictName(info.verdict)), N(c.packets),
              N(c.bytes), std::string(info.description)});
    }
  }
  std::printf("per service:\n");
  st.Print();
  std::printf("\nper backend:\n");
  bt.Print();
  std::printf("\nper cluster (summed over its backends):\n");
  ct.Print();
  std::printf("\nper reason (reasons without packets left out; %llu dropped in all):\n",
              static_cast<unsigned long long>(r.drops));
  rt.Print();
}

}  // namespace

int Stats(const InspectOptions& o) {
  return Show(o, ComputeStats, StatsJson, PrintStats);
}

}  // namespace xlb::cli
