#include "userspace/model/model.h"

#include <algorithm>
#include <utility>

namespace xlb {

std::string_view ToString(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kSctp:
      return "SCTP";
  }
  return "?";
}

std::string_view ToString(ServiceTrafficPolicy policy) {
  return policy == ServiceTrafficPolicy::kLocal ? "Local" : "Cluster";
}

std::optional<Protocol> ParseProtocol(std::string_view text) {
  if (text == "TCP") {
    return Protocol::kTcp;
  }
  if (text == "UDP") {
    return Protocol::kUdp;
  }
  if (text == "SCTP") {
    return Protocol::kSctp;
  }
  return std::nullopt;
}

std::vector<IpAddress> Service::Vips() const {
  std::vector<IpAddress> out;
  for (const auto* list : {&cluster_ips, &clusterset_ips, &external_ips, &load_balancer_ips}) {
    out.insert(out.end(), list->begin(), list->end());
  }
  return out;
}

const ServicePort* Service::FindPort(uint16_t number) const {
  for (const ServicePort& p : ports) {
    if (p.port == number) {
      return &p;
    }
  }
  return nullptr;
}

std::optional<IpAddress> Endpoint::AddressOf(IpFamily family) const {
  for (const IpAddress& a : addresses) {
    if (a.family() == family) {
      return a;
    }
  }
  return std::nullopt;
}

const EndpointPort* Endpoint::FindPort(std::string_view name, Protocol protocol) const {
  for (const EndpointPort& p : ports) {
    if (p.name == name && p.protocol == protocol) {
      return &p;
    }
  }
  return nullptr;
}

bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) {
    return false;
  }
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s.front()) || !alnum(s.back())) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '-'; });
}

std::optional<ServiceHost> ParseServiceHost(std::string_view host,
                                            std::string_view default_namespace) {
  std::vector<std::string_view> labels;
  size_t start = 0;
  while (true) {
    const size_t dot = host.find('.', start);
    labels.push_back(host.substr(start, dot == std::string_view::npos ? host.npos : dot - start));
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  ServiceHost out;
  switch (labels.size()) {
    case 1:
      out.service = {std::string(default_namespace), std::string(labels[0])};
      break;
    case 2:
      out.service = {std::string(labels[1]), std::string(labels[0])};
      break;
    case 3:
      if (labels[2] != "svc") {
        return std::nullopt;
      }
      out.service = {std::string(labels[1]), std::string(labels[0])};
      break;
    case 5:
      if (labels[2] != "svc" || labels[4] != "local") {
        return std::nullopt;
      }
      if (labels[3] == "clusterset") {
        out.scope = HostScope::kClusterSet;
      } else if (labels[3] != "cluster") {
        return std::nullopt;
      }
      out.service = {std::string(labels[1]), std::string(labels[0])};
      break;
    default:
      return std::nullopt;
  }
  if (!IsDnsLabel(out.service.name) || !IsDnsLabel(out.service.ns)) {
    return std::nullopt;
  }
  return out;
}

void ModelChanges::Merge(const ModelChanges& other) {
  nodes = nodes || other.nodes;
  everything = everything || other.everything;
  if (everything) {
    services.clear();  // re-planning everything names no service
    return;
  }
  services.insert(other.services.begin(), other.services.end());
}

void Model::PutCluster(Cluster cluster) {
  changes_.everything = true;
  if (cluster.local) {
    for (Cluster& c : clusters_) {
      c.local = false;
    }
  }
  const auto it =
      std::lower_bound(clusters_.begin(), clusters_.end(), cluster.name,
                       [](const Cluster& c, const std::string& name) { return c.name < name; });
  if (it != clusters_.end() && it->name == cluster.name) {
    *it = std::move(cluster);
  } else {
    clusters_.insert(it, std::move(cluster));
  }
}

bool Model::SetLocalCluster(std::string_view name) {
  if (FindCluster(name) == nullptr) {
    return false;
  }
  changes_.everything = true;
  for (Cluster& c : clusters_) {
    c.local = c.name == name;
  }
  return true;
}

void Model::PutService(Service service) {
  NamespacedName key = service.name;
  if (!changes_.everything) {
    changes_.services.insert(key);
  }
  services_.insert_or_assign(std::move(key), std::move(service));
}

void Model::RemoveService(const NamespacedName& name) {
  if (!changes_.everything) {
    changes_.services.insert(name);
  }
  services_.erase(name);
  endpoints_.erase(name);
}

void Model::SetLocalNode(LocalNode node) {
  changes_.everything = true;
  local_node_ = std::move(node);
}

bool Model::SetNodeAddresses(std::string_view cluster, std::vector<IpAddress> addresses) {
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  const auto it = node_addresses_.find(cluster);
  if (it == node_addresses_.end() ? addresses.empty() : it->second == addresses) {
    return false;
  }
  changes_.nodes = true;
  if (addresses.empty()) {
    node_addresses_.erase(it);
  } else if (it == node_addresses_.end()) {
    node_addresses_.emplace(std::string(cluster), std::move(addresses));
  } else {
    it->second = std::move(addresses);
  }
  return true;
}

ModelChanges Model::TakeChanges() {
  ModelChanges out = std::move(changes_);
  changes_ = {};
  return out;
}

void Model::AddEndpoint(Endpoint endpoint) {
  NamespacedName key = endpoint.service;
  if (!changes_.everything) {
    changes_.services.insert(key);
  }
  endpoints_[std::move(key)].push_back(std::move(endpoint));
}

void Model::SetEndpoints(const NamespacedName& service, std::string_view cluster,
                         std::vector<Endpoint> endpoints) {
  if (!changes_.everything) {
    changes_.services.insert(service);
  }
  std::vector<Endpoint>& list = endpoints_[service];
  std::erase_if(list, [&](const Endpoint& e) { return e.cluster == cluster; });
  for (Endpoint& e : endpoints) {
    list.push_back(std::move(e));
  }
}

const Cluster* Model::FindCluster(std::string_view name) const {
  for (const Cluster& c : clusters_) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

const Cluster* Model::FindCluster(uint16_t id) const {
  for (const Cluster& c : clusters_) {
    if (c.id == id) {
      return &c;
    }
  }
  return nullptr;
}

const Cluster* Model::LocalCluster() const {
  for (const Cluster& c : clusters_) {
    if (c.local) {
      return &c;
    }
  }
  return nullptr;
}

const Service* Model::FindService(const NamespacedName& name) const {
  const auto it = services_.find(name);
  return it == services_.end() ? nullptr : &it->second;
}

const Service* Model::FindServiceByHost(std::string_view host,
                                        std::string_view default_namespace) const {
  const std::optional<ServiceHost> parsed = ParseServiceHost(host, default_namespace);
  return parsed ? FindService(parsed->service) : nullptr;
}

std::span<const Endpoint> Model::EndpointsOf(const NamespacedName& service) const {
  const auto it = endpoints_.find(service);
  if (it == endpoints_.end()) {
    return {};
  }
  return it->second;
}

ModelChanges DiffModels(const Model& before, const Model& after) {
  ModelChanges out;
  if (!std::equal(before.clusters().begin(), before.clusters().end(), after.clusters().begin(),
                  after.clusters().end()) ||
      before.local_node() != after.local_node()) {
    out.everything = true;
    return out;
  }
  out.nodes = before.node_addresses() != after.node_addresses();
  // Both maps are in name order: one merge walk.
  auto a = before.services().begin();
  auto b = after.services().begin();
  const auto a_end = before.services().end();
  const auto b_end = after.services().end();
  while (a != a_end || b != b_end) {
    if (b == b_end || (a != a_end && a->first < b->first)) {
      out.services.insert(a->first);
      ++a;
    } else if (a == a_end || b->first < a->first) {
      out.services.insert(b->first);
      ++b;
    } else {
      const std::span<const Endpoint> ea = before.EndpointsOf(a->first);
      const std::span<const Endpoint> eb = after.EndpointsOf(b->first);
      if (a->second != b->second || !std::equal(ea.begin(), ea.end(), eb.begin(), eb.end())) {
        out.services.insert(a->first);
      }
      ++a;
      ++b;
    }
  }
  return out;
}

}  // namespace xlb
