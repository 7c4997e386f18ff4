#include "userspace/kube/client/watch_stream.h"

#include "util/text.h"

namespace xlb::kube {

std::string WatchEvent::ResourceVersion() const {
  if (!object.is_object()) return "";
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  auto rv = meta->find("resourceVersion");
  if (rv == meta->end() || !rv->is_string()) return "";
  return rv->get<std::string>();
}

KubeResult<WatchEvent> ParseWatchEvent(std::string_view json_text) {
  auto doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return KubeError{"watch event is not valid JSON: " + AbbreviateUtf8(json_text, 200)};
  }
  if (!doc.is_object()) return KubeError{"watch event is not a JSON object"};
  auto type = doc.find("type");
  if (type == doc.end() || !type->is_string()) {
    return KubeError{"watch event has no string field \"type\""};
  }
  auto object = doc.find("object");
  if (object == doc.end() || !object->is_object()) {
    return KubeError{"watch event " + type->get<std::string>() + " has no object \"object\""};
  }
  WatchEvent event;
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "ADDED") {
    event.type = WatchEvent::Type::kAdded;
  } else if (t == "MODIFIED") {
    event.type = WatchEvent::Type::kModified;
  } else if (t == "DELETED") {
    event.type = WatchEvent::Type::kDeleted;
  } else if (t == "BOOKMARK") {
    event.type = WatchEvent::Type::kBookmark;
  } else if (t == "ERROR") {
    event.type = WatchEvent::Type::kError;
  } else {
    return KubeError{"watch event has unknown type \"" + t + "\""};
  }
  event.object = std::move(*object);
  return event;
}

KubeResult<bool> WatchStreamParser::Feed(std::string_view bytes, std::vector<WatchEvent>& out) {
  size_t start = 0;  // first byte of `bytes` not yet copied into pending_
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        start = i + 1;
        continue;
      }
      if (c != '{') {
        return KubeError{std::string("watch stream: expected '{' between events, got '") + c + "'"};
      }
      start = i;
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      if (++depth_ > kMaxDepth) {
        return KubeError{"watch stream: an event is nested deeper than " +
                         std::to_string(kMaxDepth) + " levels"};
      }
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        pending_.append(bytes.substr(start, i + 1 - start));
        start = i + 1;
        auto done = Complete(out);
        if (!done) return done;
      }
    }
  }
  if (depth_ > 0) {
    pending_.append(bytes.substr(start));
    if (pending_.size() > max_event_bytes_) {
      return KubeError{"watch stream: an event is larger than " + std::to_string(max_event_bytes_) +
                       " bytes"};
    }
  }
  return true;
}

KubeResult<bool> WatchStreamParser::Complete(std::vector<WatchEvent>& out) {
  auto event = ParseWatchEvent(pending_);
  pending_.clear();
  if (!event) return event.error();
  out.push_back(std::move(event).value());
  return true;
}

}  // namespace xlb::kube
