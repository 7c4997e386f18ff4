// The watch client against the test API server (tests/kube/apiserver) on 127.0.0.1: lists in
// pages, watch events, bookmarks, and every way a watch ends (expiry, 410, dropped connections,
// a restarted server with a new history, token rotation, a wrong CA, 5xx).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/kube/apiserver/test_apiserver.h"
#include "tests/kube/client/recording_events.h"
#include "tests/pkt/temp_dir.h"
#include "userspace/kube/client/cluster_watch.h"
#include "userspace/kube/client/text_util.h"

namespace xlb::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using xlb::testing::ApiServerOptions;
using xlb::pkt::TempDir;
using xlb::testing::TestApiServer;

const ResourcePath kServices{"/api/v1/services", "Service"};
const ResourcePath kNodes{"/api/v1/nodes", "Node"};

nlohmann::json Service(const std::string& name, int port = 80) {
  return {{"metadata", {{"name", name}}},
          {"spec", {{"type", "ClusterIP"}, {"ports", {{{"port", port}, {"protocol", "TCP"}}}}}}};
}

std::string Ns(int i) {
  return "/api/v1/namespaces/ns" + std::to_string(i) + "/services";
}

// Quick back-off, so that outages in these tests last milliseconds.
WatchOptions FastOptions() {
  WatchOptions o;
  o.backoff.initial = milliseconds(20);
  o.backoff.max = milliseconds(200);
  o.request_timeout = milliseconds(5000);
  o.seed = 42;
  return o;
}

ClusterConnection ConnectionTo(const TestApiServer& server,
                               std::shared_ptr<CredentialSource> credentials) {
  auto address = ParseServerUrl(server.url());
  EXPECT_TRUE(address);
  ClusterConnection c;
  c.tls = address->tls;
  c.host = address->host;
  c.port = address->port;
  c.ca_pem = server.ca_pem();
  c.credentials = std::move(credentials);
  c.origin = "test";
  return c;
}

ClusterConnection ConnectionTo(const TestApiServer& server,
                               const std::string& token = "test-token") {
  return ConnectionTo(server, std::make_shared<StaticCredential>(Credential{token, "", ""}));
}

// --- list and watch ------------------------------------------------------------------------------

struct ListCase {
  bool tls;
  bool random_chunks;
};

class ListAndWatch : public ::testing::TestWithParam<ListCase> {};

// 1,200 objects come in three pages of at most 500, then creates, updates and deletes arrive
// through the watch; over TLS (via a kubeconfig) and plain HTTP, with the server cutting its
// watch stream into chunks of random size (events split across chunks, several per chunk).
TEST_P(ListAndWatch, PagesThenEvents) {
  ApiServerOptions options;
  options.tls = GetParam().tls;
  options.random_chunks = GetParam().random_chunks;
  TestApiServer server(options);
  server.Start();
  for (int i = 0; i < 1200; ++i) server.Create(Ns(i % 7), Service("svc" + std::to_string(i)));

  TempDir dir;
  server.WriteKubeconfig(dir.File("kubeconfig"), "test-token");
  auto connection = KubeconfigConnection(dir.File("kubeconfig"));
  ASSERT_TRUE(connection) << connection.error().message;
  RecordingEvents events;
  ClusterWatch watch(*connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();

  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; })) << events.Log();
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 1200); }));
  EXPECT_EQ(watch.Counters(kServices).list_pages, 3u);
  EXPECT_EQ(watch.Counters(kServices).lists, 1u);
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));

  // 100 creates, 50 updates, 30 deletes, in one burst.
  for (int i = 0; i < 100; ++i) server.Create(Ns(8), Service("new" + std::to_string(i)));
  for (int i = 0; i < 50; ++i) {
    auto svc = Service("svc" + std::to_string(i), 8080);
    svc["metadata"]["namespace"] = "ns" + std::to_string(i % 7);
    server.Update(Ns(i % 7), svc);
  }
  for (int i = 50; i < 80; ++i) server.Delete(Ns(i % 7), "svc" + std::to_string(i));

  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.upserts() == 150 && r.deletes() == 30; }))
      << "upserts/deletes never arrived";
  events.WaitFor([](const auto& r) { return HasExactly(r, 1270); });
  EXPECT_TRUE(events.WaitFor([&](const auto& r) {
    auto it = r.state().find("ns3/svc3");
    return r.state().size() == 1270 && it != r.state().end() &&
           it->second["spec"]["ports"][0]["port"] == 8080 && r.state().count("ns0/svc56") == 0 &&
           r.state().count("ns8/new99") == 1;
  }));
  EXPECT_EQ(watch.ResourceVersion(kServices), server.resource_version());
  EXPECT_EQ(events.Replaces(), 1);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
  EXPECT_EQ(watch.Counters(kServices).events, 180u);
}

INSTANTIATE_TEST_SUITE_P(Transports, ListAndWatch,
                         ::testing::Values(ListCase{true, false}, ListCase{false, true},
                                           ListCase{true, true}),
                         [](const auto& info) {
                           return std::string(info.param.tls ? "Tls" : "PlainHttp") +
                                  (info.param.random_chunks ? "RandomChunks" : "");
                         });

TEST(Watch, TwoResourcesShareTheClusterThread) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  server.Create("/api/v1/nodes", {{"metadata", {{"name", "node1"}}}});
  RecordingEvents services, nodes;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, services);
  watch.Add(kNodes, nodes);
  watch.Start();
  ASSERT_TRUE(services.WaitFor([](const auto& r) { return HasExactly(r, 1); }));
  ASSERT_TRUE(
      nodes.WaitFor([](const auto& r) { return HasExactly(r, 1) && r.state().count("/node1"); }));
  ASSERT_TRUE(server.WaitForWatches(2, seconds(10)));
  server.Create("/api/v1/nodes", {{"metadata", {{"name", "node2"}}}});
  EXPECT_TRUE(nodes.WaitFor([](const auto& r) { return HasExactly(r, 2); }));
  EXPECT_EQ(services.upserts(), 0);
}

// Bookmarks move the resourceVersion forward while the watched resource does not change, so
// that a resumed watch starts from a recent point (not one the server compacted away).
TEST(Watch, BookmarksAdvanceTheResourceVersion) {
  ApiServerOptions options;
  options.bookmark_interval_ms = 100;
  TestApiServer server(options);
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  const std::string listed_rv = watch.ResourceVersion(kServices);
  // Changes to another resource move the server's resourceVersion, not our objects.
  for (int i = 0; i < 5; ++i) {
    server.Create("/api/v1/nodes", {{"metadata", {{"name", "n" + std::to_string(i)}}}});
  }
  const std::string latest = server.resource_version();
  ASSERT_NE(latest, listed_rv);
  Eventually([&] { return watch.ResourceVersion(kServices) == latest; });
  EXPECT_EQ(watch.ResourceVersion(kServices), latest);
  EXPECT_EQ(events.upserts(), 0);
  EXPECT_GT(watch.Counters(kServices).events, 0u);
}

// A watch the server ends at its timeoutSeconds is resumed from the last resourceVersion: more
// watches, one list.
TEST(Watch, CleanEndOfStreamResumesWithoutRelist) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  WatchOptions options = FastOptions();
  options.watch_timeout = seconds(1);
  options.watch_timeout_jitter = 0;
  ClusterWatch watch(ConnectionTo(server), options);
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  Eventually([&] { return watch.Counters(kServices).watches >= 3; });
  server.Create(Ns(1), Service("b"));
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 2); }));
  const auto c = watch.Counters(kServices);
  EXPECT_GE(c.watches, 3u);
  EXPECT_EQ(c.lists, 1u);
  EXPECT_EQ(c.relists, 0u);
  EXPECT_EQ(events.Replaces(), 1);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// --- 410 Gone ------------------------------------------------------------------------------------

// ERROR event with a 410 Status in the middle of a stream: relist, and what changed while the
// watch was gone is in the new list.
TEST(Gone, ExpiredWatchRelists) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  server.Create(Ns(1), Service("b"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.ExpireWatches();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 2; })) << events.Log();
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.Delete(Ns(1), "a");
  server.Create(Ns(1), Service("c"));
  EXPECT_TRUE(events.WaitFor([](const auto& r) {
    return HasExactly(r, 2) && r.state().count("ns1/b") && r.state().count("ns1/c");
  }));
  const auto c = watch.Counters(kServices);
  EXPECT_EQ(c.relists, 1u);
  EXPECT_EQ(c.lists, 2u);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << "a 410 is no outage";
  EXPECT_GE(server.gone(), 1u);
}

// Compacted history: the resumed watch's resourceVersion is too old (the server says so with
// an ERROR 410 event, as the real one does) and the client relists.
TEST(Gone, ResumeFromCompactedHistoryRelists) {
  ApiServerOptions options;
  options.bookmark_interval_ms = 60000;  // no bookmark may carry us past the compaction
  TestApiServer server(options);
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.Create("/api/v1/nodes", {{"metadata", {{"name", "n1"}}}});  // history moves on
  server.Compact();
  server.DropConnections();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 2; })) << events.Log();
  const auto c = watch.Counters(kServices);
  EXPECT_GE(c.reconnects, 1u);
  EXPECT_EQ(c.relists, 1u);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// An HTTP 410 answer to the watch request itself (what some proxies and older servers send).
TEST(Gone, Http410OnTheWatchRequestRelists) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.FailNextRequests(1, 410);
  server.DropConnections();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 2; })) << events.Log();
  EXPECT_EQ(watch.Counters(kServices).relists, 1u);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// --- connections dropped, servers restarted ------------------------------------------------------

TEST(Reconnect, DroppedConnectionsResumeWithoutLosingEvents) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
    server.DropConnections();
    // Changes made while the client is reconnecting must still reach it.
    for (int i = 0; i < 10; ++i) {
      server.Create(Ns(2), Service("r" + std::to_string(round) + "-" + std::to_string(i)));
    }
    ASSERT_TRUE(events.WaitFor([&](const auto& r) { return HasExactly(r, 1 + 10 * (round + 1)); }))
        << "round " << round << "\n"
        << events.Log();
  }
  const auto c = watch.Counters(kServices);
  EXPECT_GE(c.reconnects, 5u);
  EXPECT_EQ(c.lists, 1u) << "a dropped connection resumes the watch, it does not relist";
  EXPECT_EQ(events.Replaces(), 1);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// An etcd restore behind the API server: same address, unrelated resourceVersions. The client
// cannot resume; it relists and carries on from the new history.
TEST(Reconnect, ServerRestartWithNewHistoryRelists) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  const std::string old_rv = watch.ResourceVersion(kServices);
  server.Restart(/*new_history=*/true);
  server.Create(Ns(1), Service("after-restart"));
  ASSERT_TRUE(events.WaitFor([](const auto& r) {
    return r.replaces() >= 2 && r.state().count("ns1/after-restart") && HasExactly(r, 2);
  })) << events.Log();
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.Create(Ns(1), Service("later"));
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 3); }));
  EXPECT_NE(watch.ResourceVersion(kServices), old_rv);
  EXPECT_GE(watch.Counters(kServices).relists + watch.Counters(kServices).errors, 1u);
}

// --- authentication ------------------------------------------------------------------------------

// The kubelet rotates the projected token: the server stops accepting the old one, the file
// gets the new one. The client's next request gets a 401, re-reads the file at once (not at
// the next hourly check) and carries on, with no outage reported.
TEST(Auth, TokenRotationRecoversAfterA401) {
  TempDir dir;
  dir.Write("token", "token-1\n");
  ApiServerOptions options;
  options.tokens = {"token-1"};
  TestApiServer server(options);
  server.Start();
  server.Create(Ns(1), Service("a"));
  auto token =
      std::make_shared<TokenFileCredential>(dir.File("token"), "token", std::chrono::hours(1));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server, token), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));

  server.SetTokens({"token-2"});
  dir.Write("token", "token-2\n");
  server.DropConnections();  // the next request carries the cached token-1
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.Create(Ns(1), Service("b"));
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 2); })) << events.Log();
  EXPECT_GE(watch.Counters(kServices).unauthorized, 1u);
  EXPECT_GE(server.unauthorized(), 1u);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// The server already wants the new token but the file still has the old one: 401 twice is an
// outage (reported once however long it lasts); when the file is rewritten the client is back.
TEST(Auth, UnauthorizedUntilTheTokenFileIsRewritten) {
  TempDir dir;
  dir.Write("token", "old\n");
  ApiServerOptions options;
  options.tokens = {"new"};
  TestApiServer server(options);
  server.Start();
  server.Create(Ns(1), Service("a"));
  auto token =
      std::make_shared<TokenFileCredential>(dir.File("token"), "token", std::chrono::hours(1));
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server, token), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.unreachable().size() == 1; }));
  // Several failed attempts, one report.
  Eventually([&] { return watch.Counters(kServices).errors >= 4; });
  EXPECT_GE(watch.Counters(kServices).errors, 4u);
  auto why = events.UnreachableCopy();
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("401"), std::string::npos) << why[0];
  EXPECT_EQ(events.Replaces(), 0);

  dir.Write("token", "new\n");
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1 && HasExactly(r, 1); }))
      << events.Log();
  EXPECT_EQ(events.UnreachableCopy().size(), 1u);
}

// In-cluster configuration end to end: the service account directory and environment of a pod
// (pointed at the test server), a watch that works.
TEST(Auth, InClusterServiceAccount) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  TempDir sa;
  sa.Write("token", "test-token\n");
  sa.Write("ca.crt", server.ca_pem());
  sa.Write("namespace", "xlb-system");
  InClusterOptions options;
  options.service_account_dir = sa.path();
  options.getenv = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "KUBERNETES_SERVICE_HOST") return "127.0.0.1";
    if (name == "KUBERNETES_SERVICE_PORT") return std::to_string(server.port());
    return std::nullopt;
  };
  auto connection = InClusterConnection(options);
  ASSERT_TRUE(connection) << connection.error().message;
  RecordingEvents events;
  ClusterWatch watch(*connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1 && HasExactly(r, 1); }))
      << events.Log();
}

// An exec plugin's token is rotated: the 401 makes the client run the plugin again at once.
TEST(Auth, ExecPluginRunsAgainAfterA401) {
  ApiServerOptions options;
  options.tokens = {"exec-1"};
  TestApiServer server(options);
  server.Start();
  server.Create(Ns(1), Service("a"));
  TempDir dir;
  dir.Write("current", "exec-1");
  dir.Write("plugin.sh",
            "#!/bin/sh\necho run >> " + dir.File("runs") +
                "\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                "\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' \"$(cat " +
                dir.File("current") + ")\"\n",
            0700);
  server.WriteKubeconfig(dir.File("kubeconfig"), "unused");
  // The server's kubeconfig with its token user swapped for the plugin.
  auto yaml = ReadFileText(dir.File("kubeconfig"), "kubeconfig");
  ASSERT_TRUE(yaml);
  const size_t user = yaml->find("  user:\n    token:");
  ASSERT_NE(user, std::string::npos) << *yaml;
  const size_t end = yaml->find('\n', user + 10);
  yaml->replace(user, end - user,
                "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                "      command: ./plugin.sh");
  dir.Write("kubeconfig", *yaml);
  auto connection = KubeconfigConnection(dir.File("kubeconfig"));
  ASSERT_TRUE(connection) << connection.error().message;

  RecordingEvents events;
  ClusterWatch watch(*connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; })) << events.Log();
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  auto runs = [&]() -> long {
    auto text = ReadFileText(dir.File("runs"), "runs");
    return text ? std::count(text->begin(), text->end(), '\n') : 0;
  };
  EXPECT_EQ(runs(), 1) << "the credential is cached between requests";

  server.SetTokens({"exec-2"});
  dir.Write("current", "exec-2");
  server.DropConnections();
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  server.Create(Ns(1), Service("b"));
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 2); })) << events.Log();
  EXPECT_EQ(runs(), 2);
  EXPECT_GE(watch.Counters(kServices).unauthorized, 1u);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// --- unreachable ---------------------------------------------------------------------------------

// A server whose certificate does not chain to our CA is an outage with a TLS reason; nothing
// is listed.
TEST(Unreachable, WrongCaGivesATlsReason) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  TestApiServer other;  // its CA is another one
  ClusterConnection connection = ConnectionTo(server);
  connection.ca_pem = other.ca_pem();
  RecordingEvents events;
  ClusterWatch watch(connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return !r.unreachable().empty(); }));
  const auto why = events.UnreachableCopy();
  EXPECT_NE(why[0].find("TLS handshake"), std::string::npos) << why[0];
  EXPECT_NE(why[0].find("certificate verify failed"), std::string::npos) << why[0];
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(events.UnreachableCopy().size(), 1u);
  EXPECT_EQ(events.Replaces(), 0);
  EXPECT_EQ(server.lists_served(), 0u);
}

// The certificate chains to the CA but names other hosts (tls-server-name): refused too.
TEST(Unreachable, WrongServerNameIsRefused) {
  TestApiServer server;
  server.Start();
  ClusterConnection connection = ConnectionTo(server);
  connection.tls_server_name = "kubernetes.example.com";
  RecordingEvents events;
  ClusterWatch watch(connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return !r.unreachable().empty(); }));
  EXPECT_NE(events.UnreachableCopy()[0].find("TLS handshake"), std::string::npos);
  EXPECT_EQ(server.lists_served(), 0u);
  watch.Stop();
  // ...and "localhost", which the certificate does carry, is accepted.
  connection.tls_server_name = "localhost";
  RecordingEvents ok;
  ClusterWatch good(connection, FastOptions());
  good.Add(kServices, ok);
  good.Start();
  EXPECT_TRUE(ok.WaitFor([](const auto& r) { return r.replaces() == 1; })) << ok.Log();
}

// 5xx answers: one Unreachable for the outage, back-off, then a list (Replace) when it is over.
TEST(Unreachable, ServerErrorsThenRecovery) {
  TestApiServer server;
  server.Start();
  server.Create(Ns(1), Service("a"));
  server.FailNextRequests(4, 503);
  RecordingEvents events;
  ClusterWatch watch(ConnectionTo(server), FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; })) << events.Log();
  const auto why = events.UnreachableCopy();
  ASSERT_EQ(why.size(), 1u) << events.Log();
  EXPECT_NE(why[0].find("HTTP 503"), std::string::npos) << why[0];
  EXPECT_EQ(watch.Counters(kServices).errors, 4u);
}

// Nobody listens: connection refused, reported once; when a server comes up on that port, the
// client lists.
TEST(Unreachable, ServerDownThenUp) {
  uint16_t port;
  {
    TestApiServer probe;
    probe.Start();
    port = probe.port();
  }
  ApiServerOptions options;
  options.port = port;
  options.tls = false;
  TestApiServer server(options);  // not started yet
  server.Create(Ns(1), Service("a"));
  ClusterConnection connection;
  connection.tls = false;
  connection.host = "127.0.0.1";
  connection.port = port;
  connection.credentials = std::make_shared<StaticCredential>(Credential{"test-token", "", ""});
  RecordingEvents events;
  ClusterWatch watch(connection, FastOptions());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return !r.unreachable().empty(); }));
  EXPECT_NE(events.UnreachableCopy()[0].find("connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << events.UnreachableCopy()[0];
  server.Start();
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1 && HasExactly(r, 1); }))
      << events.Log();
  EXPECT_EQ(events.UnreachableCopy().size(), 1u);
}

// --- lifecycle -----------------------------------------------------------------------------------

TEST(Lifecycle, StopInterruptsABlockedWatchPromptly) {
  TestApiServer server;
  server.Start();
  RecordingEvents events;
  WatchOptions options = FastOptions();
  options.watch_timeout = seconds(600);
  auto watch = std::make_unique<ClusterWatch>(ConnectionTo(server), options);
  watch->Add(kServices, events);
  watch->Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; }));
  ASSERT_TRUE(server.WaitForWatches(1, seconds(10)));
  const auto start = std::chrono::steady_clock::now();
  watch.reset();  // the destructor stops and joins
  // Interrupted, not waited out: the watch would block for 600 s. The bound leaves room for a
  // loaded machine; it only has to tell the two apart.
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(30));
  // No call after Stop: the server's changes go nowhere.
  const int upserts = events.upserts();
  server.Create(Ns(1), Service("late"));
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(events.upserts(), upserts);
}

TEST(Lifecycle, StopDuringBackOffAndBeforeStart) {
  { ClusterWatch never_started(ClusterConnection{}, FastOptions()); }
  ClusterConnection nowhere;
  nowhere.tls = false;
  nowhere.host = "127.0.0.1";
  nowhere.port = 1;  // nothing listens on port 1 of loopback
  RecordingEvents events;
  WatchOptions options = FastOptions();
  options.backoff.initial = seconds(30);
  options.backoff.max = seconds(30);
  ClusterWatch watch(nowhere, options);
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return !r.unreachable().empty(); }));
  const auto start = std::chrono::steady_clock::now();
  watch.Stop();
  // Interrupted, not waited out: the back-off would wait 24 to 30 s (30 s, 20 % jitter). The
  // bound leaves room for a loaded machine; it only has to tell the two apart.
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
}

}  // namespace
}  // namespace xlb::kube
