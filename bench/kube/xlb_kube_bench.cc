// xlb-kube-bench: the agent's Kubernetes path end to end, into the real maps of an unpinned
// datapath. One test API server per cluster (HTTPS, bearer token, chunked watches) runs in a
// child process, so the agent process's peak RSS is the agent's alone; the agent side is
// what xlb-agent --kube runs: KubeFeed (watch client + KubeSource) draining into the
// Reconciler's model, which plans and syncs the maps.
//
//   (1) event -> map latency: N services (default 1,000) in 3 clusters (the local one and 2
//       direct remotes), 10 endpoints per cluster and service; then single EndpointSlice
//       updates (default 10,000 after a 200-update warm-up), each flipping one endpoint's
//       readiness or address, alternating clusters and services. t0 is taken in the server
//       process just before TestApiServer::Update(), t1 when the agent's sync that wrote
//       the change returned (steady_clock is CLOCK_MONOTONIC, the same clock in both
//       processes). Split: server -> agent woken (the server's encode, TLS, the watch
//       client's parse and cache), drain into the model, plan + sync.
//   (2) the initial sync: KubeFeed started -> every cluster listed -> maps written;
//   (3) peak RSS (VmHWM) of the agent process with 100,000 endpoints (2,000 services x 5
//       clusters x 10 endpoints, after 220 updates at that size, whose latency is reported
//       too), and of the API servers' process for comparison.
// Each phase runs in a process of its own (and its servers in one more), so each peak is that
// phase's. Needs root (BPF maps). Prints a Markdown table, or JSON with --json; --smoke runs a
// small state and checks the counts (the ctest), not the timings.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loader/log.h"
#include "loader/xdp_loader.h"
#include "tests/kube/apiserver/test_apiserver.h"
#include "userspace/agent/kube_feed.h"
#include "userspace/agent/reconciler.h"
#include "userspace/sync/bpf_map_store.h"

namespace xlb::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kServicesPath = "/api/v1/services";
constexpr const char* kSlicesPath = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kNodesPath = "/api/v1/nodes";
constexpr const char* kToken = "bench-token";
constexpr int kNodesPerCluster = 10;
// Endpoint addresses are 198.18.0.0/15 + an index; the alternate address of an endpoint (the
// address updates) is the index + kAltOffset, so the base indexes stay below it.
constexpr uint32_t kAltOffset = 1u << 16;
constexpr uint32_t kAddressSpace = 1u << 17;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The size of one phase's state.
struct Shape {
  int services = 0;
  int clusters = 0;
  int endpoints = 0;  // per cluster and service: one EndpointSlice
  int64_t total_endpoints() const { return int64_t{services} * clusters * endpoints; }
};

struct Options {
  Shape latency{1000, 3, 10};
  Shape memory{2000, 5, 10};
  int warmup = 200;
  int updates = 10000;
  int memory_warmup = 20;  // in the memory phase
  int memory_updates = 200;
  bool run_latency = true;
  bool run_memory = true;
  bool smoke = false;
  bool json = false;
};

std::string g_temp_dir;  // removed by Die() too
bool g_verbose = false;  // --verbose: the agent's info lines too

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "xlb-kube-bench: %s\n", what.c_str());
  if (!g_temp_dir.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(g_temp_dir, ignored);
  }
  std::exit(1);
}

// A field of /proc/<pid>/status in KB ("VmHWM:  123 kB"); -1 when absent.
long StatusKb(const std::string& status_path, std::string_view field) {
  std::ifstream status(status_path);
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field, 0) == 0) {
      return std::atol(line.c_str() + field.size());
    }
  }
  return -1;
}
long SelfKb(std::string_view field) {
  return StatusKb("/proc/self/status", field);
}

std::string ClusterName(int c) {
  return "cluster-" + std::string(1, static_cast<char>('a' + c));
}
std::string ServiceName(int s) {
  return "svc-" + std::to_string(s);
}
std::string NodeName(int c, int n) {
  return "node-" + std::to_string(c) + "-" + std::to_string(n);
}
std::string Ipv4(uint32_t v) {
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}
// Endpoint j of service s in cluster c: a unique address in 198.18.0.0/15 (map data only: no
// packet is sent anywhere).
std::string EndpointAddress(const Shape& shape, int c, int s, int j, bool alternate) {
  const uint32_t index = static_cast<uint32_t>((c * shape.services + s) * shape.endpoints + j + 1) +
                         (alternate ? kAltOffset : 0);
  return Ipv4((198u << 24 | 18u << 16) + index);
}

// ---- The API servers' process -------------------------------------------------------------

// The state of one slice, which the updates flip.
struct SliceState {
  bool first_ready = true;        // endpoint 0's readiness
  bool second_alternate = false;  // endpoint 1 at its alternate address
};

json ServiceObject(int s) {
  const std::string ip = Ipv4((10u << 24 | 96u << 16) + static_cast<uint32_t>(s));
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", ServiceName(s)}, {"namespace", "bench"}}},
          {"spec",
           {{"type", "ClusterIP"},
            {"clusterIP", ip},
            {"clusterIPs", json::array({ip})},
            {"ports",
             json::array(
                 {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}}})}}}};
}

json SliceObject(const Shape& shape, int c, int s, const SliceState& state) {
  json endpoints = json::array();
  for (int j = 0; j < shape.endpoints; ++j) {
    const bool ready = j != 0 || state.first_ready;
    endpoints.push_back(
        {{"addresses",
          json::array({EndpointAddress(shape, c, s, j, j == 1 && state.second_alternate)})},
         {"nodeName", NodeName(c, (s + j) % kNodesPerCluster)},
         {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", false}}}});
  }
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"name", ServiceName(s) + "-" + ClusterName(c)},
            {"namespace", "bench"},
            {"labels", {{"kubernetes.io/service-name", ServiceName(s)}}}}},
          {"addressType", "IPv4"},
          {"ports", json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})},
          {"endpoints", std::move(endpoints)}};
}

json NodeObject(int c, int n) {
  const std::string ip = Ipv4((172u << 24 | 16u << 16) + static_cast<uint32_t>((c << 8) | (n + 1)));
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", NodeName(c, n)}}},
          {"status", {{"addresses", json::array({{{"type", "InternalIP"}, {"address", ip}}})}}}};
}

// What the agent process asks of the servers' process, and the answer.
enum class Op : int32_t { kUpdate = 1, kQuit = 2 };
struct Command {
  Op op = Op::kQuit;
  int32_t cluster = 0;
  int32_t service = 0;
  int32_t readiness = 0;  // 1: flip endpoint 0's readiness; 0: move endpoint 1's address
};
struct Reply {
  int64_t value = 0;  // kUpdate: t0 (steady_clock ns); kQuit and ready: VmHWM KB
  int32_t ok = 0;
};

bool WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}
bool ReadAll(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The child: starts one server per cluster, fills it, writes the kubeconfigs, answers
// `ready`, then serves commands until kQuit or the agent process's end (EOF).
int ServeClusters(const Shape& shape, const std::string& dir, int commands, int replies) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the agent process
  try {
    std::vector<std::unique_ptr<testing::TestApiServer>> servers;
    std::vector<std::vector<SliceState>> slices(static_cast<size_t>(shape.clusters),
                                                std::vector<SliceState>(shape.services));
    for (int c = 0; c < shape.clusters; ++c) {
      testing::ApiServerOptions options;
      options.tokens = {kToken};
      auto& server = servers.emplace_back(std::make_unique<testing::TestApiServer>(options));
      for (int n = 0; n < kNodesPerCluster; ++n) {
        server->Create(kNodesPath, NodeObject(c, n));
      }
      for (int s = 0; s < shape.services; ++s) {
        server->Create(kServicesPath, ServiceObject(s));
        server->Create(kSlicesPath, SliceObject(shape, c, s, {}));
      }
      server->Start();
      server->WriteKubeconfig(dir + "/" + ClusterName(c) + ".kubeconfig", kToken);
    }
    Reply ready{SelfKb("VmHWM:"), 1};
    if (!WriteAll(replies, &ready, sizeof ready)) {
      return 1;
    }
    for (Command cmd; ReadAll(commands, &cmd, sizeof cmd);) {
      if (cmd.op == Op::kQuit) {
        Reply done{SelfKb("VmHWM:"), 1};
        WriteAll(replies, &done, sizeof done);
        return 0;
      }
      SliceState& state =
          slices.at(static_cast<size_t>(cmd.cluster)).at(static_cast<size_t>(cmd.service));
      if (cmd.readiness != 0) {
        state.first_ready = !state.first_ready;
      } else {
        state.second_alternate = !state.second_alternate;
      }
      json slice = SliceObject(shape, cmd.cluster, cmd.service, state);
      Reply r{Clock::now().time_since_epoch().count(), 1};
      servers[static_cast<size_t>(cmd.cluster)]->Update(kSlicesPath, std::move(slice));
      if (!WriteAll(replies, &r, sizeof r)) {
        return 1;
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-kube-bench: the API servers' process: %s\n", e.what());
    Reply failed{0, 0};
    WriteAll(replies, &failed, sizeof failed);
    return 1;
  }
}

// ---- The agent process --------------------------------------------------------------------

// The servers' process, seen from the agent process.
class ServerProcess {
 public:
  ServerProcess(const Shape& shape, const std::string& dir) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      Die(std::string("pipe: ") + std::strerror(errno));
    }
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
      Die(std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(from_child[0]);
      ::_exit(ServeClusters(shape, dir, to_child[0], from_child[1]));
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    commands_ = to_child[1];
    replies_ = from_child[0];
    Reply ready;
    if (!ReadAll(replies_, &ready, sizeof ready) || ready.ok == 0) {
      Die("the API servers did not start (see above)");
    }
  }
  ~ServerProcess() {
    ::close(commands_);
    ::close(replies_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Sends an update; the answer (t0) is read by Took().
  void Send(const Command& cmd) {
    if (!WriteAll(commands_, &cmd, sizeof cmd)) {
      Die("the API servers' process is gone");
    }
  }
  Clock::time_point Took() {
    Reply r;
    if (!ReadAll(replies_, &r, sizeof r) || r.ok == 0) {
      Die("an update on the API server failed (see above)");
    }
    return Clock::time_point(Clock::duration(r.value));
  }
  // Ends the servers; their process's peak RSS (KB).
  long Quit() {
    Send({Op::kQuit, 0, 0, 0});
    Reply r;
    return ReadAll(replies_, &r, sizeof r) ? r.value : -1;
  }

 private:
  pid_t pid_ = -1;
  int commands_ = -1;
  int replies_ = -1;
};

// The KubeSources config: the local cluster and the direct remotes, one kubeconfig each.
std::string WriteSourcesConfig(const Shape& shape, const std::string& dir) {
  std::string y =
      "apiVersion: xlb.dev/v1alpha1\nkind: KubeSources\nlocal:\n  name: " + ClusterName(0) +
      "\n  kubeconfig: " + dir + "/" + ClusterName(0) + ".kubeconfig\n";
  if (shape.clusters > 1) {
    y += "clusters:\n";
    for (int c = 1; c < shape.clusters; ++c) {
      y += "- name: " + ClusterName(c) + "\n  kubeconfig: " + dir + "/" + ClusterName(c) +
           ".kubeconfig\n";
    }
  }
  const std::string path = dir + "/kube-sources.yaml";
  std::ofstream(path) << y;
  return path;
}

void Log(LogLevel level, const std::string& line) {
  if (level == LogLevel::kWarn || g_verbose) {
    std::fprintf(stderr, "xlb-kube-bench: agent: %s\n", line.c_str());
  }
}

// The agent side of one phase: datapath, reconciler, feed, and the initial sync done.
struct Agent {
  std::unique_ptr<XdpDatapath> datapath;
  std::unique_ptr<BpfMapStore> store;
  std::unique_ptr<Reconciler> reconciler;
  std::unique_ptr<KubeFeed> feed;
  double initial_sync_ms = 0;
  double lists_ms = 0;         // until every cluster's lists were in (seen within 5 ms)
  double initial_poll_ms = 0;  // of which in Reconciler::Poll() (plan + sync)
  uint64_t initial_syncs = 0;

  ~Agent() { feed.reset(); }  // the watches stop before what they report to goes
};

std::unique_ptr<Agent> StartAgent(const Shape& shape, const std::string& dir) {
  auto agent = std::make_unique<Agent>();
  // The Kubernetes mode of the Reconciler: no config file, the model is the feed's.
  agent->reconciler = std::make_unique<Reconciler>(SourcePaths{"", ""}, Log);
  if (auto started = agent->reconciler->Start(); !started.ok()) {
    Die("reconciler start without a config file: " + started.error().front().ToString());
  }
  LoadOptions load;
  load.pin_dir = "";  // unpinned: the maps go with the process, even when it dies
  load.max_services = static_cast<uint32_t>(shape.services) + 1;
  // Freed backend ids may be reused only after a grace period: room for the churn.
  load.max_backends = static_cast<uint32_t>(shape.total_endpoints() * 2) + 1;
  auto dp = XdpDatapath::Load(load);
  if (!dp.ok()) {
    Die("load the datapath: " + dp.error().ToString());
  }
  agent->datapath = std::move(*dp);
  agent->store = std::make_unique<BpfMapStore>(*agent->datapath);
  if (auto a = agent->reconciler->Adopt(*agent->store); !a.ok()) {
    Die("adopt: " + a.error().ToString());
  }

  const std::string config = WriteSourcesConfig(shape, dir);
  const auto t0 = Clock::now();
  auto feed = KubeFeed::Start(config, {}, "", Log);
  if (!feed.ok()) {
    Die("KubeFeed::Start(" + config + "): " + feed.error().front().ToString());
  }
  agent->feed = std::move(*feed);
  const auto deadline = t0 + 120s;
  Clock::time_point written = t0;  // the end of the last sync that wrote something
  for (;;) {
    if (Clock::now() > deadline) {
      Die("the initial sync took more than 120 s");
    }
    // A short wait: the last list may complete without news for the model.
    agent->feed->WaitForChange(5ms);
    // Everything listed before this drain: the sync after it holds the whole state.
    const bool all_listed = agent->feed->source().AllSynced();
    agent->feed->Drain(agent->reconciler->model());
    if (agent->lists_ms == 0 && agent->feed->source().AllSynced()) {
      agent->lists_ms = Ms(Clock::now() - t0);
    }
    if (agent->feed->LocalSynced()) {
      const auto p0 = Clock::now();
      if (auto r = agent->reconciler->Poll(); r) {
        if (!r->ok()) {
          Die("initial sync: " + r->error->ToString());
        }
        ++agent->initial_syncs;
        agent->initial_poll_ms += Ms(Clock::now() - p0);
        if (r->writes.total() > 0) {
          written = Clock::now();
        }
      }
    }
    if (all_listed) {
      break;
    }
  }
  agent->initial_sync_ms = Ms(written - t0);
  if (agent->reconciler->planned_backends() != static_cast<uint64_t>(shape.total_endpoints())) {
    Die("after the initial sync " + std::to_string(agent->reconciler->planned_backends()) +
        " backends are planned, expected " + std::to_string(shape.total_endpoints()));
  }
  return agent;
}

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Percentiles Summarize(std::vector<double> v) {
  if (v.empty()) {
    return {};
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  };
  double sum = 0;
  for (double x : v) {
    sum += x;
  }
  return {at(0.5), at(0.9), at(0.99), v.back(), sum / static_cast<double>(v.size())};
}
json ToJson(const Percentiles& p) {
  return {{"p50_ms", p.p50},
          {"p90_ms", p.p90},
          {"p99_ms", p.p99},
          {"max_ms", p.max},
          {"mean_ms", p.mean}};
}

json AgentFigures(const Agent& agent, const Shape& shape) {
  return {{"services", shape.services},
          {"clusters", shape.clusters},
          {"endpoints", shape.total_endpoints()},
          {"lists_ms", agent.lists_ms},
          {"initial_sync_ms", agent.initial_sync_ms},
          {"initial_poll_ms", agent.initial_poll_ms},
          {"initial_syncs", agent.initial_syncs}};
}

// Phase (1): single EndpointSlice updates, one at a time.
// `warmup` + `updates` single EndpointSlice updates, each waited for until the sync that
// wrote it returned; the figures of the last `updates` into `out`.
void RunUpdates(const Shape& shape, int warmup, int updates, ServerProcess& servers, Agent& agent,
                json& out) {
  Reconciler& reconciler = *agent.reconciler;
  KubeFeed& feed = *agent.feed;
  std::vector<double> total, to_agent, drain, sync, kernel, writes;
  const int count = warmup + updates;
  for (int n = 0; n < count; ++n) {
    // Alternating clusters, and services spread over the state (7919 is prime).
    const int c = n % shape.clusters;
    const int s = static_cast<int>((int64_t{n} * 7919) % shape.services);
    servers.Send({Op::kUpdate, c, s, (n / shape.clusters) % 2});
    const auto deadline = Clock::now() + 60s;  // a stuck update, not a slow (loaded) machine
    Clock::time_point woken{}, drained{};
    std::optional<SyncResult> r;
    while (!r || r->writes.total() == 0) {
      if (Clock::now() > deadline) {
        Die("update " + std::to_string(n) + " (" + ClusterName(c) + "/" + ServiceName(s) +
            ") reached no map within 60 s");
      }
      if (!feed.WaitForChange(100ms)) {
        continue;
      }
      woken = Clock::now();
      feed.Drain(reconciler.model());
      drained = Clock::now();
      r = reconciler.Poll();
      if (r && !r->ok()) {
        Die("sync of update " + std::to_string(n) + ": " + r->error->ToString());
      }
    }
    const auto synced = Clock::now();
    const Clock::time_point t0 = servers.Took();
    if (n < warmup) {
      continue;
    }
    total.push_back(Ms(synced - t0));
    to_agent.push_back(Ms(woken - t0));
    drain.push_back(Ms(drained - woken));
    sync.push_back(Ms(synced - drained));
    kernel.push_back(Ms(r->duration));
    writes.push_back(static_cast<double>(r->writes.total()));
  }
  out["updates"] = updates;
  out["warmup"] = warmup;
  out["event_to_map"] = ToJson(Summarize(total));
  out["server_to_agent"] = ToJson(Summarize(to_agent));
  out["drain"] = ToJson(Summarize(drain));
  out["plan_sync"] = ToJson(Summarize(sync));
  out["sync_writes"] = ToJson(Summarize(kernel));
  out["writes_per_update_median"] = Summarize(writes).p50;
}

json RunLatency(const Options& o, const std::string& dir) {
  const Shape& shape = o.latency;
  ServerProcess servers(shape, dir);
  auto agent = StartAgent(shape, dir);
  json out = AgentFigures(*agent, shape);
  RunUpdates(shape, o.warmup, o.updates, servers, *agent, out);
  out["agent_vmhwm_kb"] = SelfKb("VmHWM:");
  agent.reset();
  out["servers_vmhwm_kb"] = servers.Quit();
  return out;
}

// Phases (2) and (3): the initial sync of the large state and the agent's peak RSS.
json RunMemory(const Options& o, const std::string& dir) {
  const Shape& shape = o.memory;
  ServerProcess servers(shape, dir);
  const long rss_before = SelfKb("VmRSS:");
  auto agent = StartAgent(shape, dir);
  json out = AgentFigures(*agent, shape);
  out["agent_vmrss_before_kb"] = rss_before;
  out["agent_vmrss_kb"] = SelfKb("VmRSS:");
  // Some churn at this size too: the peak includes steady-state work, and the latency at
  // 100,000 endpoints is worth a look.
  RunUpdates(shape, o.memory_warmup, o.memory_updates, servers, *agent, out);
  out["agent_vmhwm_kb"] = SelfKb("VmHWM:");
  agent.reset();
  out["servers_vmhwm_kb"] = servers.Quit();
  return out;
}

// Runs `phase` in a child process (its own peak RSS and temp dir); its figures as JSON.
json InChild(const Options& o, json (*phase)(const Options&, const std::string&)) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    Die(std::string("pipe: ") + std::strerror(errno));
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    Die(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(out[0]);
    char dir_template[] = "/tmp/xlb-kube-bench-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) {
      Die(std::string("mkdtemp: ") + std::strerror(errno));
    }
    g_temp_dir = dir_template;
    try {
      const std::string text = phase(o, g_temp_dir).dump();
      std::filesystem::remove_all(g_temp_dir);
      ::_exit(WriteAll(out[1], text.data(), text.size()) ? 0 : 1);
    } catch (const std::exception& e) {
      Die(e.what());
    }
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Die("a phase failed (see above)");
  }
  return json::parse(text);
}

std::string Split(const json& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "p50 %.2f / p90 %.2f / p99 %.2f / max %.2f",
                p["p50_ms"].get<double>(), p["p90_ms"].get<double>(), p["p99_ms"].get<double>(),
                p["max_ms"].get<double>());
  return buf;
}

std::string InitialSync(const json& phase) {
  char buf[256];
  std::snprintf(
      buf, sizeof buf,
      "%.0f ms: every list in the model after %.0f ms; plan + sync %.0f ms in all (%llu syncs)",
      phase["initial_sync_ms"].get<double>(), phase["lists_ms"].get<double>(),
      phase["initial_poll_ms"].get<double>(),
      static_cast<unsigned long long>(phase["initial_syncs"].get<uint64_t>()));
  return buf;
}

double Mb(const json& kb) {
  return kb.get<double>() / 1024;
}

void PrintTable(const json& latency, const json& memory) {
  std::printf("| figure | measured | target |\n|---|---|---|\n");
  if (!latency.is_null()) {
    const json& e = latency["event_to_map"];
    std::printf(
        "| (1) event -> map, %d EndpointSlice updates (after %d warm-up), %d services x %d "
        "clusters x 10 endpoints | p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; %.0f "
        "map writes each (median) | < 10 ms p99 (%s); kube-proxy: ~5 s median at 5,000 "
        "nodes |\n",
        latency["updates"].get<int>(), latency["warmup"].get<int>(), latency["services"].get<int>(),
        latency["clusters"].get<int>(), e["p50_ms"].get<double>(), e["p90_ms"].get<double>(),
        e["p99_ms"].get<double>(), e["max_ms"].get<double>(),
        latency["writes_per_update_median"].get<double>(),
        e["p99_ms"].get<double>() < 10 ? "met" : "missed");
    std::printf("| (1) split: server -> agent woken (encode, TLS, watch parse) | %s ms | |\n",
                Split(latency["server_to_agent"]).c_str());
    std::printf("| (1) split: drain into the model | %s ms | |\n", Split(latency["drain"]).c_str());
    std::printf("| (1) split: plan + sync (Reconciler::Poll) | %s ms | |\n",
                Split(latency["plan_sync"]).c_str());
    std::printf("| (1) of which the sync's map writes (SyncResult::duration) | %s ms | |\n",
                Split(latency["sync_writes"]).c_str());
    std::printf(
        "| (1) initial sync of %lld endpoints (feed started -> maps written) | %s; agent VmHWM "
        "%.0f MB, API servers' process %.0f MB | |\n",
        static_cast<long long>(latency["endpoints"].get<int64_t>()), InitialSync(latency).c_str(),
        Mb(latency["agent_vmhwm_kb"]), Mb(latency["servers_vmhwm_kb"]));
  }
  if (!memory.is_null()) {
    std::printf(
        "| (2) initial sync, %d services x %d clusters x 10 = %lld endpoints (feed started -> "
        "maps written) | %s | |\n",
        memory["services"].get<int>(), memory["clusters"].get<int>(),
        static_cast<long long>(memory["endpoints"].get<int64_t>()), InitialSync(memory).c_str());
    const json& e = memory["event_to_map"];
    std::printf(
        "| (2) event -> map at %lld endpoints, %d updates (after %d warm-up) | p50 %.2f ms, "
        "p99 %.2f ms, max %.2f ms (plan + sync p50 %.2f ms) | |\n",
        static_cast<long long>(memory["endpoints"].get<int64_t>()), memory["updates"].get<int>(),
        memory["warmup"].get<int>(), e["p50_ms"].get<double>(), e["p99_ms"].get<double>(),
        e["max_ms"].get<double>(), memory["plan_sync"]["p50_ms"].get<double>());
    const double hwm = Mb(memory["agent_vmhwm_kb"]);
    std::printf(
        "| (3) agent peak RSS (VmHWM) at %lld endpoints, API servers in another process | "
        "%.0f MB (VmRSS %.0f MB before the agent started, %.0f MB after the initial sync); "
        "API servers' process VmHWM %.0f MB | < 500 MB (%s) |\n",
        static_cast<long long>(memory["endpoints"].get<int64_t>()), hwm,
        Mb(memory["agent_vmrss_before_kb"]), Mb(memory["agent_vmrss_kb"]),
        Mb(memory["servers_vmhwm_kb"]), hwm < 500 ? "met" : "missed");
  }
}

void Usage() {
  std::fprintf(stderr,
               "usage: xlb-kube-bench [--smoke] [--json] [--services N] [--updates N] "
               "[--warmup N] [--memory-services N] [--no-latency] [--no-memory] [--verbose]\n");
  std::exit(2);
}

int IntArg(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    Usage();
  }
  const std::string flag = argv[i];
  char* end = nullptr;
  const long v = std::strtol(argv[++i], &end, 10);
  if (end == argv[i] || *end != '\0' || v < 1 || v > 1'000'000) {
    std::fprintf(stderr, "xlb-kube-bench: %s: not a number in 1..1000000: %s\n", flag.c_str(),
                 argv[i]);
    std::exit(2);
  }
  return static_cast<int>(v);
}

int Run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--smoke") {
      o.smoke = true;
      o.latency = {50, 3, 10};
      o.memory = {100, 5, 10};
      o.warmup = 20;
      o.updates = 300;
      o.memory_warmup = 5;
      o.memory_updates = 50;
    } else if (a == "--verbose") {
      g_verbose = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--services") {
      o.latency.services = IntArg(argc, argv, i);
    } else if (a == "--memory-services") {
      o.memory.services = IntArg(argc, argv, i);
    } else if (a == "--updates") {
      o.updates = IntArg(argc, argv, i);
    } else if (a == "--warmup") {
      o.warmup = IntArg(argc, argv, i);
    } else if (a == "--no-latency") {
      o.run_latency = false;
    } else if (a == "--no-memory") {
      o.run_memory = false;
    } else {
      Usage();
    }
  }
  if (o.latency.total_endpoints() >= kAltOffset || o.memory.total_endpoints() >= kAddressSpace ||
      o.latency.services > 65535 || o.memory.services > 65535) {
    Die("too many endpoints for the 198.18.0.0/15 addresses (at most " +
        std::to_string(kAltOffset - 1) + " with --services, " + std::to_string(kAddressSpace - 1) +
        " with --memory-services)");
  }
  if (::geteuid() != 0) {
    Die("needs root (BPF maps)");
  }
  const json latency = o.run_latency ? InChild(o, RunLatency) : json();
  const json memory = o.run_memory ? InChild(o, RunMemory) : json();
  if (o.json) {
    std::printf("%s\n", json{{"latency", latency}, {"memory", memory}}.dump(2).c_str());
  } else {
    PrintTable(latency, memory);
  }
  return 0;
}

}  // namespace
}  // namespace xlb::bench

int main(int argc, char** argv) {
  try {
    return xlb::bench::Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-kube-bench: %s\n", e.what());
    return 1;
  }
}
