// xlb-agent --kube, the binary as the DaemonSet runs it, following two clusters' test API
// servers (HTTPS, bearer tokens) into real BPF maps, read back with `xlbctl -o json` (another
// program, reading the pins): create, update and delete of EndpointSlices in both clusters and
// of the local ServiceImport change the maps to match; the remote cluster's API server going
// away leaves its endpoints in force until staleAfter, then its weight fails over, and its
// return brings them back; a restarted agent adopts the maps and writes nothing. Needs root
// (BPF maps; CI is root): without it the agent cannot load and the test fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <algorithm>
#include <sstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "loader/xdp_loader.h"
#include "userspace/agent/http_server.h"
#include "userspace/kube/source/kube_objects.h"
#include "testbed.h"
#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/free_port.h"
#include "tests/kube/source/kube_fixtures.h"
#include "tests/pkt/temp_dir.h"

namespace xlb::kube {
namespace {

using namespace std::chrono_literals;
using namespace xlb::kube::testing;  // NOLINT: the fixtures
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kServices = "/api/v1/services";
constexpr const char* kSlices = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kNodes = "/api/v1/nodes";
constexpr const char* kImports = "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports";

// The agent's view of the maps: valid backends by address, and the VIP:port keys.
struct Maps {
  std::map<std::string, json> backends;  // "198.18.1.1:8080" -> xlbctl's backend object
  std::set<std::string> vips;            // "198.18.100.10:80"

  size_t InCluster(int cluster_id) const {
    size_t n = 0;
    for (const auto& [address, b] : backends) {
      n += b["cluster_id"].get<int>() == cluster_id ? 1 : 0;
    }
    return n;
  }
};

class AgentKube : public ::testing::Test {
 protected:
  void SetUp() override {
    pins_ = "/sys/fs/bpf/xlb-test-kube-" + std::to_string(::getpid());
    a_.Start();
    b_.Start();
    a_.WriteKubeconfig(dir_.File("local.kubeconfig"), "test-token");
    std::filesystem::create_directory(dir_.File("clusters"));
    b_.WriteKubeconfig(dir_.File("clusters/cluster-b"), "test-token");
    std::ofstream(dir_.File("kube.yaml"))
        << "apiVersion: xlb.dev/v1alpha1\n"
        << "kind: KubeSources\n"
        << "staleAfter: 500ms\n"
        << "serviceImports: v1alpha1\n"
        << "local:\n"
        << "  name: cluster-a\n"
        << "  id: 1\n"
        << "  kubeconfig: " << dir_.File("local.kubeconfig") << "\n"
        << "clusters:\n"
        << "- name: cluster-b\n"
        << "  id: 2\n"
        << "  kubeconfig: " << dir_.File("clusters/cluster-b") << "\n";
  }

  void TearDown() override {
    if (agent_) {
      agent_->Stop();
    }
    (void)RemovePins(pins_);
  }

  void StartAgent(const std::string& metrics_addr = "off") {
    agent_ = testbed::Spawn("",
                            {XLB_AGENT_BIN, "--kube", dir_.File("kube.yaml"), "--pin-dir", pins_,
                             "--metrics-addr", metrics_addr, "--tunnel-addr", "198.18.0.11"},
                            dir_.File("agent-" + std::to_string(++starts_)));
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(WaitForLog("xlb-agent info: running:", 30s)) << agent_->ErrSoFar();
  }

  bool WaitForLog(const std::string& needle, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (agent_->ErrSoFar().find(needle) != std::string::npos) {
        return true;
      }
      if (!agent_->Running()) {
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  json Xlbctl(const std::string& command) {
    testbed::CommandResult r =
        testbed::RunIn("", {XLBCTL_BIN, command, "--pin-dir", pins_, "-o", "json"}, 30s);
    EXPECT_TRUE(r.ok()) << r.Describe();
    return r.ok() ? json::parse(r.out) : json::object();
  }

  Maps ReadMaps() {
    Maps m;
    const json backends = Xlbctl("backends");  // held: a range-for over a temporary's member
    const json services = Xlbctl("services");  //   would dangle
    for (const json& b : backends.value("backends", json::array())) {
      m.backends[b["address"].get<std::string>() + ":" + std::to_string(b["port"].get<int>())] = b;
    }
    for (const json& s : services.value("services", json::array())) {
      m.vips.insert(s["vip"].get<std::string>() + ":" + std::to_string(s["port"].get<int>()));
    }
    return m;
  }

  // Reads the maps until `done` holds, at most `timeout` (generous: a loaded machine is slow,
  // not broken); how long it took, or -1.
  long WaitForMaps(const std::function<bool(const Maps&)>& done, Clock::duration timeout = 30s) {
    const auto start = Clock::now();
    while (Clock::now() - start < timeout) {
      if (done(ReadMaps())) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }

  std::string Describe() {
    const Maps m = ReadMaps();
    std::string text = "maps: " + std::to_string(m.InCluster(1)) + " backends of cluster 1, " +
                       std::to_string(m.InCluster(2)) + " of cluster 2; VIPs:";
    for (const std::string& vip : m.vips) {
      text += " " + vip;
    }
    return text + "\n" + Xlbctl("backends").dump(1) + "\n" + agent_->ErrSoFar();
  }

  xlb::testing::TestApiServer a_;
  xlb::testing::TestApiServer b_;
  pkt::TempDir dir_{"xlb-agent-kube"};
  std::string pins_;
  std::unique_ptr<testbed::Process> agent_;
  int starts_ = 0;
};

TEST_F(AgentKube, FollowsTwoClustersIntoTheMapsAndFailsOverAStaleOne) {
  a_.Create(kServices, ServiceObject("production", "api", "198.18.100.10"));
  a_.Create(kSlices, SliceObject("production", "api-a", "api",
                                 {EndpointObject("198.18.1.1", "node-a1"),
                                  EndpointObject("198.18.1.2", "node-a1")}));
  a_.Create(kNodes, NodeObject("node-a1", "198.18.0.11"));
  a_.Create(kImports, ImportObject("production", "api", {"198.18.200.10"}));
  b_.Create(kServices, ServiceObject("production", "api", "198.18.110.10"));
  b_.Create(kSlices, SliceObject("production", "api-b", "api",
                                 {EndpointObject("198.18.2.1", "node-b1"),
                                  EndpointObject("198.18.2.2", "node-b1")}));
  b_.Create(kNodes, NodeObject("node-b1", "198.18.0.21"));
  StartAgent();

  // The first sync: both clusters' endpoints, cluster B's through the tunnel to its node; the
  // ClusterIP of the local Service and the ClusterSet IP of the ServiceImport.
  ASSERT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 2 && m.InCluster(2) == 2; }),
            0)
      << Describe();
  Maps m = ReadMaps();
  EXPECT_EQ(m.vips, (std::set<std::string>{"198.18.100.10:80", "198.18.200.10:80"}));
  EXPECT_EQ(m.backends.at("198.18.1.1:8080")["path"], "routed");
  EXPECT_EQ(m.backends.at("198.18.2.1:8080")["path"], "tunnel");
  EXPECT_EQ(m.backends.at("198.18.2.1:8080")["tunnel"], "198.18.0.21");

  // An EndpointSlice update in the remote cluster: a third endpoint.
  b_.Update(kSlices, SliceObject("production", "api-b", "api",
                                 {EndpointObject("198.18.2.1", "node-b1"),
                                  EndpointObject("198.18.2.2", "node-b1"),
                                  EndpointObject("198.18.2.3", "node-b1")}));
  const long added_ms = WaitForMaps([](const Maps& m) { return m.InCluster(2) == 3; });
  EXPECT_GE(added_ms, 0) << Describe();

  // A local endpoint turns not ready: it leaves the maps (no slot, no entry).
  a_.Update(kSlices,
            SliceObject("production", "api-a", "api",
                        {EndpointObject("198.18.1.1", "node-a1"),
                         EndpointObject("198.18.1.2", "node-a1", ReadyConditions(false))}));
  EXPECT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 1; }), 0) << Describe();

  // The ServiceImport goes: its ClusterSet IP leaves the services map.
  a_.Delete("/apis/multicluster.x-k8s.io/v1alpha1/namespaces/production/serviceimports", "api");
  EXPECT_GE(WaitForMaps([](const Maps& m) { return m.vips.count("198.18.200.10:80") == 0; }), 0)
      << Describe();
  EXPECT_EQ(ReadMaps().vips.count("198.18.100.10:80"), 1u);

  // Cluster B's API server goes away: its endpoints stay for staleAfter (500 ms), then leave.
  b_.Stop();
  const auto stopped = Clock::now();
  EXPECT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(2) == 0; }), 0) << Describe();
  const long stale_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopped).count();
  EXPECT_GE(stale_ms, 450) << "cluster B's endpoints left before staleAfter";
  EXPECT_EQ(ReadMaps().InCluster(1), 1u);

  // It comes back (same port, same objects): relisted, its endpoints are in force again.
  b_.Start();
  EXPECT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(2) == 3; }, 60s), 0) << Describe();

  // A local slice deleted: cluster A has no endpoint left.
  a_.Delete("/apis/discovery.k8s.io/v1/namespaces/production/endpointslices", "api-a");
  EXPECT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 0; }), 0) << Describe();

  // A restart adopts the maps: the first sync after the lists writes nothing.
  agent_->Stop();
  StartAgent();
  EXPECT_TRUE(WaitForLog("sync #1: 0 writes", 30s)) << agent_->ErrSoFar();
  EXPECT_EQ(ReadMaps().InCluster(2), 3u);
  std::printf(
      "[ kube ] slice update in cluster B in the maps after %ld ms (xlbctl polling); "
      "cluster B stale after %ld ms (staleAfter 500 ms)\n",
      added_ms, stale_ms);
}

// An API server that is down when the agent starts: the agent loads and adopts the maps but
// writes nothing (an empty cache is not "no services"), and syncs once the server answers.
TEST_F(AgentKube, LocalApiServerDownAtStartLeavesTheMapsAsTheyAre) {
  a_.Create(kServices, ServiceObject("production", "api", "198.18.100.10"));
  a_.Create(kSlices,
            SliceObject("production", "api-a", "api", {EndpointObject("198.18.1.1", "node-a1")}));
  StartAgent();
  ASSERT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 1; }), 0) << Describe();
  agent_->Stop();

  a_.Stop();
  agent_ = testbed::Spawn("",
                          {XLB_AGENT_BIN, "--kube", dir_.File("kube.yaml"), "--pin-dir", pins_,
                           "--metrics-addr", "off"},
                          dir_.File("agent-down"));
  ASSERT_TRUE(WaitForLog("xlb-agent info: running:", 30s)) << agent_->ErrSoFar();
  EXPECT_NE(agent_->ErrSoFar().find("waiting for the local cluster's first lists"),
            std::string::npos)
      << agent_->ErrSoFar();
  EXPECT_EQ(agent_->ErrSoFar().find("sync #1"), std::string::npos) << agent_->ErrSoFar();
  EXPECT_EQ(ReadMaps().InCluster(1), 1u);
  EXPECT_EQ(ReadMaps().vips.count("198.18.100.10:80"), 1u);

  a_.Start();
  EXPECT_TRUE(WaitForLog("sync #1: ", 60s)) << agent_->ErrSoFar();
  EXPECT_EQ(ReadMaps().InCluster(1), 1u);
}

// kube-proxy's network programming latency: from the EndpointSlice's last-change-trigger-time
// (as the EndpointSlice controller writes it) to the sync that put the change in the maps.
// The first lists' old trigger times are not measured; a change made now is, once, and within
// the time the test saw it take.
TEST_F(AgentKube, NetworkProgrammingLatencyRunsFromTheSlicesTriggerTimeToTheMaps) {
  auto format = [](std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm utc{};
    ::gmtime_r(&secs, &utc);
    char text[64];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
    const long micros =
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() %
        1000000;
    char out[80];
    std::snprintf(out, sizeof(out), "%s.%06ldZ", text, micros);
    return std::string(out);
  };
  auto slice = [&](std::vector<json> endpoints, std::chrono::system_clock::time_point when) {
    json s = SliceObject("production", "api-a", "api", std::move(endpoints));
    s["metadata"]["annotations"][kTriggerTimeAnnotation] = format(when);
    return s;
  };
  a_.Create(kServices, ServiceObject("production", "api", "198.18.100.10"));
  a_.Create(kSlices, slice({EndpointObject("198.18.1.1", "node-a1")},
                           std::chrono::system_clock::now() - std::chrono::hours(1)));
  const std::string metrics = "127.0.0.1:" + std::to_string(xlb::testing::FreeLoopbackPort());
  StartAgent(metrics);
  ASSERT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 1; }), 0) << Describe();
  auto count = [&]() -> long {
    auto got = HttpGet(metrics, "/metrics");
    if (!got.ok()) {
      ADD_FAILURE() << got.error().ToString();
      return -1;
    }
    const std::string needle = "\nxlb_network_programming_duration_seconds_count ";
    const size_t at = got->body.find(needle);
    EXPECT_NE(at, std::string::npos) << got->body;
    return at == std::string::npos ? -1 : std::atol(got->body.c_str() + at + needle.size());
  };
  EXPECT_EQ(count(), 0) << "the first list's trigger time is an hour old: not this agent's work";

  const auto changed = std::chrono::system_clock::now();
  a_.Update(kSlices, slice({EndpointObject("198.18.1.1", "node-a1"),
                            EndpointObject("198.18.1.2", "node-a1")},
                           changed));
  ASSERT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 2; }), 0) << Describe();
  const double seen = std::chrono::duration<double>(std::chrono::system_clock::now() - changed).count();
  long n = -1;
  for (int i = 0; i < 100 && (n = count()) < 1; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(n, 1);
  // The agent stamps a change programmed when its sync step ends, a little after the maps
  // (which the test saw at `seen`) are written; the scrape that showed it bounds it.
  const double scraped =
      std::chrono::duration<double>(std::chrono::system_clock::now() - changed).count();
  auto got = HttpGet(metrics, "/metrics");
  ASSERT_TRUE(got.ok());
  const std::string sum_needle = "\nxlb_network_programming_duration_seconds_sum ";
  const size_t at = got->body.find(sum_needle);
  ASSERT_NE(at, std::string::npos);
  const double sum = std::atof(got->body.c_str() + at + sum_needle.size());
  EXPECT_GE(sum, 0.0);
  EXPECT_LE(sum, scraped) << "programmed after the scrape that reported it?";
  std::printf("[ kube ] network programming latency of one slice change: %.1f ms (maps seen "
              "changed after %.1f ms)\n",
              sum * 1000, seen * 1000);
}

// The Grafana dashboard (deploy/monitoring) against what a real --kube agent exports: every
// metric a query names is a family of the scrape (a histogram's _bucket, _sum, _count too),
// and every label a query groups or filters by is on that family's samples.
TEST_F(AgentKube, GrafanaDashboardQueriesOnlyWhatTheAgentExports) {
  a_.Create(kServices, ServiceObject("production", "api", "198.18.100.10"));
  a_.Create(kSlices,
            SliceObject("production", "api-a", "api", {EndpointObject("198.18.1.1", "node-a1")}));
  b_.Create(kServices, ServiceObject("production", "api", "198.18.110.10"));
  b_.Create(kSlices,
            SliceObject("production", "api-b", "api", {EndpointObject("198.18.2.1", "node-b1")}));
  b_.Create(kNodes, NodeObject("node-b1", "198.18.0.21"));
  // An FQDN slice, which xlb skips and counts: the problems family gets its samples.
  a_.Create(kSlices, SliceObject("production", "api-fqdn", "api",
                                 {EndpointObject("db.example.com")}, "FQDN"));
  const std::string metrics = "127.0.0.1:" + std::to_string(xlb::testing::FreeLoopbackPort());
  StartAgent(metrics);
  ASSERT_GE(WaitForMaps([](const Maps& m) { return m.InCluster(1) == 1 && m.InCluster(2) == 1; }),
            0)
      << Describe();
  auto scraped = HttpGet(metrics, "/metrics");
  ASSERT_TRUE(scraped.ok()) << scraped.error().ToString();
  // Series name -> the label names its samples carry.
  std::map<std::string, std::set<std::string>> exported;
  size_t samples = 0;
  std::istringstream lines(scraped->body);
  for (std::string line; std::getline(lines, line);) {
    samples += !line.empty() && line[0] != '#';
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      exported[name];
      if (type == "histogram") {
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
          exported[name + suffix];
        }
      }
    } else if (!line.empty() && line[0] != '#') {
      const size_t brace = line.find('{');
      const std::string name = line.substr(0, std::min(brace, line.find(' ')));
      if (brace != std::string::npos) {
        for (size_t at = brace + 1; at < line.size() && line[at] != '}';) {
          const size_t eq = line.find('=', at);
          exported[name].insert(line.substr(at, eq - at));
          at = line.find("\",", eq);  // values are quoted; xlb's never hold `",`
          at = at == std::string::npos ? line.size() : at + 2;
        }
      }
    }
  }
  std::ifstream file(std::string(XLB_DEPLOY_DIR) + "/monitoring/grafana-dashboard.json");
  const json dashboard = json::parse(file, nullptr, false);
  ASSERT_TRUE(dashboard.is_object()) << "not JSON";
  const std::regex metric_re("xlb_[a-z0-9_]+");
  const std::regex label_re("([a-z_]+)=~?\"");
  const std::regex by_re("by \\(([a-z_, ]+)\\)");
  size_t queries = 0;
  for (const json& panel : dashboard.at("panels")) {
    for (const json& target : panel.at("targets")) {
      const std::string expr = target.at("expr").get<std::string>();
      ++queries;
      std::vector<std::string> names;
      for (std::sregex_iterator m(expr.begin(), expr.end(), metric_re), end; m != end; ++m) {
        names.push_back(m->str());
        EXPECT_TRUE(exported.count(m->str())) << panel["title"] << ": " << m->str();
      }
      ASSERT_FALSE(names.empty()) << panel["title"] << ": " << expr;
      std::set<std::string> labels;
      for (std::sregex_iterator m(expr.begin(), expr.end(), label_re), end; m != end; ++m) {
        labels.insert((*m)[1]);
      }
      for (std::sregex_iterator m(expr.begin(), expr.end(), by_re), end; m != end; ++m) {
        std::istringstream list((*m)[1].str());
        for (std::string l; std::getline(list, l, ',');) {
          labels.insert(l.substr(l.find_first_not_of(' ')));
        }
      }
      for (const std::string& label : labels) {
        if (label == "instance" || label == "le") {
          continue;  // Prometheus' own target label; a histogram's buckets
        }
        const bool carried = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
          return exported.count(n) && exported[n].count(label);
        });
        EXPECT_TRUE(carried) << panel["title"] << ": label " << label << " in " << expr;
      }
    }
  }
  EXPECT_GE(queries, 12u);
  std::printf("[ kube ] dashboard: %zu queries over %zu exported series names; the scrape has %zu "
              "samples (2 clusters, 1 service port, 2 backends)\n",
              queries, exported.size(), samples);
}

}  // namespace
}  // namespace xlb::kube
