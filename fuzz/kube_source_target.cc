// libFuzzer target for the Kubernetes source's event sequences, with an oracle: the input is a
// sequence of upserts, deletes and drains over a small universe of objects in two directly
// watched clusters (Services, EndpointSlices whose endpoints sit on Nodes that may be missing,
// listed with or without an address, or not running xlb); at every drain the model must have
// the endpoints of a fresh source given only the objects as they are then.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tests/kube/source/kube_fixtures.h"
#include "userspace/kube/source/kube_source.h"

namespace xlb::kube {
namespace {

using nlohmann::json;
using namespace xlb::kube::testing;  // NOLINT: the fixtures

const char* const kClusters[] = {"cluster-a", "cluster-b"};
const KubeResource kKinds[] = {KubeResource::kServices, KubeResource::kEndpointSlices,
                               KubeResource::kNodes};

KubeSourcesConfig TwoClusters() {
  KubeSourcesConfig c;
  c.local.name = "cluster-a";
  c.local.id = 1;
  c.local.in_cluster = true;
  ClusterConfig b;
  b.name = "cluster-b";
  b.kubeconfig = "/k/cluster-b";
  c.remotes.push_back(b);
  return c;
}

// Object `n` (0..7) of `kind` in cluster `c`; the same (kind, n) always has the same name, so
// an upsert may replace an earlier variant.
json Object(KubeResource kind, int c, uint8_t n) {
  const std::string service = (n & 1) ? "api" : "web";
  const std::string node = "node-" + std::to_string(n % 3);
  switch (kind) {
    case KubeResource::kServices:
      return ServiceObject("production", service,
                           "198.18.1" + std::to_string(c) + "0." + std::to_string(10 + (n & 1)));
    case KubeResource::kEndpointSlices: {
      json endpoints = json::array();
      for (int i = 0; i <= (n >> 1) % 3; ++i) {
        endpoints.push_back(EndpointObject(
            "198.18." + std::to_string(c + 2) + "." + std::to_string(1 + i + (n & 6)),
            i == 2 ? "" : "node-" + std::to_string((n + i) % 3)));
      }
      return SliceObject("production", service + "-" + std::to_string(n >> 2), service, endpoints);
    }
    default: {
      // An address or none, and sometimes marked as not running xlb.
      json object = NodeObject(node, (n & 4) ? "" : "198.18.0." + std::to_string(20 + n));
      if (n & 2) {
        object["metadata"]["labels"] = {{"xlb.dev/tunnel", "none"}};
      }
      return object;
    }
  }
}

struct Key {
  int cluster;
  int kind;
  std::string name;
  auto operator<=>(const Key&) const = default;
};

std::string NameOf(const json& object) {
  return object["metadata"].value("name", "");
}

// Every service's endpoints, in a stable order. A service without any is left out: the model
// keeps a removed service's endpoint-less entry, which a fresh source never had.
std::map<NamespacedName, std::vector<Endpoint>> EndpointsOf(const Model& m) {
  std::map<NamespacedName, std::vector<Endpoint>> out;
  for (const auto& [name, service] : m.services()) {
    const auto endpoints = m.EndpointsOf(name);
    if (endpoints.empty()) {
      continue;
    }
    std::vector<Endpoint>& v = out[name];
    v.assign(endpoints.begin(), endpoints.end());
    std::sort(v.begin(), v.end(), [](const Endpoint& a, const Endpoint& b) {
      return std::tie(a.cluster, a.addresses, a.node_name) <
             std::tie(b.cluster, b.addresses, b.node_name);
    });
  }
  return out;
}

// Aborts unless `model` has the endpoints and node addresses a fresh source computes from
// `objects` alone.
void CheckAgainstFresh(const Model& model, const std::map<Key, json>& objects) {
  KubeSource fresh(TwoClusters(), KubeSource::Options{[](const std::string&) {}});
  for (int c = 0; c < 2; ++c) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<json> items;
      for (const auto& [key, object] : objects) {
        if (key.cluster == c && key.kind == kind) {
          items.push_back(object);
        }
      }
      fresh.EventsFor(kClusters[c], kKinds[kind])->Replace(std::move(items));
    }
  }
  Model expected;
  fresh.Drain(expected);
  if (EndpointsOf(model) != EndpointsOf(expected) ||
      model.node_addresses() != expected.node_addresses()) {
    std::abort();  // the drained model depends on when it was drained
  }
}

}  // namespace
}  // namespace xlb::kube

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xlb::kube;
  const KubeSource::Options quiet{[](const std::string&) {}};
  KubeSource incremental(TwoClusters(), quiet);
  std::map<Key, nlohmann::json> objects;
  // Every watch starts listed (empty), as the client does before any event.
  for (int c = 0; c < 2; ++c) {
    for (KubeResource kind : kKinds) {
      incremental.EventsFor(kClusters[c], kind)->Replace({});
    }
  }
  xlb::Model model;
  // Two bytes per step: operation and cluster, object.
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint8_t op = data[i] % 4;
    const int c = (data[i] >> 2) & 1;
    const int kind = (data[i] >> 3) % 3;
    const uint8_t n = data[i + 1] % 8;
    if (op == 3) {
      incremental.Drain(model);
      CheckAgainstFresh(model, objects);
      continue;
    }
    ResourceEvents* events = incremental.EventsFor(kClusters[c], kKinds[kind]);
    const nlohmann::json object = Object(kKinds[kind], c, n);
    const Key key{c, kind, NameOf(object)};
    if (op == 2) {
      if (const auto it = objects.find(key); it != objects.end()) {
        events->Delete(it->second);
        objects.erase(it);
      }
    } else {
      events->Upsert(object);
      objects[key] = object;
    }
  }
  incremental.Drain(model);
  CheckAgainstFresh(model, objects);
  return 0;
}
