// The agent's metrics without root: the exposition format (escaping, HELP/TYPE, histogram
// buckets cumulative with +Inf, _sum and _count), readiness, the HTTP responder on a loopback
// port of its own, and --metrics-addr, --healthz-addr and --health-check-addr.
#include "userspace/agent/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "userspace/agent/agent_options.h"
#include "userspace/agent/http_server.h"

namespace xlb::agent_test {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    out.push_back(text.substr(at, end - at));
    at = end == std::string::npos ? text.size() : end + 1;
  }
  return out;
}

TEST(Exposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue(R"(a"b\c)"
                             "\nd"),
            R"(a\"b\\c\nd)");
  EXPECT_EQ(EscapeLabelValue("production/api-service"), "production/api-service");
  // HELP keeps double quotes as they are; only backslash and line feed are escaped.
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");

  Exposition out;
  out.Family("xlb_service_packets_total", "counter", "Packets.\nTwo lines");
  out.Sample("xlb_service_packets_total", {{"service", "ns/we\"ird"}, {"service_id", "7"}},
             uint64_t{42});
  EXPECT_EQ(out.text(),
            "# HELP xlb_service_packets_total Packets.\\nTwo lines\n"
            "# TYPE xlb_service_packets_total counter\n"
            "xlb_service_packets_total{service=\"ns/we\\\"ird\",service_id=\"7\"} 42\n");
}

TEST(Exposition, UnlabelledSampleAndDoubles) {
  Exposition out;
  out.Sample("xlb_agent_up", {}, uint64_t{1});
  out.Sample("x", {}, 0.25);
  EXPECT_EQ(out.text(), "xlb_agent_up 1\nx 0.25\n");
}

TEST(Histogram, BucketsAreCumulativeWithInfSumAndCount) {
  Histogram h({0.001, 0.01, 0.1});
  for (const double v : {0.0005, 0.001, 0.002, 0.05, 0.05, 3.0}) {
    h.Observe(v);
  }
  Exposition out;
  h.Write(out, "xlb_agent_sync_duration_seconds", "Sync time.", {{"node", "a"}});
  const std::vector<std::string> lines = Lines(out.text());
  const std::vector<std::string> want = {
      "# HELP xlb_agent_sync_duration_seconds Sync time.",
      "# TYPE xlb_agent_sync_duration_seconds histogram",
      // 0.001 is "le" 0.001: bounds are inclusive.
      "xlb_agent_sync_duration_seconds_bucket{node=\"a\",le=\"0.001\"} 2",
      "xlb_agent_sync_duration_seconds_bucket{node=\"a\",le=\"0.01\"} 3",
      "xlb_agent_sync_duration_seconds_bucket{node=\"a\",le=\"0.1\"} 5",
      "xlb_agent_sync_duration_seconds_bucket{node=\"a\",le=\"+Inf\"} 6",
      "xlb_agent_sync_duration_seconds_sum{node=\"a\"} 3.1034999999999999",
      "xlb_agent_sync_duration_seconds_count{node=\"a\"} 6",
  };
  EXPECT_EQ(lines, want) << out.text();
  EXPECT_EQ(h.count(), 6u);
}

TEST(Histogram, SyncBucketsSpan100MicrosecondsTo10Seconds) {
  const std::vector<double> b = SyncDurationBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0001);
  EXPECT_DOUBLE_EQ(b.back(), 10.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

// Samples (lines that are not # HELP / # TYPE) of an exposition.
size_t SampleLines(const std::string& text) {
  size_t n = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    n += text[at] != '#';
    at = end == std::string::npos ? text.size() : end + 1;
  }
  return n;
}

// What a node exports per service port and backend stays bounded: at 100,000 endpoints in
// 10,000 service ports of 3 clusters, only the clusters' sums and the omitted counts; under
// the limit, every service port and backend has its three series.
TEST(FlowCounters, PerServiceAndPerBackendSeriesStopAtTheDetailLimit) {
  IdNames names;
  std::map<uint32_t, xlb_flow_counter> services, backends;
  for (uint32_t id = 1; id <= 10'000; ++id) {
    names.services[id] = {"ns/svc-" + std::to_string(id), "80/TCP", "IPv4"};
    services[id] = {1, 100, 1};
  }
  for (uint32_t id = 1; id <= 100'000; ++id) {
    names.backends[id] = {"198.18." + std::to_string(id / 250) + "." + std::to_string(id % 250) +
                              ":80",
                          "cluster-" + std::to_string(id % 3)};
    backends[id] = {2, 200, 1};
  }
  Exposition big;
  WriteFlowCounters(names, services, backends, 1000, big);
  EXPECT_EQ(SampleLines(big.text()), 3u * 3 + 2) << "3 families x 3 clusters, 2 omitted counts";
  EXPECT_NE(big.text().find("xlb_metrics_series_omitted{level=\"backend\"} 100000"),
            std::string::npos);
  EXPECT_NE(big.text().find("xlb_metrics_series_omitted{level=\"service\"} 10000"),
            std::string::npos);
  // The clusters' sums still count every backend.
  EXPECT_NE(big.text().find("xlb_cluster_new_flows_total{cluster=\"cluster-0\"} 33333"),
            std::string::npos)
      << big.text();

  IdNames few;
  std::map<uint32_t, xlb_flow_counter> few_services, few_backends;
  for (uint32_t id = 1; id <= 5; ++id) {
    few.services[id] = names.services[id];
    few_services[id] = services[id];
  }
  for (uint32_t id = 1; id <= 12; ++id) {
    few.backends[id] = names.backends[id];
    few_backends[id] = backends[id];
  }
  Exposition small;
  WriteFlowCounters(few, few_services, few_backends, 12, small);
  EXPECT_EQ(SampleLines(small.text()), 3u * 5 + 3u * 12 + 3u * 3 + 2);
  EXPECT_NE(small.text().find("xlb_metrics_series_omitted{level=\"backend\"} 0"),
            std::string::npos);
}

TEST(AgentStatus, ReadyAfterASuccessfulSyncWithXdpOnEveryUplinkAndNotAfterAFailedOne) {
  AgentStatus s;
  s.RequireXdp({"eth0", "eth1"});
  EXPECT_FALSE(s.Ready());
  Exposition before;
  s.WriteAgentMetrics(before);
  EXPECT_NE(before.text().find("\nxlb_agent_last_sync_success_timestamp_seconds 0\n"),
            std::string::npos)
      << before.text();
  EXPECT_NE(before.text().find("\nxlb_build_info{version=\""), std::string::npos) << before.text();
  WriteCounts w;
  w[WriteKind::kTable] = 1;
  s.RecordSync(std::chrono::milliseconds(2), w, true);
  EXPECT_FALSE(s.Ready()) << "synced, but XDP is not attached yet";
  s.SetXdpAttached("eth1");
  EXPECT_FALSE(s.Ready()) << "XDP is on eth1 only";
  Exposition half;
  s.WriteAgentMetrics(half);
  EXPECT_NE(half.text().find("xlb_agent_xdp_attached{interface=\"eth0\"} 0\n"), std::string::npos)
      << half.text();
  EXPECT_NE(half.text().find("xlb_agent_xdp_attached{interface=\"eth1\"} 1\n"), std::string::npos)
      << half.text();
  EXPECT_NE(half.text().find("xlb_agent_socket_lb_attached 0\n"), std::string::npos) << half.text();
  s.SetSocketLbAttached();
  Exposition with_socket_lb;
  s.WriteAgentMetrics(with_socket_lb);
  EXPECT_NE(with_socket_lb.text().find("xlb_agent_socket_lb_attached 1\n"), std::string::npos)
      << with_socket_lb.text();
  s.SetXdpAttached("eth0");
  EXPECT_TRUE(s.Ready());
  s.RecordSync(std::chrono::milliseconds(1), {}, false);
  EXPECT_FALSE(s.Ready()) << "the last sync failed";
  s.RecordSync(std::chrono::milliseconds(1), {}, true);
  EXPECT_TRUE(s.Ready());
  EXPECT_TRUE(s.Healthy(std::chrono::seconds(60)));

  Exposition out;
  s.WriteAgentMetrics(out);
  const std::string& t = out.text();
  EXPECT_NE(t.find("\nxlb_agent_up 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nxlb_agent_sync_duration_seconds_count 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nxlb_agent_syncs_failed_total 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("\nxlb_agent_sync_writes_total{kind=\"table\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE xlb_agent_reloads_total counter\n"), std::string::npos) << t;
  // the wall clock at the last successful sync: after 2020, whatever the machine's uptime
  const std::string key = "\nxlb_agent_last_sync_success_timestamp_seconds ";
  const size_t at = t.find(key);
  ASSERT_NE(at, std::string::npos) << t;
  EXPECT_GT(std::stod(t.substr(at + key.size())), 1.6e9) << t;
}

TEST(HttpServer, ServesGetAndAnswers404OnLoopback) {
  auto server = HttpServer::Start("127.0.0.1:0", [](std::string_view path) {
    if (path == "/readyz") {
      return HttpResponse{503, "text/plain", "not yet\n"};
    }
    if (path == "/metrics") {
      return HttpResponse{200, "text/plain", "xlb_agent_up 1\n"};
    }
    return HttpResponse{404, "text/plain", "no\n"};
  });
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  const std::string addr = "127.0.0.1:" + std::to_string((*server)->port());
  ASSERT_NE((*server)->port(), 0);

  auto metrics = HttpGet(addr, "/metrics?x=1");
  ASSERT_TRUE(metrics.ok()) << metrics.error().ToString();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->body, "xlb_agent_up 1\n");
  auto ready = HttpGet(addr, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503);
  auto missing = HttpGet(addr, "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);

  // A second server on the same port fails at Start(), not later.
  auto taken = HttpServer::Start(addr, [](std::string_view) { return HttpResponse{}; });
  EXPECT_FALSE(taken.ok());
}

// xlb-agent ARGS... parsed into `o`.
bool ParseArgs(std::vector<const char*> args, AgentOptions& o, std::string& problem) {
  args.insert(args.begin(), "xlb-agent");
  bool help = false;
  return ParseAgentOptions(static_cast<int>(args.size()), args.data(), o, problem, help);
}

TEST(AgentOptions, MetricsAddressDefaultOffAndBad) {
  AgentOptions o;
  std::string problem;
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml"}, o, problem)) << problem;
  EXPECT_EQ(o.metrics_addr, "127.0.0.1:9464");
  AgentOptions off;
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml", "--metrics-addr", "off"}, off, problem)) << problem;
  EXPECT_EQ(off.metrics_addr, "");
  AgentOptions v6;
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml", "--metrics-addr", "[::1]:9000"}, v6, problem));
  EXPECT_EQ(v6.metrics_addr, "[::1]:9000");
  for (const char* bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:70000", "::1:9464"}) {
    AgentOptions b;
    EXPECT_FALSE(ParseArgs({"--config", "c.yaml", "--metrics-addr", bad}, b, problem)) << bad;
    EXPECT_NE(problem.find("--metrics-addr"), std::string::npos) << problem;
  }
}

TEST(AgentOptions, HealthCheckAddresses) {
  AgentOptions o;
  std::string problem;
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml"}, o, problem)) << problem;
  EXPECT_EQ(o.healthz_addr, "");
  EXPECT_EQ(o.health_check_addr, "::");
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml", "--healthz-addr", "0.0.0.0:10256",
                         "--health-check-addr", "198.18.0.1"},
                        o, problem))
      << problem;
  EXPECT_EQ(o.healthz_addr, "0.0.0.0:10256");
  EXPECT_EQ(o.health_check_addr, "198.18.0.1");
  AgentOptions off;
  ASSERT_TRUE(ParseArgs({"--config", "c.yaml", "--health-check-addr", "off"}, off, problem));
  EXPECT_EQ(off.health_check_addr, "");
  AgentOptions bad;
  EXPECT_FALSE(ParseArgs({"--config", "c.yaml", "--health-check-addr", "node-1"}, bad, problem));
  EXPECT_NE(problem.find("--health-check-addr node-1"), std::string::npos) << problem;
  EXPECT_FALSE(ParseArgs({"--config", "c.yaml", "--healthz-addr", "10256"}, bad, problem));
}

}  // namespace
}  // namespace xlb::agent_test
