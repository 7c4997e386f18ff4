// The agent's metrics in Prometheus' text exposition format (version 0.0.4), and the state the
// HTTP endpoint reports: what the loop publishes (AgentStatus) and what is read from the maps
// at scrape time (WriteDatapathMetrics).
//
// Counters of the datapath live in per-CPU maps; they are summed when scraped, never cached,
// so a scrape costs one lookup per service and backend id the agent knows of plus one per
// reason. Entries of the LRU hashes (conntrack, replies) are counted by walking their keys, up
// to kEntryCountCap each: a walk is one syscall per entry, so a scrape of a full 262,144-entry
// conntrack table would take ~0.3 s; at the cap the gauge says "at least" and
// xlb_map_entries_capped says so.
//
// Names: xlb_<what>_<unit>, counters end in _total (Prometheus' naming rules).
#ifndef XLB_USERSPACE_AGENT_METRICS_H
#define XLB_USERSPACE_AGENT_METRICS_H

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/sync/map_store.h"

namespace xlb {

class XdpDatapath;

// Label values may hold any UTF-8; backslash, double quote and line feed are escaped.
std::string EscapeLabelValue(std::string_view value);
// HELP text escapes backslash and line feed only.
std::string EscapeHelp(std::string_view help);

using Labels = std::vector<std::pair<std::string, std::string>>;

// Builds one exposition. Each family's # HELP and # TYPE come once, before its samples; the
// caller keeps a family's samples together (the format requires it).
class Exposition {
 public:
  // type: "counter", "gauge" or "histogram".
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, const Labels& labels, uint64_t value);
  void Sample(std::string_view name, const Labels& labels, double value);

  const std::string& text() const { return text_; }

 private:
  void Head(std::string_view name, const Labels& labels);
  std::string text_;
};

// A Prometheus histogram: cumulative buckets, +Inf, _sum and _count. Not thread-safe by itself
// (AgentStatus guards it).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending

  void Observe(double value);
  void Write(Exposition& out, std::string_view name, std::string_view help,
             const Labels& labels = {}) const;

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last one is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Sync durations: 100 µs (a no-op sync) to 10 s (a full sync of ten thousand tables).
std::vector<double> SyncDurationBuckets();

// Names of what the maps hold, by id: the labels of per-service and per-backend series.
struct ServiceLabel {
  std::string service;  // "namespace/name"
  std::string port;     // "8080/TCP"
  std::string family;   // "IPv4"
};
struct BackendLabel {
  std::string address;  // "198.18.10.11:8080", "[2001:db8::1]:8080"
  std::string cluster;  // the cluster's name ("" when the model has none of that id)
};
struct IdNames {
  std::map<uint32_t, ServiceLabel> services;
  std::map<uint32_t, BackendLabel> backends;  // valid backends only
};

// Network programming latency: 1 ms to about 9 minutes, doubling (kube-proxy's buckets start
// at 1 ms too); an event-driven sync lands in the first few.
std::vector<double> NetworkProgrammingBuckets();

// What the agent's loop publishes for the HTTP thread: written by the loop, read by scrapes,
// under one mutex. The loop never waits on a scrape for longer than it takes to format the
// agent's own few dozen lines; the map reads of a scrape happen outside the lock.
// Seconds since the Unix epoch, now (what Prometheus and health-check bodies show).
double WallClockSeconds();

class AgentStatus {
 public:
  AgentStatus();

  // Readiness waits for xlb_xdp on every one of these uplinks (--uplink); none = no XDP.
  void RequireXdp(std::vector<std::string> uplinks);
  // The loop is alive (called every iteration; /healthz).
  void Heartbeat();
  // A sync ran: its duration, writes, and whether it succeeded (/readyz, the histogram).
  void RecordSync(std::chrono::nanoseconds duration, const WriteCounts& writes, bool ok);
  // Reloads accepted or rejected so far (the reconciler's totals, not increments).
  void SetReloads(uint64_t config_ok, uint64_t config_failed, uint64_t policy_ok,
                  uint64_t policy_failed);
  // How many things the inputs ask for cannot be had (xlb_agent_plan_problems).
  void SetPlanProblems(uint64_t problems);
  // What the maps hold by id, and how many of each the last planned state has.
  void SetNames(IdNames names, uint64_t valid_backends, uint64_t tables);
  // xlb_xdp is attached to this uplink (xlb_agent_xdp_attached{interface=...}).
  void SetXdpAttached(const std::string& uplink);
  // Socket LB is attached (xlb_agent_socket_lb_attached 1; 0 while off or left off).
  void SetSocketLbAttached();
  // Pins found removed under the running agent and made again (xlb_agent_repins_total).
  void CountRepins(uint64_t pins);

  // /healthz: the loop ran within `stale` (it runs every poll interval, so a loop stuck in a
  // syscall or a deadlock turns this off).
  bool Healthy(std::chrono::steady_clock::duration stale) const;
  // /readyz: the last sync succeeded, at least one did, and XDP is attached to every uplink.
  bool Ready() const;
  // Wall-clock seconds of the last successful sync; 0 before the first.
  double LastSyncSuccessUnix() const;

  // The agent's own series (up, syncs, reloads, readiness).
  void WriteAgentMetrics(Exposition& out) const;
  IdNames Names() const;
  std::pair<uint64_t, uint64_t> ValidBackendsAndTables() const;

 private:
  bool ReadyLocked() const;

  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point heartbeat_;
  Histogram sync_seconds_;
  std::array<uint64_t, kWriteKinds> writes_{};
  uint64_t syncs_failed_ = 0;
  double last_sync_success_unix_ = 0;  // wall clock: what Prometheus compares with time()
  bool synced_once_ = false;
  bool last_sync_ok_ = false;
  std::map<std::string, bool> xdp_attached_;  // by uplink
  bool socket_lb_attached_ = false;
  uint64_t repins_ = 0;
  uint64_t plan_problems_ = 0;
  uint64_t config_ok_ = 0, config_failed_ = 0, policy_ok_ = 0, policy_failed_ = 0;
  IdNames names_;
  uint64_t valid_backends_ = 0;
  uint64_t tables_ = 0;
};

// LRU entries counted per scrape, at most (see the header comment).
inline constexpr uint32_t kEntryCountCap = 65536;

// Per service port, backend and cluster: packets, bytes, new flows, from the stat maps' sums
// (`services`, `backends`: by id, for the ids `names` has). Per-service and per-backend series
// are written only while there are at most `detail_limit` service ports, resp. backends
// (--metrics-detail-limit): with 100,000 endpoints a node would otherwise export 300,000
// backend series. The clusters' sums and xlb_metrics_series_omitted are always written.
void WriteFlowCounters(const IdNames& names, const std::map<uint32_t, xlb_flow_counter>& services,
                       const std::map<uint32_t, xlb_flow_counter>& backends, size_t detail_limit,
                       Exposition& out);

// WriteFlowCounters; per reason: packets and bytes with the verdict; map occupancy. Reads the
// maps now. A map that cannot be read is skipped and named in xlb_scrape_error{map=...} 1, so
// one bad read does not lose the whole scrape.
void WriteDatapathMetrics(const XdpDatapath& dp, const IdNames& names, uint64_t valid_backends,
                          uint64_t tables, size_t detail_limit, Exposition& out);

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_METRICS_H
