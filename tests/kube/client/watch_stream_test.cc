// The watch stream parser against every way the bytes of a stream can be cut.
#include "userspace/kube/client/watch_stream.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace xlb::kube {
namespace {

// Three events whose strings hold braces, brackets, escaped quotes and backslashes: a parser
// that counts braces inside strings, or misses an escape, cuts them in the wrong place.
std::string SampleStream() {
  return R"({"type":"ADDED","object":{"metadata":{"name":"a{b","resourceVersion":"11"},"data":{"k":"}}]]\"{"}}})"
         "\n"
         R"({"type":"MODIFIED","object":{"metadata":{"name":"c\\","resourceVersion":"12"},"list":[{"x":[1,2,{"y":"\\\""}]}]}})"
         "\n"
         R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"13"}}})"
         "\n"
         R"({"type":"DELETED","object":{"metadata":{"name":"ü ☃","resourceVersion":"14"}}})"
         "\n";
}

void ExpectSample(const std::vector<WatchEvent>& events) {
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kAdded);
  EXPECT_EQ(events[0].object["metadata"]["name"], "a{b");
  EXPECT_EQ(events[0].object["data"]["k"], "}}]]\"{");
  EXPECT_EQ(events[0].ResourceVersion(), "11");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kModified);
  EXPECT_EQ(events[1].object["metadata"]["name"], "c\\");
  EXPECT_EQ(events[1].object["list"][0]["x"][2]["y"], "\\\"");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kBookmark);
  EXPECT_EQ(events[2].ResourceVersion(), "13");
  EXPECT_EQ(events[3].type, WatchEvent::Type::kDeleted);
  EXPECT_EQ(events[3].object["metadata"]["name"], "ü ☃");
}

TEST(WatchStream, WholeStreamInOneChunk) {
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(parser.Feed(SampleStream(), events));
  ExpectSample(events);
  EXPECT_EQ(parser.pending_bytes(), 0u);
}

TEST(WatchStream, ByteByByte) {
  const std::string stream = SampleStream();
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  for (size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(parser.Feed(stream.substr(i, 1), events)) << "at byte " << i;
    // An event appears exactly when its last byte arrives, not before.
    if (stream[i] == '\n') {
      EXPECT_EQ(parser.pending_bytes(), 0u) << "at byte " << i;
    }
  }
  ExpectSample(events);
}

TEST(WatchStream, EverySplitIntoTwoAndThree) {
  const std::string stream = SampleStream();
  for (size_t a = 0; a <= stream.size(); ++a) {
    WatchStreamParser parser;
    std::vector<WatchEvent> events;
    ASSERT_TRUE(parser.Feed(stream.substr(0, a), events));
    ASSERT_TRUE(parser.Feed(stream.substr(a), events));
    ASSERT_NO_FATAL_FAILURE(ExpectSample(events)) << "split at " << a;
  }
  // Three pieces, the middle one at every position and length (a stride keeps it quick).
  for (size_t a = 0; a <= stream.size(); a += 3) {
    for (size_t b = a; b <= stream.size(); b += 5) {
      WatchStreamParser parser;
      std::vector<WatchEvent> events;
      ASSERT_TRUE(parser.Feed(stream.substr(0, a), events));
      ASSERT_TRUE(parser.Feed(stream.substr(a, b - a), events));
      ASSERT_TRUE(parser.Feed(stream.substr(b), events));
      ASSERT_NO_FATAL_FAILURE(ExpectSample(events)) << "split at " << a << ", " << b;
    }
  }
}

TEST(WatchStream, RandomChunksOfAThousandEvents) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) {
    stream += R"({"type":"ADDED","object":{"metadata":{"name":"o)" + std::to_string(i) +
              R"(","resourceVersion":")" + std::to_string(100 + i) +
              R"("},"s":"{[\"]}"}})"
              "\n";
  }
  std::mt19937 rng(7);
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  for (size_t at = 0; at < stream.size();) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 300)(rng);
    ASSERT_TRUE(parser.Feed(stream.substr(at, n), events));
    at += n;
  }
  ASSERT_EQ(events.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(events[i].object["metadata"]["name"], "o" + std::to_string(i));
    EXPECT_EQ(events[i].ResourceVersion(), std::to_string(100 + i));
  }
}

TEST(WatchStream, EventsWithoutNewlinesAndWithCrLf) {
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(parser.Feed(
      R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"1"}}}{"type":"DELETED","object":{}})"
      "\r\n  \t",
      events));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kAdded);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDeleted);
  EXPECT_EQ(events[1].ResourceVersion(), "");
}

TEST(WatchStream, ErrorEventCarriesTheStatus) {
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(parser.Feed(
      R"({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 5 [20]","reason":"Expired","code":410}})"
      "\n",
      events));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kError);
  EXPECT_EQ(events[0].object["code"], 410);
  EXPECT_EQ(events[0].object["reason"], "Expired");
}

TEST(WatchStream, EventsBeforeAnErrorAreKeptAndTheErrorIsNamed) {
  struct Case {
    std::string bad;
    std::string expected_in_message;
  };
  const std::vector<Case> cases = {
      {"garbage\n", "expected '{'"},
      {"]\n", "expected '{'"},
      {R"({"type":"RENAMED","object":{}})"
       "\n",
       "unknown type \"RENAMED\""},
      {R"({"type":"ADDED"})"
       "\n",
       "has no object"},
      {R"({"object":{}})"
       "\n",
       "no string field \"type\""},
      {R"({"type":"ADDED","object":{"a":tru}})"
       "\n",
       "not valid JSON"},
  };
  for (const auto& c : cases) {
    WatchStreamParser parser;
    std::vector<WatchEvent> events;
    auto fed = parser.Feed(R"({"type":"ADDED","object":{"metadata":{"name":"good"}}})"
                           "\n" +
                               c.bad,
                           events);
    ASSERT_FALSE(fed) << c.bad;
    EXPECT_NE(fed.error().message.find(c.expected_in_message), std::string::npos)
        << fed.error().message;
    ASSERT_EQ(events.size(), 1u) << c.bad;
    EXPECT_EQ(events[0].object["metadata"]["name"], "good");
  }
}

TEST(WatchStream, AnEventLargerThanTheLimitIsAnError) {
  WatchStreamParser parser(/*max_event_bytes=*/100);
  std::vector<WatchEvent> events;
  auto fed = parser.Feed(R"({"type":"ADDED","object":{"pad":")" + std::string(200, 'x'), events);
  ASSERT_FALSE(fed);
  EXPECT_NE(fed.error().message.find("larger than 100 bytes"), std::string::npos);
}

// Anything that walks a parsed object recursively (dump, the object mappings) is safe only
// on bounded nesting; a deeper event is an error before it reaches the JSON parser.
TEST(WatchStream, AnEventNestedDeeperThanTheLimitIsAnError) {
  const auto nested = [](int depth) {
    return R"({"type":"ERROR","object":{"details":)" + std::string(depth, '[') +
           std::string(depth, ']') + "}}\n";
  };
  std::vector<WatchEvent> events;
  WatchStreamParser ok;
  // The event object and "object" are two levels of the limit.
  ASSERT_TRUE(ok.Feed(nested(WatchStreamParser::kMaxDepth - 2), events));
  ASSERT_EQ(events.size(), 1u);
  WatchStreamParser deep;
  const auto fed = deep.Feed(nested(100000), events);
  ASSERT_FALSE(fed);
  EXPECT_NE(fed.error().message.find("nested deeper than " +
                                     std::to_string(WatchStreamParser::kMaxDepth)),
            std::string::npos)
      << fed.error().message;
  EXPECT_EQ(events.size(), 1u);
}

TEST(WatchStream, UnfinishedEventIsPending) {
  WatchStreamParser parser;
  std::vector<WatchEvent> events;
  ASSERT_TRUE(parser.Feed(R"({"type":"ADDED","obj)", events));
  EXPECT_TRUE(events.empty());
  EXPECT_GT(parser.pending_bytes(), 0u);
}

}  // namespace
}  // namespace xlb::kube
