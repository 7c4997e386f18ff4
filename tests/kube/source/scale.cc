// kube_source_scale: the Kubernetes source at 100,000 endpoints over 5 clusters (the local one
// and 4 direct ones; 2,000 services, one slice of 10 endpoints per service and cluster, 100
// nodes per cluster), fed through ResourceEvents as the watch client would, drained into a
// Model. Prints peak RSS (VmHWM), the time of the initial lists and of a relist, and the
// event-to-model latency of single EndpointSlice updates from a client thread. Exits 1 when
// an endpoint is missing or the peak RSS reaches 500 MB. The times are printed, not checked:
// on a loaded machine they measure the load (make bench-kube is where latency is judged).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/kube/source/kube_fixtures.h"
#include "userspace/kube/source/kube_source.h"

namespace xlb::kube {
namespace {

using namespace std::chrono_literals;
using namespace xlb::kube::testing;  // NOLINT: the fixtures
using Clock = std::chrono::steady_clock;

constexpr int kClusters = 5;
constexpr int kServices = 2000;
constexpr int kEndpointsPerSlice = 10;
constexpr int kNodesPerCluster = 100;

// "VmHWM:   123456 kB" -> MB.
double StatusMb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      return std::stod(line.substr(line.find_first_of("0123456789"))) / 1024.0;
    }
  }
  return -1;
}

std::string ClusterName(int c) {
  return "cluster-" + std::string(1, static_cast<char>('a' + c));
}
std::string ServiceName(int s) {
  return "svc-" + std::to_string(s);
}
// Cloud-style node names: long enough to live on the heap, as real ones do.
std::string NodeName(int c, int n) {
  return "ip-198-18-" + std::to_string(c) + "-" + std::to_string(n) + ".eu-west-1.compute.internal";
}

// 198.18.0.0/15 holds all 100,000 endpoint addresses.
std::string EndpointAddress(int c, int s, int k) {
  const uint32_t v = (198u << 24 | 18u << 16) +
                     static_cast<uint32_t>((c * kServices + s) * kEndpointsPerSlice + k + 1);
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}

json Slice(int c, int s, bool ready = true) {
  json endpoints = json::array();
  for (int k = 0; k < kEndpointsPerSlice; ++k) {
    endpoints.push_back(EndpointObject(EndpointAddress(c, s, k),
                                       NodeName(c, (s + k) % kNodesPerCluster),
                                       k == 0 && !ready ? ReadyConditions(false) : json(nullptr)));
  }
  return SliceObject("default", ServiceName(s) + "-" + ClusterName(c), ServiceName(s),
                     std::move(endpoints));
}

int Run() {
  KubeSourcesConfig config;
  config.local.name = ClusterName(0);
  config.local.in_cluster = true;
  for (int c = 1; c < kClusters; ++c) {
    ClusterConfig remote;
    remote.name = ClusterName(c);
    remote.kubeconfig = "/k/" + remote.name;
    config.remotes.push_back(remote);
  }
  KubeSource source(config);
  Model model;

  const Clock::time_point list_start = Clock::now();
  for (int c = 0; c < kClusters; ++c) {
    const std::string cluster = ClusterName(c);
    std::vector<json> services;
    for (int s = 0; s < kServices; ++s) {
      char ip[64];
      std::snprintf(ip, sizeof ip, "2001:db8:%x::%x", c + 1, s + 1);
      services.push_back(ServiceObject("default", ServiceName(s), ip));
    }
    source.EventsFor(cluster, KubeResource::kServices)->Replace(std::move(services));
    std::vector<json> nodes;
    for (int n = 0; n < kNodesPerCluster; ++n) {
      nodes.push_back(NodeObject(NodeName(c, n), EndpointAddress(c, 0, 0)));
    }
    source.EventsFor(cluster, KubeResource::kNodes)->Replace(std::move(nodes));
    std::vector<json> slices;
    for (int s = 0; s < kServices; ++s) {
      slices.push_back(Slice(c, s));
    }
    source.EventsFor(cluster, KubeResource::kEndpointSlices)->Replace(std::move(slices));
  }
  const Clock::time_point listed = Clock::now();
  const DrainResult first = source.Drain(model);
  const Clock::time_point drained = Clock::now();
  size_t endpoints = 0;
  for (const auto& [name, service] : model.services()) {
    endpoints += model.EndpointsOf(name).size();
  }
  std::printf("kube source scale: %d clusters, %zu services, %zu endpoints in the model\n",
              kClusters, model.services().size(), endpoints);
  std::printf(
      "  initial lists (parse + cache): %.0f ms; first Drain into the Model: %.0f ms "
      "(%zu services written)\n",
      std::chrono::duration<double, std::milli>(listed - list_start).count(),
      std::chrono::duration<double, std::milli>(drained - listed).count(), first.services.size());
  if (endpoints != static_cast<size_t>(kClusters * kServices * kEndpointsPerSlice)) {
    std::printf("FAIL: expected %d endpoints\n", kClusters * kServices * kEndpointsPerSlice);
    return 1;
  }

  // A relist of one cluster in which one slice changed: the diff touches one service.
  {
    std::vector<json> slices;
    for (int s = 0; s < kServices; ++s) {
      slices.push_back(Slice(1, s, s != 7));
    }
    const Clock::time_point t0 = Clock::now();
    source.EventsFor(ClusterName(1), KubeResource::kEndpointSlices)->Replace(std::move(slices));
    const DrainResult r = source.Drain(model);
    std::printf(
        "  relist of cluster-b (20,000 endpoints, 1 slice changed): %.0f ms, %zu service "
        "written\n",
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), r.services.size());
  }

  // Event to model: one EndpointSlice update at a time from a client thread; the agent's
  // thread waits in WaitForChange and drains.
  constexpr int kEvents = 1000;
  std::vector<double> latency_us;
  latency_us.reserve(kEvents);
  std::atomic<int> sent{0};
  std::atomic<int> applied{0};
  std::atomic<int64_t> sent_at{0};
  std::thread client([&] {
    for (int i = 0; i < kEvents; ++i) {
      while (applied.load() < i) {
        std::this_thread::sleep_for(50us);  // not yield(): a spinning client steals the core
      }
      std::this_thread::sleep_for(200us);
      json slice = Slice(2, i, /*ready=*/false);  // a change: every service once
      sent_at = Clock::now().time_since_epoch().count();
      source.EventsFor(ClusterName(2), KubeResource::kEndpointSlices)->Upsert(slice);
      sent = i + 1;
    }
  });
  for (int i = 0; i < kEvents;) {
    if (!source.WaitForChange(1s)) {
      continue;
    }
    const DrainResult r = source.Drain(model);
    if (r.services.empty()) {
      continue;
    }
    const int64_t now = Clock::now().time_since_epoch().count();
    latency_us.push_back(static_cast<double>(now - sent_at.load()) / 1000.0);
    ++i;
    applied = i;
  }
  client.join();
  std::sort(latency_us.begin(), latency_us.end());
  const double p50 = latency_us[latency_us.size() / 2];
  const double p99 = latency_us[latency_us.size() * 99 / 100];
  std::printf(
      "  event to model (Upsert of a 10-endpoint slice -> Drain done), %d events: "
      "p50 %.0f us, p99 %.0f us, max %.0f us\n",
      kEvents, p50, p99, latency_us.back());

  const double hwm = StatusMb("VmHWM:");
  const double rss = StatusMb("VmRSS:");
  std::printf(
      "  peak RSS (VmHWM) %.0f MB, RSS now %.0f MB (caches + Model + the JSON of the "
      "lists)\n",
      hwm, rss);
  bool ok = true;
  if (hwm >= 500) {
    std::printf("FAIL: peak RSS %.0f MB >= 500 MB\n", hwm);
    ok = false;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace xlb::kube

int main() {
  return xlb::kube::Run();
}
