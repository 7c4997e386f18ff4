// List + watch of a cluster's resources (client-go's reflector, one per resource), driving a
// ResourceEvents per resource:
//
//   list (limit=500 pages, continue tokens; a 410 on a token starts over) -> Replace(items)
//   watch from the list's resourceVersion, bookmarks on -> Upsert / Delete, RV from each event
//     clean end (the server's timeoutSeconds)          -> watch again from the last RV
//     ERROR 410 Expired/Gone, HTTP 410                 -> list again (Replace)
//     connection broken mid-watch, or no answer to the watch request
//                                                      -> watch again at once from the last RV
//                                                         (twice in a row without an event:
//                                                         treated as a failure, below)
//     other ERROR event                                -> back off, watch again from the last RV
//   failure (connect, TLS, 401 twice, 403, 5xx, 429, a corrupt stream)
//                                                      -> Unreachable(why) once per outage,
//                                                         back off, then list again (Replace)
//   401: the credential is refreshed (token file re-read, exec plugin re-run), one retry.
//
// All reflectors of a cluster are coroutines on one io_context thread. The ResourceEvents are
// called from that thread, one call at a time, and must outlive the ClusterWatch.
#ifndef XLB_USERSPACE_KUBE_CLIENT_CLUSTER_WATCH_H
#define XLB_USERSPACE_KUBE_CLIENT_CLUSTER_WATCH_H

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // cluster_watch.cc: before Boost 1.74's awaitable.hpp
#include <vector>

#include "userspace/kube/client/backoff.h"
#include "userspace/kube/client/cluster_connection.h"
#include "userspace/kube/resource_events.h"

namespace xlb::kube {

struct WatchOptions {
  // A watch asks the server to end it after timeoutSeconds = watch_timeout, stretched by up to
  // watch_timeout_jitter of itself (so that a cluster's agents do not all come back in the same
  // second); the client then watches again from where it was.
  std::chrono::seconds watch_timeout{300};
  double watch_timeout_jitter = 0.1;
  int list_page_size = 500;
  BackoffPolicy backoff;
  // Connect + TLS + response header, and each list page.
  std::chrono::milliseconds request_timeout{30000};
  // A watch that sends nothing (not even a bookmark) for timeoutSeconds + this is dead.
  std::chrono::milliseconds watch_idle_grace{30000};
  std::string user_agent = "xlb-agent/0.1";
  // 0: random. Fixed in tests that want the same jitter every run.
  uint64_t seed = 0;
};

// Monotonic counts per resource, for metrics; readable from any thread.
struct WatchCounters {
  uint64_t lists = 0;         // complete lists (each ends in Replace)
  uint64_t list_pages = 0;    // pages received
  uint64_t watches = 0;       // watch requests started
  uint64_t relists = 0;       // lists because of 410 Gone (watch or continue token)
  uint64_t events = 0;        // watch events received (bookmarks and errors included)
  uint64_t errors = 0;        // failures (each one backed off)
  uint64_t reconnects = 0;    // watches resumed after a broken connection
  uint64_t unauthorized = 0;  // 401 answers
  uint64_t unreachable = 0;   // Unreachable() calls (outages)

  WatchCounters& operator+=(const WatchCounters& o);
};

class ClusterWatch {
 public:
  explicit ClusterWatch(ClusterConnection connection, WatchOptions options = {});
  ~ClusterWatch();  // Stop()s
  ClusterWatch(const ClusterWatch&) = delete;
  ClusterWatch& operator=(const ClusterWatch&) = delete;

  // Before Start(): list and watch `resource`, reporting to `events`.
  void Add(ResourcePath resource, ResourceEvents& events);

  void Start();
  // Stops every list and watch at once (blocked reads included) and joins the thread; no
  // ResourceEvents call happens after it returns. Final: a stopped ClusterWatch does not start
  // again. Not from a ResourceEvents callback (that runs on the thread it joins). A running exec
  // credential plugin is waited for (it is killed after its timeout, 30 s).
  void Stop();

  WatchCounters Counters(const ResourcePath& resource) const;
  WatchCounters TotalCounters() const;
  // The resourceVersion the resource's watch would resume from ("" before the first list).
  std::string ResourceVersion(const ResourcePath& resource) const;

  const ClusterConnection& connection() const { return connection_; }

 private:
  class Reflector;
  const Reflector* Find(const ResourcePath& resource) const;

  ClusterConnection connection_;
  WatchOptions options_;
  // Declared before io_context_: the coroutines that reference the reflectors die with the
  // io_context, so it goes first.
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  boost::asio::io_context io_context_{1};
  std::thread thread_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_CLUSTER_WATCH_H
