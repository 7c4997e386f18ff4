#include "userspace/agent/health_check.h"

#include <cerrno>
#include <ctime>
#include <set>
#include <utility>

#include "userspace/policy/weights.h"

namespace xlb {
namespace {

// JSON string contents: Kubernetes names need no escaping, but nothing here trusts that.
std::string JsonEscaped(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string Rfc3339(double unix_seconds) {
  const auto t = static_cast<time_t>(unix_seconds);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

}  // namespace

uint32_t LocalReadyEndpoints(const Model& model, const NamespacedName& service) {
  const Cluster* local = model.LocalCluster();
  if (local == nullptr) {
    return 0;
  }
  std::set<IpAddress> seen;
  for (const Endpoint& e : model.EndpointsOf(service)) {
    if (e.cluster != local->name || !e.TakesNewFlows() || e.addresses.empty() ||
        PathOf(e, *local, model.local_node()) != BackendPath::kLocal) {
      continue;
    }
    seen.insert(e.addresses.front());
  }
  return static_cast<uint32_t>(seen.size());
}

HttpResponse ServiceHealthResponse(const NamespacedName& service, uint32_t local_endpoints,
                                   bool proxy_healthy) {
  HttpResponse r;
  r.status = local_endpoints != 0 && proxy_healthy ? 200 : 503;
  r.content_type = "application/json";
  r.headers = {{"X-Content-Type-Options", "nosniff"},
               {"X-Load-Balancing-Endpoint-Weight", std::to_string(local_endpoints)}};
  r.body = "{\n\t\"service\": {\n\t\t\"namespace\": \"" + JsonEscaped(service.ns) +
           "\",\n\t\t\"name\": \"" + JsonEscaped(service.name) +
           "\"\n\t},\n\t\"localEndpoints\": " + std::to_string(local_endpoints) +
           ",\n\t\"serviceProxyHealthy\": " + (proxy_healthy ? "true" : "false") + "\n}";
  return r;
}

HttpResponse NodeHealthResponse(bool healthy, double last_sync_unix, double now_unix) {
  HttpResponse r;
  r.status = healthy ? 200 : 503;
  r.content_type = "application/json";
  r.headers = {{"X-Content-Type-Options", "nosniff"}};
  r.body = std::string("{\"lastUpdated\": \"") +
           (last_sync_unix > 0 ? Rfc3339(last_sync_unix) : std::string()) +
           "\",\"currentTime\": \"" + Rfc3339(now_unix) +
           "\", \"nodeEligible\": " + (healthy ? "true" : "false") + "}";
  return r;
}

struct ServiceHealthServers::Shared {
  std::function<bool()> proxy_healthy;
  std::mutex mu;
  struct Served {
    NamespacedName service;
    uint32_t local_endpoints = 0;
  };
  std::map<uint16_t, Served> by_port;
};

ServiceHealthServers::ServiceHealthServers(std::string host, std::function<bool()> proxy_healthy)
    : host_(std::move(host)), shared_(std::make_shared<Shared>()) {
  shared_->proxy_healthy = std::move(proxy_healthy);
}

ServiceHealthServers::~ServiceHealthServers() {
  servers_.clear();  // the threads stop before the state they read goes
}

std::vector<std::string> ServiceHealthServers::Sync(const Model& model) {
  std::vector<std::string> problems;
  std::map<uint16_t, Shared::Served> wanted;
  for (const auto& [name, service] : model.services()) {
    if (service.health_check_node_port == 0 ||
        service.external_policy != ServiceTrafficPolicy::kLocal) {
      continue;
    }
    const auto [it, fresh] =
        wanted.try_emplace(service.health_check_node_port, Shared::Served{name, 0});
    if (!fresh) {
      problems.push_back(name.ToString() + ": healthCheckNodePort " +
                         std::to_string(service.health_check_node_port) + " is already " +
                         it->second.service.ToString() + "'s");
      continue;
    }
    it->second.local_endpoints = LocalReadyEndpoints(model, name);
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->by_port = wanted;
  }
  for (auto it = servers_.begin(); it != servers_.end();) {
    it = wanted.count(it->first) == 0 ? servers_.erase(it) : std::next(it);
  }
  for (const auto& [port, served] : wanted) {
    if (servers_.count(port) != 0) {
      continue;
    }
    const std::shared_ptr<Shared> shared = shared_;
    auto handler = [shared, port = port](std::string_view) {
      std::lock_guard<std::mutex> lock(shared->mu);
      auto it = shared->by_port.find(port);
      if (it == shared->by_port.end()) {
        return HttpResponse{503, "text/plain; charset=utf-8", "no service\n"};
      }
      return ServiceHealthResponse(it->second.service, it->second.local_endpoints,
                                   shared->proxy_healthy());
    };
    const std::string at = host_.find(':') != std::string::npos
                               ? "[" + host_ + "]:" + std::to_string(port)
                               : host_ + ":" + std::to_string(port);
    auto server = HttpServer::Start(at, handler);
    if (!server.ok() && host_ == "::" && server.error().err == EAFNOSUPPORT) {
      server = HttpServer::Start("0.0.0.0:" + std::to_string(port), handler);
    }
    if (!server.ok()) {
      problems.push_back(served.service.ToString() + ": healthCheckNodePort " +
                         std::to_string(port) + ": " + server.error().ToString());
      continue;
    }
    servers_[port] = std::move(*server);
  }
  return problems;
}

std::vector<uint16_t> ServiceHealthServers::Ports() const {
  std::vector<uint16_t> out;
  for (const auto& [port, server] : servers_) {
    out.push_back(port);
  }
  return out;
}

}  // namespace xlb
