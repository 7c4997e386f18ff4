// libFuzzer target for what an API server sends: the watch-event stream, fed in chunks the
// first input byte chooses, and every event's object through the Kubernetes object mappings
// (Service, EndpointSlice, ServiceImport, Node, ClusterProperty), and an ERROR's Status
// formatted as the client formats it. The mapping is checked to be a function of the object:
// mapping it twice gives the same problems.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "userspace/kube/client/watch_stream.h"
#include "userspace/kube/source/kube_objects.h"

namespace {

template <typename Map>
void MapTwice(Map map, const xlb::kube::ObjectSource& from, const nlohmann::json& object) {
  const auto first = map(from, object);
  const auto second = map(from, object);
  if (first.value.has_value() != second.value.has_value() ||
      first.problems.size() != second.problems.size()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const size_t chunk = 1 + data[0] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  xlb::kube::WatchStreamParser parser;
  std::vector<xlb::kube::WatchEvent> events;
  for (size_t at = 0; at < stream.size(); at += chunk) {
    if (!parser.Feed(stream.substr(at, chunk), events)) {
      break;
    }
  }
  const xlb::kube::ObjectSource from{"cluster-a", ""};
  for (const xlb::kube::WatchEvent& e : events) {
    (void)e.ResourceVersion();
    if (e.type == xlb::kube::WatchEvent::Type::kError) {
      (void)e.object.dump();  // as the client formats an ERROR's Status for its message
    }
    (void)xlb::kube::ObjectName(e.object);
    MapTwice(xlb::kube::MapService, from, e.object);
    MapTwice(xlb::kube::MapEndpointSlice, from, e.object);
    MapTwice(xlb::kube::MapServiceImport, from, e.object);
    MapTwice(xlb::kube::MapNode, from, e.object);
    MapTwice(xlb::kube::MapClusterProperty, from, e.object);
  }
  return 0;
}
