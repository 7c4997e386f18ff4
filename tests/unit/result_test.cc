// util/result.h: the one Result template, its errno Error, and the propagation macros.
#include "util/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "userspace/kube/client/kube_error.h"
#include "userspace/model/config_error.h"

namespace {

using xlb::Error;
using xlb::Result;

// The three names are one template: what the tests below show for Result holds for each.
static_assert(std::is_same_v<xlb::ConfigResult<int>, Result<int, xlb::ConfigErrors>>);
static_assert(std::is_same_v<xlb::kube::KubeResult<int>, Result<int, xlb::kube::KubeError>>);
static_assert(std::is_same_v<Result<int>, Result<int, Error>>);

Result<int> Half(int n) {
  if (n % 2 != 0) {
    return Error{EINVAL, "Half(" + std::to_string(n) + ")"};
  }
  return n / 2;
}

TEST(Result, HoldsAValue) {
  Result<int> r = Half(8);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 4);
  EXPECT_EQ(*r, 4);
  *r = 5;
  EXPECT_EQ(r.value(), 5);

  Result<std::string> s = std::string("text");
  EXPECT_EQ(s->size(), 4u);
}

TEST(Result, HoldsAnError) {
  Result<int> r = Half(3);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_EQ(r.error().what, "Half(3)");
  Error taken = std::move(r).take_error();
  EXPECT_EQ(taken.what, "Half(3)");
}

TEST(Result, MovesAValueOut) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

TEST(Result, VoidIsOkOrAnError) {
  Result<void> fine;
  EXPECT_TRUE(fine.ok());
  Result<void> failed = Error{EIO, "write"};
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().err, EIO);
}

// An error type of its own, as configuration errors are: a list, every problem kept.
struct Problems {
  std::vector<std::string> list;
};

Result<int, Problems> Count(const std::vector<std::string>& words) {
  Problems p;
  for (const std::string& w : words) {
    if (w.empty()) {
      p.list.push_back("empty word");
    }
  }
  if (!p.list.empty()) {
    return p;
  }
  return static_cast<int>(words.size());
}

TEST(Result, TakesAnyErrorType) {
  auto good = Count({"a", "b"});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 2);
  auto bad = Count({"", "a", ""});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().list.size(), 2u);

  Result<void, Problems> none;
  EXPECT_TRUE(none.ok());
  Result<void, Problems> some = Problems{{"x"}};
  ASSERT_FALSE(some.ok());
  EXPECT_EQ(std::move(some).take_error().list, std::vector<std::string>{"x"});
}

TEST(Result, ConfigAndKubeErrorsUseTheSameAccessors) {
  xlb::ConfigResult<int> config =
      xlb::ConfigErrors{xlb::ConfigError{"a.yaml", 2, "spec", "bad", 3}};
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(xlb::ToString(config.error()), "a.yaml: document 2: spec: bad (line 3)");
  xlb::kube::KubeResult<int> kube = xlb::kube::KubeError{"GET /api", 403};
  ASSERT_FALSE(kube.ok());
  EXPECT_EQ(kube.error().Within("list").message, "list: GET /api");
  EXPECT_EQ(std::move(kube).take_error().http_status, 403);
}

TEST(Error, FromLibbpfReturnsAndErrno) {
  EXPECT_EQ(Error::FromRet(-ENOENT, "bpf_map_lookup_elem").err, ENOENT);
  EXPECT_TRUE(Error::FromRet(-ENOENT, "x").NotFound());
  // A positive or zero "failure" is not an errno: it is reported as EINVAL, never as success.
  EXPECT_EQ(Error::FromRet(3, "x").err, EINVAL);
  EXPECT_EQ(Error::FromErrno(EPERM, "bpf_obj_get").err, EPERM);
  EXPECT_EQ(Error::FromErrno(0, "bpf_obj_get").err, EINVAL);

  EXPECT_EQ(Error::FromRet(-ENOENT, "lookup").ToString(),
            "lookup: No such file or directory (errno 2)");
  EXPECT_EQ((Error{524, "attach"}.ToString()),
            "attach: operation not supported by this kernel (errno 524)");
  EXPECT_EQ(Error::FromRet(-EIO, "write").Within("service 7").ToString(),
            "service 7: write: Input/output error (errno 5)");

  EXPECT_TRUE(xlb::CheckRet(0, "x").ok());
  const Result<void> failed = xlb::CheckRet(-EBUSY, "bpf_link_create");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().err, EBUSY);
  EXPECT_EQ(failed.error().what, "bpf_link_create");
}

// XLB_TRY: the error goes up unchanged; on success the function goes on; the expression is
// evaluated once.
Result<void> Store(std::map<int, int>& m, int key, int value) {
  if (key < 0) {
    return Error{EINVAL, "key " + std::to_string(key)};
  }
  m[key] = value;
  return {};
}

Result<int> StoreAll(std::map<int, int>& m, const std::vector<int>& keys, int& calls) {
  for (const int k : keys) {
    XLB_TRY((++calls, Store(m, k, k * 10)));
  }
  return static_cast<int>(m.size());
}

TEST(ResultMacros, TryPropagatesTheFirstError) {
  std::map<int, int> m;
  int calls = 0;
  auto all = StoreAll(m, {1, 2, 3}, calls);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 3);
  EXPECT_EQ(calls, 3);

  m.clear();
  calls = 0;
  auto stopped = StoreAll(m, {1, -2, 3}, calls);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.error().what, "key -2");
  EXPECT_EQ(calls, 2);  // stopped at the failure, each call made once
  EXPECT_EQ(m, (std::map<int, int>{{1, 10}}));
}

// XLB_ASSIGN_OR_RETURN: declares or assigns, twice in one scope, into a function whose value
// type differs from the expression's.
Result<std::string> Quarter(int n) {
  XLB_ASSIGN_OR_RETURN(const int half, Half(n));
  int quarter = -1;
  XLB_ASSIGN_OR_RETURN(quarter, Half(half));
  return std::to_string(quarter);
}

TEST(ResultMacros, AssignOrReturn) {
  auto q = Quarter(20);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, "5");
  auto first = Quarter(7);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().what, "Half(7)");
  auto second = Quarter(6);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().what, "Half(3)");
}

Result<std::unique_ptr<int>> Boxed(int n) {
  if (n < 0) {
    return Error{ERANGE, "negative"};
  }
  return std::make_unique<int>(n);
}

// A move-only value moves out; a comma inside template arguments needs no parentheses; a
// const reference binds to the hidden result, which lives to the end of the scope.
Result<int, Problems> SumOfFirsts(const std::vector<std::string>& words) {
  XLB_ASSIGN_OR_RETURN(const auto& n, Count(words));
  XLB_ASSIGN_OR_RETURN(auto pair, Result<std::pair<int, int>, Problems>(std::pair<int, int>{n, 1}));
  return pair.first + pair.second;
}

Result<int> Unboxed(int n) {
  XLB_ASSIGN_OR_RETURN(std::unique_ptr<int> box, Boxed(n));
  return *box + 1;
}

TEST(ResultMacros, AssignOrReturnMovesAndBinds) {
  EXPECT_EQ(*Unboxed(4), 5);
  EXPECT_EQ(Unboxed(-1).error().err, ERANGE);
  EXPECT_EQ(*SumOfFirsts({"a", "b", "c"}), 4);
  EXPECT_EQ(SumOfFirsts({""}).error().list, std::vector<std::string>{"empty word"});
}

// The configuration results collect every problem: the macros hand the whole list up.
xlb::ConfigResult<int> ParsedTwice(const xlb::ConfigResult<int>& parsed) {
  XLB_ASSIGN_OR_RETURN(const int v, xlb::ConfigResult<int>(parsed));
  return v * 2;
}

TEST(ResultMacros, CarryEveryConfigError) {
  xlb::ConfigErrors two{{"a.yaml", 1, "x", "bad", 1}, {"a.yaml", 1, "y", "worse", 2}};
  auto r = ParsedTwice(two);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().size(), 2u);
  EXPECT_EQ(*ParsedTwice(21), 42);
}

}  // namespace
