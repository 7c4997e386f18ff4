// xlb-sync-bench: the control plane at scale, into the real maps of an unpinned datapath.
//
//   (a) plan + full sync of N services x 3 clusters x 10 endpoints from empty maps, with the
//       time split between planning, building Maglev tables, and the kernel (map writes,
//       including creating one inner map per table and swapping it in), and the peak RSS;
//       once with maglev_size 16381 (the default) and once with 1021;
//   (b) a policy file rewritten -> maps updated, through the agent's Reconciler polled every
//       200 ms as xlb-agent does (so the figure includes waiting for the next poll);
//   (c) one endpoint of one service removed or added back, in the N-service state: plan +
//       sync time and the number of map writes.
// Each size runs in a child process of its own, so each peak RSS is that run's alone. Needs
// root (BPF maps). Prints a Markdown table; --smoke runs 200 services and checks the counts
// (the ctest), not the timings.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loader/log.h"
#include "loader/xdp_loader.h"
#include "userspace/agent/reconciler.h"
#include "userspace/policy/routes.h"
#include "userspace/policy/weights.h"
#include "userspace/sync/bpf_map_store.h"
#include "userspace/sync/desired_state_tracker.h"
#include "userspace/sync/syncer.h"

namespace xlb::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Options {
  int services = 10000;
  int clusters = 3;
  int endpoints = 10;  // per cluster
  int policy_changes = 20;
  int endpoint_changes = 100;
  std::vector<uint32_t> sizes = {XLB_MAGLEV_DEFAULT_SIZE, 1021};
  bool smoke = false;
  bool policy = true;  // run (b)
};

// Peak resident memory of this process: getrusage's ru_maxrss and /proc's VmHWM (both KB).
std::pair<long, long> PeakRssKb() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  long hwm = -1;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      hwm = std::atol(line.c_str() + 6);
    }
  }
  return {ru.ru_maxrss, hwm};
}

// Resident memory now (VmRSS, KB): where the peak comes from.
long RssKb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::atol(line.c_str() + 6);
    }
  }
  return -1;
}

std::string Ip(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}

std::string ClusterName(int c) {
  return "cluster-" + std::to_string(c);
}

NamespacedName ServiceName(int i) {
  return {"bench", "svc-" + std::to_string(i)};
}

// Endpoint j of service i in cluster c (1-based): a unique address per (i, c, j).
Endpoint MakeEndpoint(const Options& o, int i, int c, int j) {
  const int k = i * o.endpoints + j;  // < 2^17 for 10,000 x 10
  Endpoint e;
  e.service = ServiceName(i);
  e.cluster = ClusterName(c);
  e.addresses = {*IpAddress::Parse(Ip(10, c * 2 + (k >> 16), (k >> 8) & 255, k & 255))};
  e.ports = {{"http", 8080, Protocol::kTcp}};
  e.node_name = "node-" + std::to_string(c);
  e.node_address = *IpAddress::Parse(Ip(172, 16, c, 1));
  return e;
}

std::vector<Endpoint> Endpoints(const Options& o, int i, int c, int skip = -1) {
  std::vector<Endpoint> out;
  for (int j = 0; j < o.endpoints; ++j) {
    if (j != skip) {
      out.push_back(MakeEndpoint(o, i, c, j));
    }
  }
  return out;
}

Model BuildModel(const Options& o) {
  Model m;
  for (int c = 1; c <= o.clusters; ++c) {
    m.PutCluster({static_cast<uint16_t>(c), ClusterName(c), c == 1});
  }
  for (int i = 0; i < o.services; ++i) {
    Service s;
    s.name = ServiceName(i);
    s.cluster_ips = {*IpAddress::Parse(Ip(10, 96, i >> 8, i & 255))};
    s.ports = {ServicePort{"http", 80, Protocol::kTcp, 8080, "", 0, ""}};
    m.PutService(s);
    for (int c = 1; c <= o.clusters; ++c) {
      m.SetEndpoints(s.name, ClusterName(c), Endpoints(o, i, c));
    }
  }
  return m;
}

// The same model as the agent's config file (userspace/model/config_source.h).
std::string ConfigYaml(const Options& o) {
  std::string y = "apiVersion: xlb.dev/v1alpha1\nkind: Config\nclusters:\n";
  for (int c = 1; c <= o.clusters; ++c) {
    y += "- name: " + ClusterName(c) + "\n  id: " + std::to_string(c) +
         "\n  local: " + (c == 1 ? "true" : "false") + "\n  nodes:\n  - name: node-" +
         std::to_string(c) + "\n    addresses: [" + Ip(172, 16, c, 1) + "]\n";
  }
  y += "services:\n";
  for (int i = 0; i < o.services; ++i) {
    y += "- name: svc-" + std::to_string(i) +
         "\n  namespace: bench\n  clusterIP: " + Ip(10, 96, i >> 8, i & 255) +
         "\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n    protocol: TCP\n";
  }
  y += "endpointSlices:\n";
  for (int i = 0; i < o.services; ++i) {
    for (int c = 1; c <= o.clusters; ++c) {
      y += "- service: svc-" + std::to_string(i) +
           "\n  namespace: bench\n  cluster: " + ClusterName(c) +
           "\n  ports:\n  - name: http\n    port: 8080\n    protocol: TCP\n" + "  endpoints:\n";
      for (const Endpoint& e : Endpoints(o, i, c)) {
        y += "  - addresses: [" + e.addresses[0].ToString() + "]\n    nodeName: " + e.node_name +
             "\n";
      }
    }
  }
  return y;
}

std::string VirtualService(int local, int remote) {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc-0\n"
         "  namespace: bench\nspec:\n  hosts: [svc-0]\n  tcp:\n  - route:\n"
         "    - destination:\n        host: svc-0.bench.svc.cluster.local\n      weight: " +
         std::to_string(local) +
         "\n    - destination:\n        host: svc-0.bench.svc.clusterset.local\n      weight: " +
         std::to_string(remote) + "\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << text;
  std::rename(tmp.c_str(), path.c_str());
}

// CPU time of this thread so far, user and system (ns resolution; getrusage's user/system
// split is made of scheduler ticks, too coarse for a change that takes a millisecond).
Clock::duration ThreadCpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// User and system CPU time of the whole process (every thread) so far.
std::pair<Clock::duration, Clock::duration> ProcessCpu() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto d = [](const timeval& tv) {
    return Clock::duration(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
  };
  return {d(ru.ru_utime), d(ru.ru_stime)};
}

// A MapStore that times the store's calls: what the kernel costs, apart from the syncer.
class TimedStore : public MapStore {
 public:
  explicit TimedStore(MapStore& inner) : inner_(inner) {}
  StoreLimits limits() const override { return inner_.limits(); }
  Result<void> PutBackend(uint32_t id, const xlb_backend& b) override {
    return Time(backend_, [&] { return inner_.PutBackend(id, b); });
  }
  Result<void> PutBackends(std::span<const BackendWrite> b, size_t& written) override {
    return Time(backend_, [&] { return inner_.PutBackends(b, written); });
  }
  Result<void> InstallTable(uint32_t id, std::span<const uint32_t> slots) override {
    return Time(table_, [&] { return inner_.InstallTable(id, slots); });
  }
  Result<void> InstallTables(std::span<const TableWrite> tables, size_t& installed) override {
    return Time(table_, [&] { return inner_.InstallTables(tables, installed); });
  }
  Result<void> RemoveTable(uint32_t id) override {
    return Time(other_, [&] { return inner_.RemoveTable(id); });
  }
  Result<void> PutService(const xlb_service_key& k, const xlb_service& s) override {
    return Time(other_, [&] { return inner_.PutService(k, s); });
  }
  Result<void> EraseService(const xlb_service_key& k) override {
    return Time(other_, [&] { return inner_.EraseService(k); });
  }
  Result<void> PutVipFilterWord(uint32_t w, uint64_t bits) override {
    return Time(other_, [&] { return inner_.PutVipFilterWord(w, bits); });
  }
  Result<void> PutPeer(const xlb_peer_key& k, const xlb_peer& p) override {
    return Time(other_, [&] { return inner_.PutPeer(k, p); });
  }
  Result<void> ErasePeer(const xlb_peer_key& k) override {
    return Time(other_, [&] { return inner_.ErasePeer(k); });
  }
  Result<void> PutAffinityMatch(const xlb_affinity_match_key& k) override {
    return Time(other_, [&] { return inner_.PutAffinityMatch(k); });
  }
  Result<void> EraseAffinityMatch(const xlb_affinity_match_key& k) override {
    return Time(other_, [&] { return inner_.EraseAffinityMatch(k); });
  }
  Result<void> PutSourceRange(const xlb_src_range_key& k) override {
    return Time(other_, [&] { return inner_.PutSourceRange(k); });
  }
  Result<void> EraseSourceRange(const xlb_src_range_key& k) override {
    return Time(other_, [&] { return inner_.EraseSourceRange(k); });
  }
  Result<MapContents> ReadAll() const override { return inner_.ReadAll(); }

  Clock::duration backend_{}, table_{}, other_{};
  Clock::duration cpu_{};  // CPU time (user and system) this thread spent inside the calls
  void Reset() { backend_ = table_ = other_ = cpu_ = {}; }

 private:
  template <typename Fn>
  Result<void> Time(Clock::duration& into, Fn&& fn) {
    const auto start = Clock::now();
    const auto cpu = ThreadCpu();
    Result<void> r = fn();
    into += Clock::now() - start;
    cpu_ += ThreadCpu() - cpu;
    return r;
  }
  MapStore& inner_;
};

struct Stats {
  double median = 0, p99 = 0, max = 0;
};
Stats Summarize(std::vector<double> v) {
  if (v.empty()) {
    return {};
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  };
  return {at(0.5), at(0.99), v.back()};
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "xlb-sync-bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<XdpDatapath> LoadDatapath(const Options& o, uint32_t size) {
  LoadOptions load;
  load.pin_dir = "";  // unpinned: the maps go with the process
  load.config.maglev_size = size;
  load.max_services = static_cast<uint32_t>(o.services) + 1;
  load.max_backends = static_cast<uint32_t>(o.services * o.clusters * o.endpoints) + 1;
  auto dp = XdpDatapath::Load(load);
  if (!dp.ok()) {
    Die("load the datapath: " + dp.error().ToString());
  }
  return std::move(*dp);
}

// (a) and (c) for one table size; rows go to `out` (the child's stdout). Both go through the
// agent's path: the syncer's tracked state (Syncer::PlanChanges, SyncChanges), the first
// plan naming every service, later ones the services the model's mutators touched.
void RunSize(const Options& o, uint32_t size) {
  auto dp = LoadDatapath(o, size);
  BpfMapStore bpf(*dp);
  TimedStore store(bpf);
  Syncer syncer(store);
  if (auto a = syncer.Adopt(); !a.ok()) {
    Die("adopt: " + a.error().ToString());
  }
  const long rss_start = RssKb();
  const auto t0 = Clock::now();
  Model model = BuildModel(o);
  const long rss_model = RssKb();
  const Routes routes;
  const ServicePlanner planner = [&](const NamespacedName& name) {
    const Service* s = model.FindService(name);
    return s != nullptr ? PlanService(model, *s, routes) : std::vector<ServiceBackends>{};
  };
  const auto t1 = Clock::now();
  const auto cpu_start = ProcessCpu();
  ModelChanges all = model.TakeChanges();
  std::set<NamespacedName> names;
  for (const auto& [name, service] : model.services()) {
    names.insert(names.end(), name);
  }
  if (auto planned = syncer.PlanChanges(model, names, planner); !planned.ok()) {
    Die("plan: " + planned.error().ToString());
  }
  names.clear();
  const long rss_desired = RssKb();
  const auto t2 = Clock::now();
  const SyncResult full = syncer.SyncChanges();
  const auto t3 = Clock::now();
  const auto cpu_end = ProcessCpu();
  if (!full.ok()) {
    Die("full sync: " + full.error->ToString());
  }
  const auto [maxrss, hwm] = PeakRssKb();
  const uint64_t expect_tables = static_cast<uint64_t>(o.services);
  const uint64_t expect_backends = static_cast<uint64_t>(o.services * o.clusters * o.endpoints);
  if (!all.everything || full.writes[WriteKind::kTable] != expect_tables ||
      full.writes[WriteKind::kBackend] != expect_backends) {
    Die("full sync wrote " + full.writes.ToString());
  }
  std::printf(
      "ROW|(a) plan + full sync, %d services x %d clusters x %d endpoints, maglev_size %u|"
      "%.0f ms (plan %.0f + sync %.0f: backends %.0f, tables ~%.0f = builds on 2 threads "
      "with the previous batch installed beside them, %.0f of it in the store's table calls, "
      "rest %.0f); %llu writes; CPU of all threads %.0f ms "
      "user + %.0f ms system; model built in %.0f ms|< 2000 ms|%s\n",
      o.services, o.clusters, o.endpoints, size, Ms(t3 - t1), Ms(t2 - t1), Ms(t3 - t2),
      Ms(store.backend_), Ms(t3 - t2) - Ms(store.backend_) - Ms(store.other_), Ms(store.table_),
      Ms(store.other_), static_cast<unsigned long long>(full.writes.total()),
      Ms(cpu_end.first - cpu_start.first), Ms(cpu_end.second - cpu_start.second), Ms(t1 - t0),
      Ms(t3 - t1) < 2000 ? "met" : "missed");
  std::printf(
      "ROW|(a) peak RSS after the full sync, maglev_size %u|ru_maxrss %.0f MB, VmHWM %.0f MB "
      "(VmRSS at start %.0f MB, +model %.0f, +plans and tracked state %.0f, after the "
      "sync %.0f)|< 300 MB|%s\n",
      size, maxrss / 1024.0, hwm / 1024.0, rss_start / 1024.0, (rss_model - rss_start) / 1024.0,
      (rss_desired - rss_model) / 1024.0, RssKb() / 1024.0, hwm / 1024.0 < 300 ? "met" : "missed");

  // (c) One endpoint of one service goes, then comes back, as an EndpointSlice update would
  // say it (Model::SetEndpoints): the service the model says changed is re-planned, and only
  // the entries it touched are diffed and written.
  std::vector<double> plan_ms, sync_ms, total_ms, cpu_ms, user_ms, writes;
  store.Reset();
  Clock::duration kernel_in_c{};
  for (int n = 0; n < o.endpoint_changes; ++n) {
    const int i = (n / 2 * 7919) % o.services;  // spread over the services
    const bool remove = n % 2 == 0;
    store.Reset();
    const auto cpu0 = ThreadCpu();
    const auto s0 = Clock::now();
    model.SetEndpoints(ServiceName(i), ClusterName(2), Endpoints(o, i, 2, remove ? 3 : -1));
    const ModelChanges changed = model.TakeChanges();
    if (auto planned = syncer.PlanChanges(model, changed.services, planner); !planned.ok()) {
      Die("plan: " + planned.error().ToString());
    }
    const auto s1 = Clock::now();
    const SyncResult r = syncer.SyncChanges();
    const auto s2 = Clock::now();
    const auto cpu1 = ThreadCpu();
    if (!r.ok()) {
      Die("sync: " + r.error->ToString());
    }
    kernel_in_c += store.backend_ + store.table_ + store.other_;
    plan_ms.push_back(Ms(s1 - s0));
    sync_ms.push_back(Ms(s2 - s1));
    total_ms.push_back(Ms(s2 - s0));
    cpu_ms.push_back(Ms(cpu1 - cpu0));
    // Userspace alone: the thread's CPU time outside the store's calls (syscalls).
    user_ms.push_back(Ms(cpu1 - cpu0) - Ms(store.cpu_));
    writes.push_back(static_cast<double>(r.writes.total()));
    // One table, the backend (invalidated or valid again), the service entry's backend_count.
    if (changed.services.size() != 1 || r.writes[WriteKind::kTable] != 1 || r.writes.total() != 3) {
      Die("an endpoint change wrote " + r.writes.ToString());
    }
  }
  const Stats p = Summarize(plan_ms), s = Summarize(sync_ms), t = Summarize(total_ms),
              cpu = Summarize(cpu_ms), user = Summarize(user_ms);
  std::printf(
      "ROW|(c) one endpoint change (%d changes), maglev_size %u|plan + sync: median %.2f ms, "
      "p99 %.2f ms (plan: median %.3f ms, p99 %.3f ms; sync: median %.2f ms, p99 %.2f ms, of "
      "which in the store's syscalls %.2f ms on average); CPU per change: median %.2f ms, p99 "
      "%.2f ms, of which outside the store's calls (userspace) median %.2f ms, p99 %.2f ms; %.0f "
      "writes each (table, "
      "backend, service)|< 5 ms|plan + sync %s, userspace CPU %s\n",
      o.endpoint_changes, size, t.median, t.p99, p.median, p.p99, s.median, s.p99,
      Ms(kernel_in_c) / o.endpoint_changes, cpu.median, cpu.p99, user.median, user.p99,
      Summarize(writes).median, t.p99 < 5 ? "met" : "missed", user.p99 < 5 ? "met" : "missed");
  std::fflush(stdout);
}

// (b) Through the Reconciler, from the config file, polled like the agent does.
void RunPolicy(const Options& o) {
  char dir_template[] = "/tmp/xlb-sync-bench-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    Die("mkdtemp");
  }
  const std::string dir = dir_template;
  const std::string config = dir + "/config.yaml";
  const std::string policy = dir + "/policy.yaml";
  WriteFile(config, ConfigYaml(o));
  WriteFile(policy, VirtualService(70, 30));

  auto dp = LoadDatapath(o, XLB_MAGLEV_DEFAULT_SIZE);
  BpfMapStore store(*dp);
  Reconciler reconciler({config, policy}, [](LogLevel, const std::string&) {});
  const auto s0 = Clock::now();
  if (auto started = reconciler.Start(); !started.ok()) {
    Die("reconciler start: " + started.error().front().ToString());
  }
  const auto s1 = Clock::now();
  if (auto a = reconciler.Adopt(store); !a.ok()) {
    Die("adopt: " + a.error().ToString());
  }
  auto first = reconciler.Poll();
  const auto s2 = Clock::now();
  if (!first || !first->ok()) {
    Die("first sync through the reconciler failed");
  }

  // The agent's loop on a thread of its own; the main thread writes the file at a random
  // point of the 200 ms poll cycle and waits for the sync that follows.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> synced{reconciler.syncs()};
  std::atomic<int64_t> synced_at{0};
  std::atomic<int64_t> last_poll_ns{0};
  std::thread loop([&] {
    while (!stop) {
      const auto p0 = Clock::now();
      auto r = reconciler.Poll();
      if (r) {
        last_poll_ns = (Clock::now() - p0).count();
        synced_at = Clock::now().time_since_epoch().count();
        synced = reconciler.syncs();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  std::vector<double> latency, poll;
  unsigned seed = 12345;
  for (int n = 0; n < o.policy_changes; ++n) {
    seed = seed * 1103515245 + 12345;
    std::this_thread::sleep_for(std::chrono::milliseconds(250 + (seed >> 16) % 200));
    const uint64_t before = synced;
    const auto written = Clock::now();
    WriteFile(policy, n % 2 == 0 ? VirtualService(60, 40) : VirtualService(70, 30));
    while (synced == before) {
      if (Clock::now() - written > std::chrono::seconds(60)) {
        Die("policy change " + std::to_string(n) + " reached no map within 60 s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    latency.push_back(Ms(Clock::time_point(Clock::duration(synced_at.load())) - written));
    poll.push_back(static_cast<double>(last_poll_ns.load()) / 1e6);
  }
  stop = true;
  loop.join();
  const auto [maxrss, hwm] = PeakRssKb();
  const Stats l = Summarize(latency), p = Summarize(poll);
  std::printf(
      "ROW|(b) policy file change -> maps updated, through the Reconciler polled every 200 ms "
      "(%d changes, %d services, maglev_size %u)|median %.0f ms, p99 %.0f ms (of which the "
      "Poll() that synced: median %.0f ms, p99 %.0f ms; the rest is waiting for the next "
      "poll)|-|-\n",
      o.policy_changes, o.services, XLB_MAGLEV_DEFAULT_SIZE, l.median, l.p99, p.median, p.p99);
  std::printf(
      "ROW|(b) the agent's start on the config file (YAML parse, plan, full sync)|read %.0f ms, "
      "adopt + first sync %.0f ms; peak RSS ru_maxrss %.0f MB, VmHWM %.0f MB (includes the "
      "YAML source's parse)|-|-\n",
      Ms(s1 - s0), Ms(s2 - s1), maxrss / 1024.0, hwm / 1024.0);
  std::fflush(stdout);
  std::remove(config.c_str());
  std::remove(policy.c_str());
  ::rmdir(dir.c_str());
}

// Runs fn in a child; returns its stdout. A failed child fails the bench.
std::string InChild(const std::function<void()>& fn) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) {
    Die("pipe");
  }
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    ::dup2(pipefd[1], STDOUT_FILENO);
    try {
      fn();
    } catch (const std::exception& e) {
      Die(e.what());
    }
    std::fflush(stdout);
    std::_Exit(0);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof(buf))) > 0;) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fputs(out.c_str(), stdout);
    Die("a measurement failed (see above)");
  }
  return out;
}

void PrintTable(const std::string& rows) {
  std::printf("| measurement | result | target | |\n|---|---|---|---|\n");
  size_t at = 0;
  while ((at = rows.find("ROW|", at)) != std::string::npos) {
    const size_t end = rows.find('\n', at);
    std::string row = rows.substr(at + 4, end - at - 4);
    std::replace(row.begin(), row.end(), '|', '\x01');
    std::string cells;
    for (const char c : row) {
      cells += c == '\x01' ? std::string(" | ") : std::string(1, c);
    }
    std::printf("| %s |\n", cells.c_str());
    at = end;
  }
  std::printf(
      "| context: kube-proxy (iptables) | ~2.8 s per partial sync at 3,600 services (reported) "
      "| - | - |\n");
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) {
        Die(std::string(a) + " needs a value");
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--smoke") {
      o.smoke = true;
      o.services = 200;
      o.policy_changes = 3;
      o.endpoint_changes = 6;
    } else if (a == "--services") {
      o.services = next();
    } else if (a == "--policy-changes") {
      o.policy_changes = next();
    } else if (a == "--endpoint-changes") {
      o.endpoint_changes = next();
    } else if (a == "--no-policy") {
      o.policy = false;
    } else if (a == "--maglev-size") {
      o.sizes = {static_cast<uint32_t>(next())};
    } else {
      std::fprintf(stderr,
                   "usage: xlb-sync-bench [--smoke] [--services N] [--policy-changes N] "
                   "[--endpoint-changes N] [--maglev-size PRIME] [--no-policy]\n");
      return 2;
    }
  }
  if (o.services < 1 || o.services > 60000) {
    Die("--services: 1 to 60000 (cluster IPs are 10.96.x.y)");
  }
  SetLogSink([](LogLevel level, std::string_view m) {
    if (level == LogLevel::kWarn) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(m.size()), m.data());
    }
  });
  std::string rows;
  for (const uint32_t size : o.sizes) {
    rows += InChild([&] { RunSize(o, size); });
  }
  if (o.policy) {
    rows += InChild([&] { RunPolicy(o); });
  }
  std::printf("xlb-sync-bench: %d services x %d clusters x %d endpoints, %u CPUs\n\n", o.services,
              o.clusters, o.endpoints, std::thread::hardware_concurrency());
  PrintTable(rows);
  return 0;
}

}  // namespace
}  // namespace xlb::bench

int main(int argc, char** argv) {
  try {
    return xlb::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-sync-bench: %s\n", e.what());
    return 1;
  }
}
