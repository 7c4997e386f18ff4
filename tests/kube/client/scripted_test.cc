// The client against a scripted server: what it sends, and what it does with answers the test
// API server does not give on cue (a continue token expiring between pages, an ERROR event
// that is not 410, a corrupt stream).
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "tests/kube/client/recording_events.h"
#include "tests/kube/client/scripted_server.h"
#include "userspace/kube/client/cluster_watch.h"

namespace xlb::kube {
namespace {

using std::chrono::milliseconds;
using xlb::testing::ScriptedServer;

const ResourcePath kServices{"/api/v1/services", "Service"};

std::string Item(const std::string& name, const std::string& rv) {
  return R"({"metadata":{"name":")" + name + R"(","namespace":"ns","resourceVersion":")" + rv +
         R"("}})";
}

std::string Page(const std::vector<std::string>& items, const std::string& rv,
                 const std::string& continue_token) {
  std::string body =
      R"({"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":")" + rv + R"(")";
  if (!continue_token.empty()) body += R"(,"continue":")" + continue_token + R"(")";
  body += R"(},"items":[)";
  for (size_t i = 0; i < items.size(); ++i) body += (i ? "," : "") + items[i];
  return body + "]}";
}

std::string Event(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}\n";
}

ClusterConnection To(const ScriptedServer& server) {
  ClusterConnection c;
  c.tls = false;
  c.host = "127.0.0.1";
  c.port = server.port();
  c.credentials = std::make_shared<StaticCredential>(Credential{"scripted-token", "", ""});
  return c;
}

WatchOptions Fast() {
  WatchOptions o;
  o.backoff.initial = milliseconds(20);
  o.backoff.max = milliseconds(100);
  o.request_timeout = milliseconds(5000);
  o.seed = 7;
  return o;
}

bool IsList(const ScriptedServer::Request& r) {
  return std::string(r.target()).find("watch=1") == std::string::npos;
}

// A quiet watch that stays open.
ScriptedServer::Reply QuietWatch() {
  return {ScriptedServer::ChunkedHead(), true};
}

TEST(Scripted, RequestsCarryHeadersPagingAndWatchParameters) {
  ScriptedServer server([](const ScriptedServer::Request& r, int) -> ScriptedServer::Reply {
    if (!IsList(r)) return QuietWatch();
    return {ScriptedServer::JsonResponse(200, Page({Item("a", "5")}, "77", "")), false};
  });
  RecordingEvents events;
  WatchOptions options = Fast();
  options.watch_timeout = std::chrono::seconds(300);
  options.watch_timeout_jitter = 0.1;
  ClusterWatch watch(To(server), options);
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(Eventually([&] { return server.requests().size() >= 2; }));
  const auto requests = server.requests();
  const auto& list = requests[0];
  EXPECT_EQ(list.target(), "/api/v1/services?limit=500");
  EXPECT_EQ(list[boost::beast::http::field::authorization], "Bearer scripted-token");
  EXPECT_EQ(list[boost::beast::http::field::accept], "application/json");
  EXPECT_EQ(std::string(list[boost::beast::http::field::user_agent]).rfind("xlb-agent/", 0), 0u);
  EXPECT_EQ(list[boost::beast::http::field::host], "127.0.0.1:" + std::to_string(server.port()));

  const std::string w(requests[1].target());
  EXPECT_EQ(w.rfind("/api/v1/services?watch=1&resourceVersion=77&allowWatchBookmarks=true"
                    "&timeoutSeconds=",
                    0),
            0u)
      << w;
  const int timeout = std::stoi(w.substr(w.rfind('=') + 1));
  EXPECT_GE(timeout, 300);
  EXPECT_LE(timeout, 330);
  EXPECT_EQ(events.replaces(), 1);
}

// The snapshot behind a continue token is compacted between two pages: the list starts again
// from the first page, and the first attempt's page is not in the result.
TEST(Scripted, ExpiredContinueTokenRestartsTheList) {
  ScriptedServer server([](const ScriptedServer::Request& r, int n) -> ScriptedServer::Reply {
    const std::string target(r.target());
    switch (n) {
      case 0:
        return {ScriptedServer::JsonResponse(200, Page({Item("old-a", "1")}, "10", "tok1")), false};
      case 1:
        EXPECT_NE(target.find("continue=tok1"), std::string::npos) << target;
        return {ScriptedServer::JsonResponse(
                    410, R"({"kind":"Status","code":410,"reason":"Expired","message":"too old"})"),
                false};
      case 2:
        EXPECT_EQ(target.find("continue="), std::string::npos) << target;
        return {ScriptedServer::JsonResponse(200, Page({Item("a", "20")}, "30", "tok2/+=")), false};
      case 3:
        EXPECT_NE(target.find("continue=tok2%2F%2B%3D"), std::string::npos) << target;
        return {ScriptedServer::JsonResponse(200, Page({Item("b", "25")}, "30", "")), false};
      default:
        return QuietWatch();
    }
  });
  RecordingEvents events;
  ClusterWatch watch(To(server), Fast());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; })) << events.Log();
  EXPECT_TRUE(events.WaitFor([](const auto& r) {
    return HasExactly(r, 2) && r.state().count("ns/a") && r.state().count("ns/b");
  }));
  const auto c = watch.Counters(kServices);
  EXPECT_EQ(c.lists, 1u);
  EXPECT_EQ(c.relists, 1u);
  EXPECT_EQ(c.list_pages, 3u);
  EXPECT_EQ(watch.ResourceVersion(kServices), "30");
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// An ERROR event that is not 410 (say a 500 from the watch cache): back off and watch again
// from the last resourceVersion, without a relist or an outage.
TEST(Scripted, OtherErrorEventResumesFromTheLastResourceVersion) {
  ScriptedServer server([](const ScriptedServer::Request& r, int n) -> ScriptedServer::Reply {
    if (IsList(r)) return {ScriptedServer::JsonResponse(200, Page({}, "100", "")), false};
    if (n == 1) {
      // Events split over chunks the way a proxy might cut them.
      const std::string events =
          Event("ADDED", Item("x", "101")) +
          Event("ERROR",
                R"({"kind":"Status","code":500,"reason":"InternalError","message":"boom"})");
      return {ScriptedServer::ChunkedHead() + ScriptedServer::Chunk(events.substr(0, 7)) +
                  ScriptedServer::Chunk(events.substr(7, 50)) +
                  ScriptedServer::Chunk(events.substr(57)) + ScriptedServer::kLastChunk,
              false};
    }
    return QuietWatch();
  });
  RecordingEvents events;
  ClusterWatch watch(To(server), Fast());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(Eventually([&] { return server.requests().size() >= 3; }));
  const auto requests = server.requests();
  EXPECT_NE(std::string(requests[2].target()).find("watch=1&resourceVersion=101&"),
            std::string::npos)
      << requests[2].target();
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return HasExactly(r, 1); }));
  const auto c = watch.Counters(kServices);
  EXPECT_EQ(c.lists, 1u);
  EXPECT_EQ(c.errors, 1u);
  EXPECT_EQ(events.replaces(), 1);
  EXPECT_TRUE(events.UnreachableCopy().empty()) << events.Log();
}

// Serves a list, then a watch whose first answer is `watch_body` in one chunk (the connection
// kept open), then quiet watches; returns why the cluster was reported unreachable once the
// client has listed again.
std::vector<std::string> OutageAfterWatchBody(const std::string& watch_body) {
  ScriptedServer server([&](const ScriptedServer::Request& r, int n) -> ScriptedServer::Reply {
    if (IsList(r)) {
      return {
          ScriptedServer::JsonResponse(200, Page({Item("a", "5")}, std::to_string(100 + n), "")),
          false};
    }
    if (n == 1) {
      return {ScriptedServer::ChunkedHead() + ScriptedServer::Chunk(watch_body), true};
    }
    return QuietWatch();
  });
  RecordingEvents events;
  ClusterWatch watch(To(server), Fast());
  watch.Add(kServices, events);
  watch.Start();
  EXPECT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 2; })) << events.Log();
  return events.UnreachableCopy();
}

// A stream that is not JSON is an outage: reported, then a fresh list.
TEST(Scripted, CorruptStreamIsAnOutageAndRelists) {
  const auto why = OutageAfterWatchBody("<html>proxy error</html>");
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("expected '{'"), std::string::npos) << why[0];
}

// An ERROR event nested 100,000 deep (200 KB) once overflowed the stack where the client
// formats the Status for its message; the stream refuses it as too deep: an outage, relisted.
TEST(Scripted, DeeplyNestedErrorEventIsAnOutageNotACrash) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto why = OutageAfterWatchBody(
      Event("ERROR", R"({"kind":"Status","code":500,"message":"x","details":)" + deep + "}"));
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("nested deeper than"), std::string::npos) << why[0];
}

// Watch events in the body of a plain (non-chunked) response that ends: a clean end, resumed.
TEST(Scripted, ContentLengthWatchEndsCleanly) {
  ScriptedServer server([](const ScriptedServer::Request& r, int n) -> ScriptedServer::Reply {
    if (IsList(r)) return {ScriptedServer::JsonResponse(200, Page({}, "100", "")), false};
    if (n == 1) {
      return {ScriptedServer::JsonResponse(
                  200, Event("ADDED", Item("y", "150")) + Event("BOOKMARK", Item("", "160"))),
              false};
    }
    return QuietWatch();
  });
  RecordingEvents events;
  ClusterWatch watch(To(server), Fast());
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(Eventually([&] { return server.requests().size() >= 3; }));
  EXPECT_NE(std::string(server.requests()[2].target()).find("resourceVersion=160&"),
            std::string::npos);
  EXPECT_EQ(watch.Counters(kServices).lists, 1u);
  EXPECT_EQ(events.upserts(), 1);
}

// 429 Too Many Requests with Retry-After: the next attempt waits that long, not the 20 ms the
// back-off alone would wait.
TEST(Scripted, RetryAfterIsHonoured) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> times;
  ScriptedServer server([&](const ScriptedServer::Request& r, int n) -> ScriptedServer::Reply {
    {
      std::lock_guard lock(mu);
      times.push_back(std::chrono::steady_clock::now());
    }
    if (n == 0) {
      return {
          "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 2\r\n"
          "Connection: close\r\n\r\n{}",
          false};
    }
    if (IsList(r)) return {ScriptedServer::JsonResponse(200, Page({}, "100", "")), false};
    return QuietWatch();
  });
  RecordingEvents events;
  WatchOptions options = Fast();
  options.backoff.max = std::chrono::seconds(5);
  ClusterWatch watch(To(server), options);
  watch.Add(kServices, events);
  watch.Start();
  ASSERT_TRUE(events.WaitFor([](const auto& r) { return r.replaces() == 1; })) << events.Log();
  std::lock_guard lock(mu);
  ASSERT_GE(times.size(), 2u);
  EXPECT_GE(times[1] - times[0], milliseconds(950));
  const auto why = events.UnreachableCopy();
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("HTTP 429"), std::string::npos) << why[0];
}

}  // namespace
}  // namespace xlb::kube
