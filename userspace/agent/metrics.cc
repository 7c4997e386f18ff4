#include "userspace/agent/metrics.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "loader/reasons.h"
#include "loader/xdp_loader.h"

namespace xlb {

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Exposition::Family(std::string_view name, std::string_view type, std::string_view help) {
  text_.append("# HELP ").append(name).append(" ").append(EscapeHelp(help)).append("\n");
  text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Exposition::Head(std::string_view name, const Labels& labels) {
  text_.append(name);
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) {
        text_ += ',';
      }
      text_.append(labels[i].first).append("=\"").append(EscapeLabelValue(labels[i].second));
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
}

void Exposition::Sample(std::string_view name, const Labels& labels, uint64_t value) {
  Head(name, labels);
  text_.append(std::to_string(value)).append("\n");
}

void Exposition::Sample(std::string_view name, const Labels& labels, double value) {
  Head(name, labels);
  if (std::isinf(value)) {
    text_.append(value > 0 ? "+Inf" : "-Inf");
  } else if (std::isnan(value)) {
    text_.append("NaN");
  } else {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.17g", value);
    text_.append(buf);
  }
  text_ += '\n';
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  // The first bucket whose upper bound is >= value ("le"); past the last, +Inf.
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  ++count_;
  sum_ += value;
}

void Histogram::Write(Exposition& out, std::string_view name, std::string_view help,
                      const Labels& labels) const {
  const std::string base(name);
  out.Family(base, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    Labels with = labels;
    if (i < bounds_.size()) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", bounds_[i]);
      with.emplace_back("le", le);
    } else {
      with.emplace_back("le", "+Inf");
    }
    out.Sample(base + "_bucket", with, cumulative);
  }
  out.Sample(base + "_sum", labels, sum_);
  out.Sample(base + "_count", labels, count_);
}

std::vector<double> NetworkProgrammingBuckets() {
  std::vector<double> bounds;
  for (double b = 0.001; bounds.size() < 20; b *= 2) {
    bounds.push_back(b);
  }
  return bounds;
}

std::vector<double> SyncDurationBuckets() {
  // 1-2.5-5 steps per decade: fine enough to tell a no-op sync (~0.1 ms), a table swap
  // (~1 ms) and a full sync of thousands of tables (seconds) apart.
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

AgentStatus::AgentStatus()
    : heartbeat_(std::chrono::steady_clock::now()), sync_seconds_(SyncDurationBuckets()) {}

void AgentStatus::RequireXdp(std::vector<std::string> uplinks) {
  std::lock_guard lock(mu_);
  xdp_attached_.clear();
  for (std::string& uplink : uplinks) {
    xdp_attached_.emplace(std::move(uplink), false);
  }
}

void AgentStatus::Heartbeat() {
  std::lock_guard lock(mu_);
  heartbeat_ = std::chrono::steady_clock::now();
}

void AgentStatus::RecordSync(std::chrono::nanoseconds duration, const WriteCounts& writes,
                             bool ok) {
  std::lock_guard lock(mu_);
  sync_seconds_.Observe(std::chrono::duration<double>(duration).count());
  for (size_t i = 0; i < kWriteKinds; ++i) {
    writes_[i] += writes.by_kind[i];
  }
  syncs_failed_ += ok ? 0 : 1;
  if (ok) {
    last_sync_success_unix_ = WallClockSeconds();
  }
  synced_once_ = synced_once_ || ok;
  last_sync_ok_ = ok;
}

void AgentStatus::SetReloads(uint64_t config_ok, uint64_t config_failed, uint64_t policy_ok,
                             uint64_t policy_failed) {
  std::lock_guard lock(mu_);
  config_ok_ = config_ok;
  config_failed_ = config_failed;
  policy_ok_ = policy_ok;
  policy_failed_ = policy_failed;
}

void AgentStatus::SetPlanProblems(uint64_t problems) {
  std::lock_guard lock(mu_);
  plan_problems_ = problems;
}

void AgentStatus::SetNames(IdNames names, uint64_t valid_backends, uint64_t tables) {
  std::lock_guard lock(mu_);
  names_ = std::move(names);
  valid_backends_ = valid_backends;
  tables_ = tables;
}

void AgentStatus::SetXdpAttached(const std::string& uplink) {
  std::lock_guard lock(mu_);
  xdp_attached_[uplink] = true;
}

void AgentStatus::SetSocketLbAttached() {
  std::lock_guard lock(mu_);
  socket_lb_attached_ = true;
}

void AgentStatus::CountRepins(uint64_t pins) {
  std::lock_guard lock(mu_);
  repins_ += pins;
}

bool AgentStatus::Healthy(std::chrono::steady_clock::duration stale) const {
  std::lock_guard lock(mu_);
  return std::chrono::steady_clock::now() - heartbeat_ <= stale;
}

double WallClockSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double AgentStatus::LastSyncSuccessUnix() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_sync_success_unix_;
}

bool AgentStatus::Ready() const {
  std::lock_guard lock(mu_);
  return ReadyLocked();
}

bool AgentStatus::ReadyLocked() const {
  return synced_once_ && last_sync_ok_ &&
         std::all_of(xdp_attached_.begin(), xdp_attached_.end(),
                     [](const auto& uplink) { return uplink.second; });
}

IdNames AgentStatus::Names() const {
  std::lock_guard lock(mu_);
  return names_;
}

std::pair<uint64_t, uint64_t> AgentStatus::ValidBackendsAndTables() const {
  std::lock_guard lock(mu_);
  return {valid_backends_, tables_};
}

void AgentStatus::WriteAgentMetrics(Exposition& out) const {
  std::lock_guard lock(mu_);
  out.Family("xlb_agent_up", "gauge", "1 while the agent serves metrics.");
  out.Sample("xlb_agent_up", {}, uint64_t{1});
  out.Family("xlb_build_info", "gauge", "1, labelled with the agent's version and BPF map ABI.");
  out.Sample("xlb_build_info", {{"version", XLB_VERSION}, {"abi", std::to_string(XLB_ABI_VERSION)}},
             uint64_t{1});
  out.Family("xlb_agent_last_sync_success_timestamp_seconds", "gauge",
             "Unix time of the last sync that wrote every change; 0 before the first.");
  out.Sample("xlb_agent_last_sync_success_timestamp_seconds", {}, last_sync_success_unix_);
  out.Family("xlb_agent_ready", "gauge",
             "1 after a successful sync with XDP attached, while the last sync succeeded.");
  out.Sample("xlb_agent_ready", {}, uint64_t{ReadyLocked()});
  if (!xdp_attached_.empty()) {
    out.Family("xlb_agent_xdp_attached", "gauge",
               "1 once xlb_xdp is attached to the uplink (--uplink), by interface.");
    for (const auto& [uplink, attached] : xdp_attached_) {
      out.Sample("xlb_agent_xdp_attached", {{"interface", uplink}}, uint64_t{attached});
    }
  }
  out.Family("xlb_agent_socket_lb_attached", "gauge",
             "1 once socket LB (host-namespace clients) is attached to the cgroup; 0 while off.");
  out.Sample("xlb_agent_socket_lb_attached", {}, uint64_t{socket_lb_attached_});
  out.Family("xlb_agent_repins_total", "counter",
             "Pins of maps and links found removed from the pin directory and made again.");
  out.Sample("xlb_agent_repins_total", {}, repins_);
  sync_seconds_.Write(out, "xlb_agent_sync_duration_seconds",
                      "Time of each map sync (plan excluded), successful or not.");
  out.Family("xlb_agent_syncs_failed_total", "counter",
             "Syncs that stopped at a failed map write (retried at the next poll).");
  out.Sample("xlb_agent_syncs_failed_total", {}, syncs_failed_);
  out.Family("xlb_agent_sync_writes_total", "counter",
             "Map writes made by syncs, by kind (backend, table, service, ...).");
  for (size_t i = 0; i < kWriteKinds; ++i) {
    out.Sample("xlb_agent_sync_writes_total", {{"kind", ToString(static_cast<WriteKind>(i))}},
               writes_[i]);
  }
  out.Family("xlb_agent_reloads_total", "counter",
             "Config and policy files re-read after a change, by source and result (a rejected "
             "one leaves the last good state in force).");
  out.Sample("xlb_agent_reloads_total", {{"source", "config"}, {"result", "success"}}, config_ok_);
  out.Sample("xlb_agent_reloads_total", {{"source", "config"}, {"result", "failure"}},
             config_failed_);
  out.Sample("xlb_agent_reloads_total", {{"source", "policy"}, {"result", "success"}}, policy_ok_);
  out.Sample("xlb_agent_reloads_total", {{"source", "policy"}, {"result", "failure"}},
             policy_failed_);
  out.Family("xlb_agent_plan_problems", "gauge",
             "What the inputs ask for that the last plan could not have (a policy problem, an "
             "SCTP port, a VIP two services claim, a healthCheckNodePort that cannot be bound); "
             "the agent logs each set once.");
  out.Sample("xlb_agent_plan_problems", {}, static_cast<double>(plan_problems_));
}

namespace {

// Entries of a hash map, walking its keys up to `cap`. -1 when the walk failed.
int64_t CountEntries(int fd, uint32_t key_size, uint32_t cap) {
  std::vector<unsigned char> prev(key_size), next(key_size);
  int64_t n = 0;
  const void* from = nullptr;
  while (n < cap) {
    int ret = bpf_map_get_next_key(fd, from, next.data());
    if (ret == -ENOENT) {
      return n;
    }
    if (ret < 0) {
      return -1;
    }
    ++n;
    prev.swap(next);
    from = prev.data();
  }
  return n;
}

}  // namespace

void WriteFlowCounters(const IdNames& names, const std::map<uint32_t, xlb_flow_counter>& services,
                       const std::map<uint32_t, xlb_flow_counter>& backends, size_t detail_limit,
                       Exposition& out) {
  auto service_labels = [&](uint32_t id) {
    const ServiceLabel& l = names.services.at(id);
    return Labels{{"service", l.service},
                  {"port", l.port},
                  {"family", l.family},
                  {"service_id", std::to_string(id)}};
  };
  struct Field {
    const char* suffix;
    const char* help;
    __u64 xlb_flow_counter::*member;
  };
  static constexpr Field kFields[] = {
      {"packets_total", "Packets balanced (new flows and established ones).",
       &xlb_flow_counter::packets},
      {"bytes_total", "Bytes of those packets, as they arrived.", &xlb_flow_counter::bytes},
      {"new_flows_total", "Conntrack misses for which Maglev selected a backend.",
       &xlb_flow_counter::new_flows},
  };
  // Past the limit a level has no series at all rather than an arbitrary part of them.
  const bool per_service = names.services.size() <= detail_limit;
  const bool per_backend = names.backends.size() <= detail_limit;
  static const std::map<uint32_t, xlb_flow_counter> kNone;
  for (const Field& f : kFields) {
    const std::string name = std::string("xlb_service_") + f.suffix;
    out.Family(name, "counter", std::string("Per service port and family: ") + f.help);
    for (const auto& [id, c] : per_service ? services : kNone) {
      out.Sample(name, service_labels(id), uint64_t{c.*(f.member)});
    }
  }

  // Per backend, and per cluster (the sum of its valid backends: a removed backend's counts
  // leave the sum, which Prometheus reads as a counter reset).
  std::map<std::string, xlb_flow_counter> by_cluster;
  for (const auto& [id, c] : backends) {
    xlb_flow_counter& sum = by_cluster[names.backends.at(id).cluster];
    sum.packets += c.packets;
    sum.bytes += c.bytes;
    sum.new_flows += c.new_flows;
  }
  for (const Field& f : kFields) {
    const std::string name = std::string("xlb_backend_") + f.suffix;
    out.Family(name, "counter", std::string("Per backend: ") + f.help);
    for (const auto& [id, c] : per_backend ? backends : kNone) {
      const BackendLabel& l = names.backends.at(id);
      out.Sample(
          name,
          {{"backend_id", std::to_string(id)}, {"address", l.address}, {"cluster", l.cluster}},
          uint64_t{c.*(f.member)});
    }
  }
  for (const Field& f : kFields) {
    const std::string name = std::string("xlb_cluster_") + f.suffix;
    out.Family(name, "counter", std::string("Per cluster, summed over its backends: ") + f.help);
    for (const auto& [cluster, c] : by_cluster) {
      out.Sample(name, {{"cluster", cluster}}, uint64_t{c.*(f.member)});
    }
  }
  out.Family("xlb_metrics_series_omitted", "gauge",
             "Service ports or backends whose own series are left out because there are more "
             "than --metrics-detail-limit of them (their clusters' sums are still exported).");
  out.Sample("xlb_metrics_series_omitted", {{"level", "service"}},
             uint64_t{per_service ? 0 : names.services.size()});
  out.Sample("xlb_metrics_series_omitted", {{"level", "backend"}},
             uint64_t{per_backend ? 0 : names.backends.size()});
}

void WriteDatapathMetrics(const XdpDatapath& dp, const IdNames& names, uint64_t valid_backends,
                          uint64_t tables, size_t detail_limit, Exposition& out) {
  std::vector<std::string> errors;

  // Per service (read only when they are exported), per backend (the clusters' sums need them).
  std::map<uint32_t, xlb_flow_counter> svc;
  const auto svc_stats = dp.service_stats();
  for (const auto& [id, label] : names.services) {
    if (names.services.size() > detail_limit) {
      break;
    }
    auto sum = svc_stats.LookupSum(id);
    if (!sum.ok()) {
      errors.push_back(XLB_MAP_SVC_STATS);
      break;
    }
    svc[id] = *sum;
  }
  std::map<uint32_t, xlb_flow_counter> be;
  const auto be_stats = dp.backend_stats();
  for (const auto& [id, label] : names.backends) {
    auto sum = be_stats.LookupSum(id);
    if (!sum.ok()) {
      errors.push_back(XLB_MAP_BE_STATS);
      break;
    }
    be[id] = *sum;
  }
  WriteFlowCounters(names, svc, be, detail_limit, out);

  // Per reason, with the verdict the reason belongs to.
  std::vector<xlb_counter> reasons;
  const auto reason_map = dp.reasons();
  for (const ReasonInfo& r : kReasons) {
    auto sum = reason_map.LookupSum(r.reason);
    if (!sum.ok()) {
      errors.push_back(XLB_MAP_REASONS);
      reasons.clear();
      break;
    }
    reasons.push_back(*sum);
  }
  out.Family("xlb_datapath_packets_total", "counter",
             "Packets seen by xlb_xdp and xlb_tc, by the reason of their verdict.");
  for (size_t i = 0; i < reasons.size(); ++i) {
    out.Sample("xlb_datapath_packets_total",
               {{"reason", std::string(kReasons[i].name)},
                {"verdict", std::string(VerdictName(kReasons[i].verdict))}},
               uint64_t{reasons[i].packets});
  }
  out.Family("xlb_datapath_bytes_total", "counter", "Bytes of those packets, by reason.");
  for (size_t i = 0; i < reasons.size(); ++i) {
    out.Sample("xlb_datapath_bytes_total",
               {{"reason", std::string(kReasons[i].name)},
                {"verdict", std::string(VerdictName(kReasons[i].verdict))}},
               uint64_t{reasons[i].bytes});
  }

  // Occupancy. Services are walked (a few per service port); valid backends and tables are
  // what the last sync left (the syncer's mirror of the maps, no syscall); the LRUs are
  // walked up to the cap.
  struct Occupancy {
    const char* map;
    int64_t entries;
    bool capped;
  };
  std::vector<Occupancy> occupancy;
  const int64_t services = CountEntries(dp.services().fd(), sizeof(xlb_service_key), UINT32_MAX);
  if (services < 0) {
    errors.push_back(XLB_MAP_SERVICES);
  } else {
    occupancy.push_back({"services", services, false});
  }
  occupancy.push_back({"backends", static_cast<int64_t>(valid_backends), false});
  occupancy.push_back({"maglev_tables", static_cast<int64_t>(tables), false});
  // The half-open tables: what a SYN flood churns through (full under one) instead of the two
  // before them. half_open_conntrack holds the half-open flows of this node's balancing (each
  // with its REVNAT entry), half_open_replies the TUNNEL entries of SYNs decapsulated here.
  for (const auto& [map, fd, key_size] :
       {std::tuple{"conntrack", dp.conntrack().fd(), sizeof(xlb_ct_key)},
        std::tuple{"replies", dp.replies().fd(), sizeof(xlb_ct_key)},
        std::tuple{"half_open_conntrack", dp.half_open_conntrack().fd(), sizeof(xlb_half_key)},
        std::tuple{"half_open_replies", dp.half_open_replies().fd(), sizeof(xlb_ct_key)}}) {
    const int64_t n = CountEntries(fd, static_cast<uint32_t>(key_size), kEntryCountCap);
    if (n < 0) {
      errors.push_back(map);
      continue;
    }
    occupancy.push_back({map, n, n >= kEntryCountCap});
  }
  out.Family("xlb_map_entries", "gauge",
             "Entries in xlb's maps: services (VIP keys), valid backends, Maglev tables, "
             "conntrack and reply entries, established and half-open (LRU; counted up to the "
             "cap, see xlb_map_entries_capped).");
  for (const Occupancy& o : occupancy) {
    out.Sample("xlb_map_entries", {{"map", o.map}}, static_cast<uint64_t>(o.entries));
  }
  out.Family("xlb_map_entries_capped", "gauge",
             "1 when the entry count stopped at the per-scrape cap: the map holds at least that "
             "many.");
  for (const Occupancy& o : occupancy) {
    out.Sample("xlb_map_entries_capped", {{"map", o.map}}, uint64_t{o.capped});
  }
  out.Family("xlb_map_capacity", "gauge", "Entries each map can hold (max_entries).");
  for (const auto& [map, view] :
       {std::pair{"services", MapView(dp.services().fd(), XLB_MAP_SERVICES)},
        std::pair{"backends", MapView(dp.backends().fd(), XLB_MAP_BACKENDS)},
        std::pair{"maglev_tables", MapView(dp.maglev_fd(), XLB_MAP_MAGLEV)},
        std::pair{"conntrack", MapView(dp.conntrack().fd(), XLB_MAP_CT)},
        std::pair{"replies", MapView(dp.replies().fd(), XLB_MAP_REPLY)},
        std::pair{"half_open_conntrack",
                  MapView(dp.half_open_conntrack().fd(), XLB_MAP_CT_HALF_OPEN)},
        std::pair{"half_open_replies",
                  MapView(dp.half_open_replies().fd(), XLB_MAP_REPLY_HALF_OPEN)}}) {
    auto info = view.Info();
    if (info.ok()) {
      out.Sample("xlb_map_capacity", {{"map", map}}, uint64_t{info->max_entries});
    }
  }
  out.Family("xlb_scrape_error", "gauge", "1 for a map this scrape could not read.");
  for (const std::string& map : errors) {
    out.Sample("xlb_scrape_error", {{"map", map}}, uint64_t{1});
  }
}

}  // namespace xlb
