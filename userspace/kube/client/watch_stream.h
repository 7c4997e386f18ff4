// The body of a watch response: one JSON object per event ({"type": "ADDED", "object": {...}}),
// each followed by a newline, arriving in chunks that do not respect event boundaries (an event
// may be split over several chunks, a chunk may carry several events). WatchStreamParser is fed
// the bytes as they come and hands back whole events.
//
// It finds the end of an object by counting braces outside strings instead of waiting for the
// newline, so a server that leaves the newline out (the API server writes one; some proxies
// re-frame) still works, and a partial event costs no re-parse: only complete objects go to the
// JSON parser.
#ifndef XLB_USERSPACE_KUBE_CLIENT_WATCH_STREAM_H
#define XLB_USERSPACE_KUBE_CLIENT_WATCH_STREAM_H

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/kube/client/kube_error.h"

namespace xlb::kube {

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  // The object (kAdded..kBookmark) or, for kError, the Status ({"code": 410, "reason": ...}).
  nlohmann::json object;

  // object.metadata.resourceVersion, "" when absent (an ERROR's Status has none).
  std::string ResourceVersion() const;
};

class WatchStreamParser {
 public:
  // An event larger than this is an error rather than a reason to grow without bound.
  static constexpr size_t kDefaultMaxEventBytes = 64u << 20;
  // Objects and arrays nested deeper than this are an error: whatever walks an event
  // recursively (dump, the object mappings) then has a bounded stack. Kubernetes objects nest
  // a few dozen levels at most (managedFields); the API server itself refuses 10,000.
  static constexpr int kMaxDepth = 512;

  explicit WatchStreamParser(size_t max_event_bytes = kDefaultMaxEventBytes)
      : max_event_bytes_(max_event_bytes) {}

  // Consumes `bytes` and appends every event completed by them to `out`. On an error (not
  // JSON, not an event, an unknown type, too large) the stream cannot be trusted any further:
  // the error is returned, events completed before it stay in `out`, and the parser must not be
  // fed again.
  KubeResult<bool> Feed(std::string_view bytes, std::vector<WatchEvent>& out);

  // Bytes of an event begun but not finished (a clean end of stream leaves none).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  KubeResult<bool> Complete(std::vector<WatchEvent>& out);

  size_t max_event_bytes_;
  std::string pending_;  // the current object, from its '{'
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

// Parses one complete event object (exposed for tests and for the list path's error bodies).
KubeResult<WatchEvent> ParseWatchEvent(std::string_view json_text);

}  // namespace xlb::kube

#endif  // XLB_USERSPACE_KUBE_CLIENT_WATCH_STREAM_H
