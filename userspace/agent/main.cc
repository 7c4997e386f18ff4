// xlb-agent: one per node. Loads the datapath (re-using the pinned maps of a previous agent),
// attaches it, adopts what the maps hold, then keeps them in step with the config file and
// the weight policies (reconciler.h). Usage: agent_options.cc.
//
// Restart without loss. Everything the packets need outlives this process: the maps are
// pinned, and XDP and TC are attached through netlink, which holds the programs for as long
// as they are attached. So the agent never detaches (SIGTERM, SIGINT, a crash and SIGKILL
// all leave the datapath running as it was), and a new agent takes over in place:
//   - the maps: Load() re-uses the pins, so conntrack and tables carry on;
//   - XDP: attached with `replace`, one netlink update swaps the old program for the new one,
//     so no packet finds the interface without a program;
//   - TC: AttachTc() replaces the xlb_tc filter at xlb's handle in one update, too, on every
//     pod interface now and on each new one as its link event arrives (pod_interfaces.h);
//     the same for xlb_tc_egress on their egress and on the uplinks' (answers xlb met nowhere
//     else: routed to a client pod, or made by this node's own stack);
//   - socket LB: its cgroup links are pinned beside the maps, and the new agent swaps its
//     programs into them (BPF_LINK_UPDATE) (socket_lb.h);
//   - the tables: Syncer::Adopt() reads the maps back, and the same inputs give the same
//     desired state (stable ids, deterministic Maglev), so the first sync writes nothing.
// `xlbctl uninstall --pin-dir DIR` removes xlb.
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "loader/log.h"
#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "userspace/agent/agent_options.h"
#include "userspace/agent/health_check.h"
#include "userspace/agent/http_server.h"
#include "userspace/agent/kube_feed.h"
#include "userspace/agent/metrics.h"
#include "userspace/agent/pod_interfaces.h"
#include "userspace/agent/reconciler.h"
#include "userspace/agent/rtnetlink.h"
#include "userspace/agent/socket_lb.h"
#include "userspace/sync/bpf_map_store.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
// --log-format json: set once, before the first line the loop or the loader logs.
bool g_log_json = false;

void OnSignal(int /*sig*/) {
  g_stop = 1;
}

// Log lines go to stderr with a UTC timestamp; the loader's lines come through here too.
void Emit(xlb::LogLevel level, std::string_view message) {
  // libbpf passes on the kernel's complaint when AttachTc() finds clsact already there, which
  // is every restart (the hook is kept, by design); a real failure is reported by AttachTc.
  static const bool debug = [] {
    const char* env = std::getenv("XLB_LOG");
    return env != nullptr && std::string_view(env) == "debug";
  }();
  if (!debug && message.find("Exclusivity flag on, cannot modify") != std::string_view::npos) {
    return;
  }
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  char stamp[40];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  const char* tag = level == xlb::LogLevel::kWarn   ? "warn"
                    : level == xlb::LogLevel::kInfo ? "info"
                                                    : "debug";
  if (g_log_json) {
    // One object per line, as log shippers (Fluent Bit, Vector, Loki's promtail) parse them;
    // bytes that are not UTF-8 (an interface name, a path) become U+FFFD, not a lost line.
    char ts[48];
    std::snprintf(ts, sizeof(ts), "%s.%03ldZ", stamp, now.tv_nsec / 1000000);
    const std::string line =
        nlohmann::json{{"ts", ts}, {"level", tag}, {"logger", "xlb-agent"}, {"msg", message}}
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "%s.%03ldZ xlb-agent %s: %.*s\n", stamp, now.tv_nsec / 1000000, tag,
                 static_cast<int>(message.size()), message.data());
  }
  std::fflush(stderr);
}

void LogLine(xlb::LogLevel level, const std::string& message) {
  xlb::Log(level, message);
}

// When the next hop of an IPv4 tunnel endpoint is not resolved yet, xlb_xdp hands the already
// encapsulated packet to the stack, which resolves the neighbour and forwards it
// (pass_encap_kernel). Its source is this node's own address, which IPv4 drops as martian
// unless the uplink accepts local sources, and then the neighbour is never resolved: every
// tunnelled flow of a node that had no other IPv4 traffic to its gateway fails. Best effort: a
// node whose sysctl cannot be written is told what that costs.
void AcceptLocalSources(const std::string& uplink) {
  const std::string path = "/proc/sys/net/ipv4/conf/" + uplink + "/accept_local";
  FILE* f = std::fopen(path.c_str(), "w");
  const bool ok = f != nullptr && std::fputs("1", f) >= 0;
  const int saved = errno;
  if (f != nullptr && std::fclose(f) != 0) {
    LogLine(xlb::LogLevel::kWarn, path + ": " + std::strerror(errno));
    return;
  }
  if (!ok) {
    LogLine(xlb::LogLevel::kWarn,
            path + ": " + std::strerror(saved) +
                ": encapsulated packets whose IPv4 next hop is unresolved will be dropped");
  }
}

// Managed neighbour entries (xlb::AddManagedNeighbour) for the next hop toward every tunnel
// peer of the model: the node of every endpoint that is not on this node. With them the first
// encapsulated packet to a peer finds its next hop in bpf_fib_lookup; without them xlb_xdp hands
// it to the stack to resolve the neighbour, which an unprivileged agent (read-only /proc/sys,
// no accept_local) cannot make work for IPv4. A peer is set up once; one that failed (no route
// yet) is tried again after a while. The model is walked after it changed (`changed`: a sync
// ran), at most once a second (a sync per event would otherwise walk every endpoint each
// time), so a new peer is set up within a second.
class TunnelNeighbours {
 public:
  void Follow(const xlb::Model& model, bool changed) {
    const auto now = std::chrono::steady_clock::now();
    pending_ = pending_ || changed;
    if (!pending_ || now < next_walk_) {
      return;
    }
    next_walk_ = now + std::chrono::seconds(1);
    pending_ = false;
    std::set<xlb::IpAddress> peers;
    for (const auto& [name, service] : model.services()) {
      for (const xlb::Endpoint& e : model.EndpointsOf(name)) {
        if (e.node_address) {
          peers.insert(*e.node_address);
        }
      }
    }
    for (const xlb::IpAddress& peer : peers) {
      auto it = retry_at_.find(peer);
      if (it != retry_at_.end() && now < it->second) {
        continue;
      }
      auto hop = xlb::RouteTo(peer);
      xlb::Result<void> added = hop.ok() ? (hop->local ? xlb::Result<void>{}
                                                       : xlb::AddManagedNeighbour(*hop))
                                         : xlb::Result<void>(std::move(hop).take_error());
      if (!added.ok()) {
        LogLine(xlb::LogLevel::kWarn, "tunnel peer " + peer.ToString() + ": " +
                                          added.error().ToString() + "; tried again in 10 s");
        pending_ = true;  // walked again for the retry
      }
      // Set up: looked at again only after an hour (an entry flushed by hand comes back).
      retry_at_[peer] = now + (added.ok() ? std::chrono::hours(1) : std::chrono::seconds(10));
    }
  }

 private:
  std::map<xlb::IpAddress, std::chrono::steady_clock::time_point> retry_at_;
  std::chrono::steady_clock::time_point next_walk_;
  bool pending_ = false;
};

// xlb_fwddev, the interfaces xlb_xdp may forward onto, kept equal to what the kernel says takes
// XDP frames (rtnetlink.h: XdpRedirectTargets). A veth becomes one when its peer turns on GRO or
// loads an XDP program, which no link event announces: Follow() is called at start and then
// every --iface-rescan.
class ForwardDevices {
 public:
  explicit ForwardDevices(xlb::TypedMap<uint32_t, uint32_t> map) : map_(map) {}

  void Follow() {
    auto targets = xlb::XdpRedirectTargets();
    if (!targets.ok()) {
      if (targets.error().ToString() != failure_) {
        failure_ = targets.error().ToString();
        LogLine(xlb::LogLevel::kWarn, "XDP forwarding targets: " + failure_ +
                                          "; xlb_xdp hands routed backends' packets to the stack");
      }
      return;
    }
    failure_.clear();
    for (int gone : current_) {
      if (targets->count(gone) == 0) {
        auto erased = map_.Erase(static_cast<uint32_t>(gone));
        // ENOENT: the kernel removed it with its interface
        if (!erased.ok() && !erased.error().NotFound()) {
          LogLine(xlb::LogLevel::kWarn, "XDP forwarding target " + std::to_string(gone) +
                                            " no longer takes XDP frames, but stays listed: " +
                                            erased.error().ToString());
        }
      }
    }
    std::set<int> kept;
    for (int ifindex : *targets) {
      const auto key = static_cast<uint32_t>(ifindex);
      if (current_.count(ifindex) != 0 || map_.Update(key, key).ok()) {
        kept.insert(ifindex);
      }
    }
    current_ = std::move(kept);
  }

 private:
  xlb::TypedMap<uint32_t, uint32_t> map_;
  std::set<int> current_;
  std::string failure_;  // logged once, not every rescan
};

int Fail(const std::string& what) {
  Emit(xlb::LogLevel::kWarn, "cannot start: " + what);
  return 1;
}

// /healthz turns 503 when the loop has not come round for this long. Generous: one full sync
// of ten thousand services rebuilds their tables and takes seconds, and a kubelet that
// restarts an agent in the middle of it gains nothing.
constexpr auto kLoopStale = std::chrono::seconds(60);

xlb::HttpResponse Serve(std::string_view path, const xlb::AgentStatus& status,
                        const xlb::XdpDatapath* dp, const xlb::KubeFeed* feed,
                        size_t detail_limit) {
  if (path == "/metrics") {
    xlb::Exposition out;
    status.WriteAgentMetrics(out);
    if (feed != nullptr) {
      feed->WriteMetrics(out);
    }
    if (dp != nullptr) {  // loaded: the datapath's counters and occupancy
      const auto [backends, tables] = status.ValidBackendsAndTables();
      xlb::WriteDatapathMetrics(*dp, status.Names(), backends, tables, detail_limit, out);
    }
    return {200, "text/plain; version=0.0.4; charset=utf-8", out.text()};
  }
  if (path == "/healthz") {
    return status.Healthy(kLoopStale) ? xlb::HttpResponse{200, "text/plain", "ok\n"}
                                      : xlb::HttpResponse{503, "text/plain", "loop stalled\n"};
  }
  if (path == "/readyz") {
    return status.Ready() ? xlb::HttpResponse{200, "text/plain", "ok\n"}
                          : xlb::HttpResponse{503, "text/plain",
                                              "not ready: no successful sync with XDP attached "
                                              "yet, or the last sync failed\n"};
  }
  return {404, "text/plain", "not found: /metrics, /healthz, /readyz\n"};
}

void SleepFor(std::chrono::milliseconds d) {
  timespec ts{static_cast<time_t>(d.count() / 1000), static_cast<long>(d.count() % 1000) * 1000000};
  ::nanosleep(&ts, nullptr);  // a signal cuts it short, which is what stopping wants
}

int Run(int argc, char** argv) {
  xlb::SetLogSink(Emit);
  xlb::AgentOptions opts;
  std::string problem;
  bool help = false;
  if (!xlb::ParseAgentOptions(argc, argv, opts, problem, help)) {
    std::fprintf(stderr, "xlb-agent: %s\n%s", problem.c_str(), xlb::kAgentUsage);
    return 2;
  }
  if (help) {
    std::fputs(xlb::kAgentUsage, stdout);
    return 0;
  }
  g_log_json = opts.log_json;
  const char* env_node = std::getenv("NODE_NAME");
  if (!xlb::ApplyNodeSettings(argc, argv, env_node != nullptr ? env_node : "", opts, problem)) {
    return Fail("node settings; the datapath was not touched: " + problem);
  }

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  // Everything that can be checked without touching the kernel comes first, so a typo does
  // not replace a running datapath's programs.
  xlb::Reconciler reconciler({opts.config, opts.policy}, LogLine);
  if (opts.kube.empty()) {
    reconciler.SetNodeAddresses(opts.node_addrs);  // with --kube, the sources' node instead
    reconciler.SetNodeName(opts.node_name);
  }
  auto bad_input = [](const xlb::ConfigErrors& errors) {
    std::string text;
    for (const xlb::ConfigError& e : errors) {
      text += "\n  " + e.ToString();
    }
    return Fail("bad input; the datapath was not touched:" + text);
  };
  if (auto started = reconciler.Start(); !started.ok()) {
    return bad_input(started.error());
  }
  if (opts.uplink_auto) {
    // The node addresses known now: --node-addr, or the config's. With --kube the Node's come
    // later; its default routes are what a real node has anyway.
    auto network = xlb::ReadNetwork();
    if (!network.ok()) {
      return Fail("--uplink auto: " + network.error().ToString());
    }
    const xlb::UplinkChoice choice =
        xlb::ChooseUplinks(*network, reconciler.model().local_node().addresses, opts.pod_ifaces);
    if (choice.names.empty()) {
      return Fail(
          "--uplink auto: no interface carries a default route, a route through a "
          "gateway or a node address; name the uplinks with --uplink IFACE");
    }
    std::string names;
    for (const std::string& name : choice.names) {
      names += (names.empty() ? "" : ", ") + name;
    }
    LogLine(xlb::LogLevel::kInfo, "--uplink auto: " + names + " (" + choice.reason + ")");
    opts.uplinks = choice.names;
  }
  for (const std::string& uplink : opts.uplinks) {
    auto idx = xlb::IfIndex(uplink);
    if (!idx.ok()) {
      return Fail("--uplink " + uplink + ": " + idx.error().ToString());
    }
  }
  auto socket_lb_cgroup = xlb::ResolveSocketLbCgroup(opts.socket_lb, LogLine);
  if (!socket_lb_cgroup.ok()) {
    return Fail(socket_lb_cgroup.error().ToString());
  }
  // --kube: the watches start now, so the first lists run while the datapath loads.
  std::unique_ptr<xlb::KubeFeed> feed;
  if (!opts.kube.empty()) {
    auto started = xlb::KubeFeed::Start(opts.kube, opts.node_addrs, opts.node_name, LogLine);
    if (!started.ok()) {
      return bad_input(started.error());
    }
    feed = std::move(*started);
  }
  // One step of the loop: the sources' news into the model, then a sync if anything changed.
  // With --kube nothing is planned before the local cluster has been listed (kube_feed.h): the
  // maps keep what the previous agent left until then.
  bool waiting_noted = false;
  auto step = [&](std::chrono::milliseconds wait) -> std::optional<xlb::SyncResult> {
    if (!feed) {
      return reconciler.Poll();
    }
    feed->WaitForChange(wait);
    feed->Drain(reconciler.model());
    if (!feed->LocalSynced()) {
      if (!waiting_noted) {
        LogLine(xlb::LogLevel::kInfo,
                "waiting for the local cluster's first lists; the maps stay as they are");
        waiting_noted = true;
      }
      return std::nullopt;
    }
    return reconciler.Poll();
  };

  // Declared before the server, so they outlive its thread.
  xlb::AgentStatus status;
  status.RequireXdp(opts.uplinks);
  std::atomic<const xlb::XdpDatapath*> loaded_dp{nullptr};
  std::unique_ptr<xlb::XdpDatapath> xdp;
  uint64_t names_published = ~uint64_t{0};
  auto publish = [&](const std::optional<xlb::SyncResult>& sync) {
    if (sync) {
      status.RecordSync(sync->duration, sync->writes, sync->ok());
      // A copy of every label (300,000 backends at scale) only when they changed: most
      // syncs after an event touch one service.
      if (reconciler.names_version() != names_published) {
        names_published = reconciler.names_version();
        status.SetNames(reconciler.names(), reconciler.planned_backends(),
                        reconciler.planned_tables());
      }
    }
    status.SetReloads(reconciler.config_reloaded(), reconciler.config_rejected(),
                      reconciler.policy_reloaded(), reconciler.policy_rejected());
    status.Heartbeat();
  };
  // kube-proxy's health checks (health_check.h): the node's, and every healthCheckNodePort.
  // The node's is bound before the datapath is loaded, as /metrics below. Its port taken is
  // not fatal: during a migration kube-proxy holds 10256 until its DaemonSet is deleted, and
  // the agent takes the port over within a second of it being freed.
  std::unique_ptr<xlb::HttpServer> healthz;
  std::chrono::steady_clock::time_point healthz_tried;
  auto start_healthz = [&]() -> xlb::Result<void> {
    healthz_tried = std::chrono::steady_clock::now();
    auto server = xlb::HttpServer::Start(opts.healthz_addr, [&](std::string_view path) {
      if (path != "/healthz" && path != "/livez") {
        return xlb::HttpResponse{404, "text/plain", "not found: /healthz, /livez\n"};
      }
      return xlb::NodeHealthResponse(status.Healthy(kLoopStale) && status.Ready(),
                                     status.LastSyncSuccessUnix(), xlb::WallClockSeconds());
    });
    if (!server.ok()) {
      return server.error();
    }
    healthz = std::move(*server);
    LogLine(xlb::LogLevel::kInfo, "serving the node health check on " + opts.healthz_addr);
    return {};
  };
  if (!opts.healthz_addr.empty() && !opts.once) {
    if (auto started = start_healthz(); !started.ok()) {
      if (started.error().err != EADDRINUSE) {
        return Fail("--healthz-addr: " + started.error().ToString());
      }
      LogLine(xlb::LogLevel::kWarn,
              "--healthz-addr: " + started.error().ToString() +
                  " (kube-proxy still running?); tried again every second");
    }
  }
  std::unique_ptr<xlb::ServiceHealthServers> health_checks;
  if (!opts.health_check_addr.empty() && !opts.once) {
    health_checks = std::make_unique<xlb::ServiceHealthServers>(
        opts.health_check_addr, [&] { return status.Healthy(kLoopStale) && status.Ready(); });
  }
  std::string health_check_problems;
  auto sync_health_checks = [&] {
    if (!health_checks) {
      status.SetPlanProblems(reconciler.plan_problems());
      return;
    }
    std::string problems;
    const std::vector<std::string> unserved = health_checks->Sync(reconciler.model());
    for (const std::string& p : unserved) {
      problems += "\n  " + p;
    }
    status.SetPlanProblems(reconciler.plan_problems() + unserved.size());
    if (problems != health_check_problems) {
      health_check_problems = problems;
      if (!problems.empty()) {
        LogLine(xlb::LogLevel::kWarn, "health checks that cannot be served:" + problems);
      }
    }
  };

  // Bound before the datapath is loaded: a taken port fails start-up with nothing touched.
  std::unique_ptr<xlb::HttpServer> http;
  if (!opts.metrics_addr.empty() && !opts.once) {
    auto server = xlb::HttpServer::Start(opts.metrics_addr, [&](std::string_view path) {
      return Serve(path, status, loaded_dp.load(), feed.get(), opts.metrics_detail_limit);
    });
    if (!server.ok()) {
      return Fail("--metrics-addr: " + server.error().ToString());
    }
    http = std::move(*server);
    LogLine(xlb::LogLevel::kInfo, "serving /metrics, /healthz and /readyz on " + opts.metrics_addr);
  }

  xlb::LoadOptions load;
  load.pin_dir = opts.pin_dir;
  load.config = opts.datapath;
  auto loaded = xlb::XdpDatapath::Load(load);
  if (!loaded.ok()) {
    return Fail("load xlb_xdp: " + loaded.error().ToString());
  }
  xdp = std::move(*loaded);
  loaded_dp = xdp.get();
  xlb::BpfMapStore store(*xdp);
  auto tc = xlb::TcDatapath::Load(*xdp);
  if (!tc.ok()) {
    return Fail("load xlb_tc: " + tc.error().ToString());
  }

  // Adopt and sync before attaching: until our programs replace the old agent's, those run
  // on the very maps we write; on a restart the first sync normally writes nothing.
  if (auto adopted = reconciler.Adopt(store); !adopted.ok()) {
    return Fail("adopt the maps under " + opts.pin_dir + ": " + adopted.error().ToString());
  }
  // A failed sync is logged and retried in the loop. With --kube, the first lists get a few
  // seconds to arrive before the programs are attached (an API server that is down leaves the
  // adopted maps in force, and the loop syncs when it answers).
  std::optional<xlb::SyncResult> first;
  const auto lists_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    first = step(std::chrono::milliseconds(50));
  } while (feed && !feed->LocalSynced() && g_stop == 0 &&
           std::chrono::steady_clock::now() < lists_deadline);
  publish(first);
  sync_health_checks();

  // Socket LB on the synced maps, before the programs that make the agent ready: from the
  // first connect() it sees every service. Its links are pinned like the maps (they stay when
  // the agent goes, and the next agent swaps its programs in).
  std::unique_ptr<xlb::SocketLb> socket_lb;
  if (socket_lb_cgroup->has_value()) {
    auto started = xlb::SocketLb::Start(*xdp, **socket_lb_cgroup,
                                        reconciler.model().local_node().addresses, LogLine);
    if (!started.ok()) {
      return Fail("socket LB: " + started.error().ToString());
    }
    socket_lb = std::move(*started);
    status.SetSocketLbAttached();
  }
  // With --kube the node's addresses arrive with its Node, after start-up.
  auto follow_node_addresses = [&] {
    if (socket_lb == nullptr) {
      return;
    }
    if (auto r = socket_lb->SetNodeAddresses(reconciler.model().local_node().addresses); !r.ok()) {
      LogLine(xlb::LogLevel::kWarn, "socket LB: " + r.error().ToString());
    }
  };

  for (const std::string& uplink : opts.uplinks) {
    xlb::AttachOptions attach;
    attach.replace = true;        // take over from a previous agent without a gap
    attach.allow_generic = true;  // the loader logs the fallback
    auto a = xdp->Attach(std::string_view(uplink), attach);
    if (!a.ok()) {
      return Fail("attach xlb_xdp to " + uplink + ": " + a.error().ToString());
    }
    LogLine(xlb::LogLevel::kInfo, "attached xlb_xdp (program " + std::to_string(a->prog_id()) +
                                      ") to " + uplink + " in " +
                                      std::string(xlb::XdpModeName(a->mode())) + " mode");
    a->release();
    status.SetXdpAttached(uplink);
    if (opts.datapath.tunnel_addr4 != 0) {
      AcceptLocalSources(uplink);
    }
    // Answers this node's own stack makes for a flow xlb balanced (an endpoint that is a host
    // address of this node) leave through here without meeting xlb otherwise.
    auto egress = (*tc)->Attach(std::string_view(uplink), xlb::TcDirection::kEgress);
    if (!egress.ok()) {
      return Fail("attach xlb_tc_egress to " + uplink + ": " + egress.error().ToString());
    }
    egress->release();
  }
  // Attachments are released at once: the filter must outlive the agent, and a released
  // attachment cannot be detached by an unwinding destructor either.
  xlb::PodInterfaces pods(
      opts.pod_ifaces,
      [&tc_dp = **tc](int ifindex) -> xlb::Result<uint32_t> {
        // egress first: a pod's first packet may already be answered by a routed backend
        auto e = tc_dp.Attach(ifindex, xlb::TcDirection::kEgress);
        if (!e.ok()) {
          return std::move(e).take_error();
        }
        e->release();
        auto a = tc_dp.Attach(ifindex);
        if (!a.ok()) {
          return std::move(a).take_error();
        }
        a->release();
        return a->prog_id();
      },
      LogLine);
  // Subscribed before the first scan, so that no interface appears unseen in between.
  std::optional<xlb::LinkEventSocket> link_events;
  if (!opts.pod_ifaces.empty() && !opts.once) {
    auto opened = xlb::LinkEventSocket::Open();
    if (!opened.ok()) {
      return Fail("link events: " + opened.error().ToString());
    }
    link_events = std::move(*opened);
  }
  const bool tc_ok = pods.Scan();
  std::optional<ForwardDevices> forward_devices;
  if ((opts.datapath.flags & XLB_CFG_F_STACK_FORWARD) == 0) {
    forward_devices.emplace(xdp->forward_devices());
    forward_devices->Follow();
  }

  if (opts.once) {
    return tc_ok && (!first.has_value() || first->ok()) ? 0 : 1;
  }
  std::unique_ptr<xlb::PodInterfaceWatch> pod_watch;
  if (link_events) {
    auto started = xlb::PodInterfaceWatch::Start(pods, std::move(*link_events), opts.iface_rescan);
    if (!started.ok()) {
      return Fail("pod interface watch: " + started.error().ToString());
    }
    pod_watch = std::move(*started);
  }
  LogLine(xlb::LogLevel::kInfo,
          std::string("running: ") +
              (feed ? "Kubernetes events synced as they arrive, policies" : "config and policies") +
              " polled every " + std::to_string(opts.poll_interval.count()) +
              " ms, pod interfaces attached on their link events and rescanned every " +
              std::to_string(opts.iface_rescan.count()) + " ms");
  // The next hops toward the tunnel peers, resolved ahead of the first packet (rtnetlink.h).
  TunnelNeighbours tunnel_neighbours;
  tunnel_neighbours.Follow(reconciler.model(), true);
  // Pins removed under the running agent (a cleanup script, `rm -r` of the pin directory) are
  // made again, at most once a second: without them the next agent would start from empty maps
  // and every flow would move.
  auto repins_checked = std::chrono::steady_clock::now();
  auto forward_devices_checked = repins_checked;
  std::string repin_failure;  // logged once, not every second
  auto repin = [&] {
    repins_checked = std::chrono::steady_clock::now();
    auto pinned = xdp->Repin();
    if (pinned.ok() && socket_lb) {
      auto more = socket_lb->Repin(opts.pin_dir);
      if (!more.ok()) {
        pinned = std::move(more).take_error();
      } else {
        pinned->insert(pinned->end(), more->begin(), more->end());
      }
    }
    if (!pinned.ok()) {
      if (pinned.error().ToString() != repin_failure) {
        repin_failure = pinned.error().ToString();
        LogLine(xlb::LogLevel::kWarn, "pins under " + opts.pin_dir +
                                          " were removed and cannot be made again: " +
                                          repin_failure);
      }
      return;
    }
    repin_failure.clear();
    if (!pinned->empty()) {
      std::string names;
      for (const std::string& name : *pinned) {
        names += (names.empty() ? "" : ", ") + name;
      }
      LogLine(xlb::LogLevel::kWarn,
              "pins under " + opts.pin_dir + " were removed; pinned again: " + names);
      status.CountRepins(pinned->size());
    }
  };
  while (g_stop == 0) {
    // With --kube the wait ends at the first event (event to map in milliseconds).
    const std::optional<xlb::SyncResult> synced = step(opts.poll_interval);
    publish(synced);
    if (feed && synced && synced->ok()) {
      feed->Programmed(std::chrono::system_clock::now());
    }
    tunnel_neighbours.Follow(reconciler.model(), synced.has_value());
    // The counts change with the model only; a port that could not be bound is tried again.
    if (synced || !health_check_problems.empty()) {
      sync_health_checks();
    }
    follow_node_addresses();
    if (std::chrono::steady_clock::now() - repins_checked >= std::chrono::seconds(1)) {
      repin();
    }
    if (forward_devices &&
        std::chrono::steady_clock::now() - forward_devices_checked >= opts.iface_rescan) {
      forward_devices_checked = std::chrono::steady_clock::now();
      forward_devices->Follow();
    }
    if (!healthz && !opts.healthz_addr.empty() &&
        std::chrono::steady_clock::now() - healthz_tried >= std::chrono::seconds(1)) {
      (void)start_healthz();  // a port still taken was reported at start
    }
    if (!feed) {
      SleepFor(opts.poll_interval);
    }
  }
  LogLine(xlb::LogLevel::kInfo,
          "stopping; the datapath stays attached with its maps pinned under " + opts.pin_dir +
              " (xlbctl uninstall removes it)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {  // the model and the YAML parser allocate and may throw
    std::fprintf(stderr, "xlb-agent: %s\n", e.what());
    return 1;
  }
}
