#include "userspace/kube/client/cluster_watch.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <utility>

#include "userspace/kube/client/api_transport.h"
#include "userspace/kube/client/watch_stream.h"

namespace xlb::kube {

namespace net = boost::asio;
using net::awaitable;
using net::use_awaitable;

WatchCounters& WatchCounters::operator+=(const WatchCounters& o) {
  lists += o.lists;
  list_pages += o.list_pages;
  watches += o.watches;
  relists += o.relists;
  events += o.events;
  errors += o.errors;
  reconnects += o.reconnects;
  unauthorized += o.unauthorized;
  unreachable += o.unreachable;
  return *this;
}

class ClusterWatch::Reflector {
 public:
  Reflector(const ClusterConnection& connection, const WatchOptions& options, ResourcePath resource,
            ResourceEvents& events, uint64_t seed)
      : connection_(connection),
        options_(options),
        resource_(std::move(resource)),
        events_(events),
        backoff_(options.backoff, seed),
        rng_(seed ^ 0x9e3779b97f4a7c15ull) {}

  const ResourcePath& resource() const { return resource_; }

  awaitable<void> Run();

  WatchCounters Counters() const {
    WatchCounters c;
    c.lists = lists_.load();
    c.list_pages = list_pages_.load();
    c.watches = watches_.load();
    c.relists = relists_.load();
    c.events = events_seen_.load();
    c.errors = errors_.load();
    c.reconnects = reconnects_.load();
    c.unauthorized = unauthorized_.load();
    c.unreachable = unreachable_.load();
    return c;
  }
  std::string resource_version() const {
    std::lock_guard lock(rv_mu_);
    return resource_version_;
  }

 private:
  // How a watch ended.
  enum class WatchEnd { kTimedOut, kGone, kBroken, kErrorEvent, kFailed };
  struct WatchOutcome {
    WatchEnd end;
    KubeError error;
    bool saw_event = false;
  };
  struct Listed {
    std::vector<nlohmann::json> items;
    std::string resource_version;
  };

  awaitable<KubeResult<Listed>> List();
  awaitable<WatchOutcome> Watch();
  // Opens `target` with the current credential; on 401 refreshes it and tries once more.
  awaitable<KubeResult<std::unique_ptr<ApiStream>>> OpenAuthorized(const std::string& target);
  // An HTTP error answer, with the server's Status message.
  // (Coroutine parameters by value, results of co_await into named locals: GCC 12 destroys
  // temporaries twice when a co_await sits inside a braced initializer or a ?: operand.)
  awaitable<KubeError> HttpError(ApiStream& stream, std::string what);
  awaitable<void> Sleep(std::chrono::milliseconds duration);
  // Reports the outage (once), backs off, and makes the next round list.
  awaitable<void> Fail(const KubeError& error);

  void SetResourceVersion(const std::string& rv) {
    if (rv.empty()) return;
    std::lock_guard lock(rv_mu_);
    resource_version_ = rv;
  }

  const ClusterConnection& connection_;
  const WatchOptions& options_;
  ResourcePath resource_;
  ResourceEvents& events_;
  Backoff backoff_;
  std::mt19937_64 rng_;
  bool need_list_ = true;
  bool in_outage_ = false;
  int broken_in_a_row_ = 0;

  mutable std::mutex rv_mu_;
  std::string resource_version_;
  std::atomic<uint64_t> lists_{0}, list_pages_{0}, watches_{0}, relists_{0}, events_seen_{0},
      errors_{0}, reconnects_{0}, unauthorized_{0}, unreachable_{0};
};

awaitable<void> ClusterWatch::Reflector::Sleep(std::chrono::milliseconds duration) {
  net::steady_timer timer(co_await net::this_coro::executor, duration);
  boost::system::error_code ec;
  co_await timer.async_wait(net::redirect_error(use_awaitable, ec));
}

awaitable<void> ClusterWatch::Reflector::Fail(const KubeError& error) {
  ++errors_;
  need_list_ = true;
  if (!in_outage_) {
    in_outage_ = true;
    ++unreachable_;
    events_.Unreachable(error.message);  // names the request: "list /api/v1/nodes: ..."
  }
  auto wait = backoff_.Next();
  // An overloaded server's Retry-After is honoured, within the back-off's ceiling.
  const auto asked = std::chrono::milliseconds(std::chrono::seconds(error.retry_after_seconds));
  wait = std::max(wait, std::min(asked, options_.backoff.max));
  co_await Sleep(wait);
}

awaitable<KubeResult<std::unique_ptr<ApiStream>>> ClusterWatch::Reflector::OpenAuthorized(
    const std::string& target) {
  for (int attempt = 0;; ++attempt) {
    Credential credential;
    if (connection_.credentials) {
      auto current = connection_.credentials->Current();
      if (!current) co_return current.error();
      credential = std::move(*current);
    }
    auto stream = co_await ApiStream::Open(connection_, credential, target, options_.user_agent,
                                           options_.request_timeout);
    if (!stream) co_return stream;
    if ((*stream)->status() != 401) co_return stream;
    ++unauthorized_;
    if (attempt > 0 || !connection_.credentials) {
      std::string what = "GET " + target;
      KubeError error = co_await HttpError(**stream, what);
      error.message += attempt > 0 ? " (also with a refreshed credential)" : "";
      co_return error;
    }
    // The token may have been rotated since we read it: read it again, once.
    connection_.credentials->Invalidate();
  }
}

awaitable<KubeError> ClusterWatch::Reflector::HttpError(ApiStream& stream, std::string what) {
  std::string message;
  auto body = co_await stream.ReadAll(options_.request_timeout, 64 << 10);
  if (body) message = StatusMessage(*body);
  // Delta-seconds; an HTTP date (or anything else) is ignored.
  int retry_after = 0;
  const std::string retry_after_text = stream.header("Retry-After");
  if (retry_after_text.size() < 6) {
    int seconds = 0;
    const char* end = retry_after_text.data() + retry_after_text.size();
    const auto [ptr, ec] = std::from_chars(retry_after_text.data(), end, seconds);
    if (ec == std::errc() && ptr == end && seconds >= 0) retry_after = seconds;
  }
  co_return KubeError{what + ": HTTP " + std::to_string(stream.status()) + " " + stream.reason() +
                          (message.empty() ? "" : ": " + message),
                      stream.status(), retry_after};
}

awaitable<KubeResult<ClusterWatch::Reflector::Listed>> ClusterWatch::Reflector::List() {
  Listed listed;
  std::string continue_token;
  int restarts = 0;
  for (;;) {
    std::string target =
        resource_.path + "?limit=" + std::to_string(std::max(options_.list_page_size, 1));
    if (!continue_token.empty()) target += "&continue=" + QueryEscape(continue_token);
    auto stream = co_await OpenAuthorized(target);
    if (!stream) co_return stream.error().Within("list " + resource_.path);
    if ((*stream)->status() == 410 && !continue_token.empty() && restarts < 3) {
      // The snapshot the pages came from is compacted away: start over from a fresh one.
      std::string what;
      KubeError ignored = co_await HttpError(**stream, what);
      (void)ignored;
      ++relists_;
      ++restarts;
      listed = Listed{};
      continue_token.clear();
      continue;
    }
    if ((*stream)->status() != 200) {
      std::string what = "GET " + target;
      KubeError error = co_await HttpError(**stream, what);
      co_return error;
    }
    auto body = co_await (*stream)->ReadAll(options_.request_timeout, size_t{1} << 30);
    if (!body) co_return body.error().Within("list " + resource_.path);
    auto doc = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) {
      co_return KubeError{"list " + resource_.path + ": the answer is not a JSON object"};
    }
    auto items = doc.find("items");
    if (items == doc.end() || !(items->is_array() || items->is_null())) {
      co_return KubeError{"list " + resource_.path + ": the answer has no \"items\" array"};
    }
    const auto& meta = doc.contains("metadata") && doc["metadata"].is_object()
                           ? doc["metadata"]
                           : nlohmann::json::object();
    ++list_pages_;
    if (items->is_array()) {
      for (auto& item : *items) listed.items.push_back(std::move(item));
    }
    if (meta.contains("resourceVersion") && meta["resourceVersion"].is_string()) {
      listed.resource_version = meta["resourceVersion"].get<std::string>();
    }
    continue_token = meta.contains("continue") && meta["continue"].is_string()
                         ? meta["continue"].get<std::string>()
                         : "";
    if (continue_token.empty()) break;
  }
  if (listed.resource_version.empty()) {
    co_return KubeError{"list " + resource_.path + ": the answer has no metadata.resourceVersion"};
  }
  ++lists_;
  co_return listed;
}

awaitable<ClusterWatch::Reflector::WatchOutcome> ClusterWatch::Reflector::Watch() {
  ++watches_;
  std::uniform_real_distribution<double> stretch(0.0, std::max(options_.watch_timeout_jitter, 0.0));
  const auto timeout_seconds = std::max<int64_t>(
      1, static_cast<int64_t>(static_cast<double>(options_.watch_timeout.count()) *
                              (1.0 + stretch(rng_))));
  const std::string target =
      resource_.path + "?watch=1&resourceVersion=" + QueryEscape(resource_version()) +
      "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_seconds);
  auto stream = co_await OpenAuthorized(target);
  if (!stream) {
    // No answer at all (connect, TLS, a connection cut before the header) is handled like a
    // watch broken midway: one immediate retry, then an outage. An answer (401 twice, 403...)
    // is an outage at once.
    const WatchEnd end = stream.error().http_status == 0 ? WatchEnd::kBroken : WatchEnd::kFailed;
    co_return WatchOutcome{end, stream.error().Within("watch " + resource_.path)};
  }
  if ((*stream)->status() != 200) {
    const WatchEnd end = (*stream)->status() == 410 ? WatchEnd::kGone : WatchEnd::kFailed;
    std::string what = "GET " + target;
    KubeError error = co_await HttpError(**stream, what);
    co_return WatchOutcome{end, std::move(error)};
  }

  const auto idle =
      std::chrono::milliseconds(std::chrono::seconds(timeout_seconds)) + options_.watch_idle_grace;
  WatchStreamParser parser;
  std::vector<WatchEvent> batch;
  bool saw_event = false;
  for (;;) {
    auto piece = co_await (*stream)->ReadSome(idle);
    if (!piece) {
      co_return WatchOutcome{WatchEnd::kBroken, piece.error().Within("watch " + resource_.path),
                             saw_event};
    }
    if (!*piece) {
      if (parser.pending_bytes() > 0) {
        co_return WatchOutcome{WatchEnd::kBroken,
                               KubeError{"watch " + resource_.path + ": ended inside an event"},
                               saw_event};
      }
      co_return WatchOutcome{WatchEnd::kTimedOut, {}, saw_event};
    }
    batch.clear();
    auto fed = parser.Feed(**piece, batch);
    for (auto& event : batch) {
      saw_event = true;
      ++events_seen_;
      SetResourceVersion(event.ResourceVersion());
      switch (event.type) {
        case WatchEvent::Type::kAdded:
        case WatchEvent::Type::kModified:
          events_.Upsert(event.object);
          break;
        case WatchEvent::Type::kDeleted:
          events_.Delete(event.object);
          break;
        case WatchEvent::Type::kBookmark:
          break;
        case WatchEvent::Type::kError: {
          const auto& status = event.object;
          const int code = status.contains("code") && status["code"].is_number_integer()
                               ? status["code"].get<int>()
                               : 0;
          const std::string reason = status.contains("reason") && status["reason"].is_string()
                                         ? status["reason"].get<std::string>()
                                         : "";
          KubeError error{"watch " + resource_.path + ": ERROR event " + std::to_string(code) +
                              " " + reason + ": " + StatusMessage(status.dump()),
                          code};
          co_return WatchOutcome{code == 410 || reason == "Expired" || reason == "Gone"
                                     ? WatchEnd::kGone
                                     : WatchEnd::kErrorEvent,
                                 error, true};
        }
      }
    }
    if (!fed) {
      co_return WatchOutcome{WatchEnd::kFailed, fed.error().Within("watch " + resource_.path),
                             saw_event};
    }
  }
}

awaitable<void> ClusterWatch::Reflector::Run() {
  for (;;) {
    std::optional<KubeError> internal;
    try {
      if (need_list_) {
        auto listed = co_await List();
        if (!listed) {
          co_await Fail(listed.error());
          continue;
        }
        SetResourceVersion(listed->resource_version);
        events_.Replace(std::move(listed->items));
        need_list_ = false;
        in_outage_ = false;
        broken_in_a_row_ = 0;
        backoff_.Reset();
      }
      WatchOutcome outcome = co_await Watch();
      if (outcome.saw_event || outcome.end == WatchEnd::kTimedOut) broken_in_a_row_ = 0;
      switch (outcome.end) {
        case WatchEnd::kTimedOut:
          break;  // the server ended it as asked: watch again from the same place
        case WatchEnd::kGone:
          ++relists_;
          need_list_ = true;
          break;
        case WatchEnd::kBroken:
          // A load balancer's idle cut, an API server restart: resume at once from the last
          // resourceVersion (a restarted server that lost it answers 410, and we relist).
          // Twice in a row without a single event is no blip: back off.
          if (++broken_in_a_row_ >= 2) {
            co_await Fail(outcome.error);
          } else {
            ++reconnects_;
          }
          break;
        case WatchEnd::kErrorEvent:
          ++errors_;
          co_await Sleep(backoff_.Next());
          break;
        case WatchEnd::kFailed:
          co_await Fail(outcome.error);
          break;
      }
    } catch (const std::exception& e) {
      // Nothing below reports a failure by exception (JSON access is checked, numbers are
      // parsed with from_chars); this net is for what still could (allocation, a bug), so that
      // the reflector does not die silently.
      internal = KubeError{resource_.path + ": internal error: " + std::string(e.what())};
    }
    if (internal) co_await Fail(*internal);
  }
}

ClusterWatch::ClusterWatch(ClusterConnection connection, WatchOptions options)
    : connection_(std::move(connection)), options_(std::move(options)) {}

ClusterWatch::~ClusterWatch() {
  Stop();
}

void ClusterWatch::Add(ResourcePath resource, ResourceEvents& events) {
  if (started_) return;  // reflectors are fixed once the thread runs
  uint64_t seed = options_.seed != 0 ? options_.seed + reflectors_.size() : std::random_device{}();
  reflectors_.push_back(
      std::make_unique<Reflector>(connection_, options_, std::move(resource), events, seed));
}

void ClusterWatch::Start() {
  if (started_) return;
  started_ = true;
  for (auto& reflector : reflectors_) {
    net::co_spawn(io_context_, reflector->Run(), [](std::exception_ptr) {});
  }
  thread_ = std::thread([this] { io_context_.run(); });
}

void ClusterWatch::Stop() {
  if (stopped_) return;
  stopped_ = true;
  io_context_.stop();
  if (thread_.joinable()) thread_.join();
}

const ClusterWatch::Reflector* ClusterWatch::Find(const ResourcePath& resource) const {
  for (const auto& r : reflectors_) {
    if (r->resource() == resource) return r.get();
  }
  return nullptr;
}

WatchCounters ClusterWatch::Counters(const ResourcePath& resource) const {
  const Reflector* r = Find(resource);
  return r != nullptr ? r->Counters() : WatchCounters{};
}

WatchCounters ClusterWatch::TotalCounters() const {
  WatchCounters total;
  for (const auto& r : reflectors_) total += r->Counters();
  return total;
}

std::string ClusterWatch::ResourceVersion(const ResourcePath& resource) const {
  const Reflector* r = Find(resource);
  return r != nullptr ? r->resource_version() : "";
}

}  // namespace xlb::kube
