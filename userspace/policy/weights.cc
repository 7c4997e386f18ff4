#include "userspace/policy/weights.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <utility>

namespace xlb {
namespace {

__extension__ typedef unsigned __int128 u128;  // GCC and clang; -Wpedantic knows it as an extension

struct Group {
  const DestinationGroup* spec;
  std::vector<std::string> ready;  // keys of the endpoints that take new flows
  uint64_t effective = 0;          // weight after spill-over
};

// The clusters whose endpoints `g` stands for, given the other groups of its route.
std::set<std::string> ClustersOf(const Model& model, const ServiceRoute& route,
                                 const DestinationGroup& g) {
  std::set<std::string> out;
  const Cluster* local = model.LocalCluster();
  switch (g.scope) {
    case DestinationGroup::Scope::kLocal:
      if (local != nullptr) {
        out.insert(local->name);
      }
      break;
    case DestinationGroup::Scope::kCluster:
      out.insert(g.cluster);
      break;
    case DestinationGroup::Scope::kAllClusters:
      for (const Cluster& c : model.clusters()) {
        out.insert(c.name);
      }
      break;
    case DestinationGroup::Scope::kRest: {
      std::set<std::string> claimed;
      for (const DestinationGroup& other : route.groups) {
        if (other.service != g.service) {
          continue;
        }
        if (other.scope == DestinationGroup::Scope::kLocal && local != nullptr) {
          claimed.insert(local->name);
        } else if (other.scope == DestinationGroup::Scope::kCluster) {
          claimed.insert(other.cluster);
        }
      }
      for (const Cluster& c : model.clusters()) {
        if (claimed.count(c.name) == 0) {
          out.insert(c.name);
        }
      }
      break;
    }
  }
  return out;
}

// Spill-over: the weight each group carries once groups without a ready endpoint have given
// theirs away.
void Spill(std::vector<Group>& groups, Spillover mode) {
  const auto live = [](const Group& g) { return !g.ready.empty(); };
  uint64_t total = 0;
  for (Group& g : groups) {
    g.effective = live(g) ? g.spec->weight : 0;
    total += g.effective;
  }
  if (mode == Spillover::kOrdered) {
    for (size_t i = 0; i < groups.size(); ++i) {
      if (live(groups[i]) || groups[i].spec->weight == 0) {
        continue;
      }
      for (size_t step = 1; step < groups.size(); ++step) {
        Group& next = groups[(i + step) % groups.size()];
        if (live(next)) {
          next.effective += groups[i].spec->weight;
          break;
        }
      }
    }
    return;
  }
  // Proportional: a dead group simply drops out of the sum. With no weighted group alive, the
  // first live standby takes everything.
  if (total == 0) {
    const auto it = std::find_if(groups.begin(), groups.end(), live);
    if (it != groups.end()) {
      it->effective = 1;
    }
  }
}

// Integer weights in exactly the ratios sum_g effective_g / ready_g, or, when those do not fit
// 32 bits, scaled and rounded.
std::map<std::string, uint32_t> EndpointWeights(const std::vector<Group>& groups) {
  std::map<std::string, uint32_t> out;
  u128 lcm = 1;
  bool exact = true;
  for (const Group& g : groups) {
    if (g.effective == 0) {
      continue;
    }
    const u128 n = g.ready.size();
    const u128 d = std::gcd(static_cast<uint64_t>(lcm), static_cast<uint64_t>(n));
    lcm = lcm / d * n;
    if (lcm > std::numeric_limits<uint64_t>::max()) {
      exact = false;
      break;
    }
  }
  std::map<std::string, u128> sums;
  std::map<std::string, long double> reals;
  for (const Group& g : groups) {
    if (g.effective == 0) {
      continue;
    }
    for (const std::string& key : g.ready) {
      reals[key] += static_cast<long double>(g.effective) / g.ready.size();
      if (exact) {
        const u128 part = g.effective * (lcm / g.ready.size());
        u128& sum = sums[key];
        sum += part;
        if (part > std::numeric_limits<uint64_t>::max() ||
            sum > std::numeric_limits<uint64_t>::max()) {
          exact = false;
        }
      }
    }
  }
  if (exact) {
    uint64_t divisor = 0;
    for (const auto& [key, sum] : sums) {
      divisor = std::gcd(divisor, static_cast<uint64_t>(sum));
    }
    bool fits = divisor != 0;
    for (const auto& [key, sum] : sums) {
      fits &= sum / divisor <= std::numeric_limits<uint32_t>::max();
    }
    if (fits) {
      for (const auto& [key, sum] : sums) {
        out[key] = static_cast<uint32_t>(sum / divisor);
      }
      return out;
    }
  }
  long double largest = 0;
  for (const auto& [key, r] : reals) {
    largest = std::max(largest, r);
  }
  for (const auto& [key, r] : reals) {
    const long double scaled = std::round(r / largest * 2147483648.0L);
    out[key] = static_cast<uint32_t>(std::max<long double>(1, scaled));
  }
  return out;
}

}  // namespace

std::vector<IpFamily> FamiliesOf(const Model& model, const Service& service) {
  std::set<IpFamily> families;
  for (const IpAddress& a : service.Vips()) {
    families.insert(a.family());
  }
  if (families.empty()) {
    for (const Endpoint& e : model.EndpointsOf(service.name)) {
      for (const IpAddress& a : e.addresses) {
        families.insert(a.family());
      }
    }
  }
  if (families.empty()) {
    families.insert(IpFamily::kIPv4);
  }
  return {families.begin(), families.end()};
}

std::string BackendKey(const std::string& cluster, const IpAddress& address, uint16_t port) {
  const std::string a = address.ToString();
  return cluster + "/" + (address.family() == IpFamily::kIPv6 ? "[" + a + "]" : a) + ":" +
         std::to_string(port);
}

uint64_t ServiceBackends::TotalWeight() const {
  uint64_t total = 0;
  for (const WeightedBackend& b : backends) {
    total += b.weight;
  }
  return total;
}

namespace {

// An endpoint a plan may list: in a group's clusters, serving the port, with an address of the
// family, and (under a Local policy) on this node.
struct Candidate {
  size_t group = 0;
  const Endpoint* endpoint = nullptr;
  const Cluster* cluster = nullptr;
  IpAddress address;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  BackendPath path = BackendPath::kLocal;
  bool takes_new = false;
  bool other_zone = false;
};

std::vector<Candidate> CandidatesOf(const Model& model, const ServicePort& port, IpFamily family,
                                    const ServiceRoute& route, bool node_local) {
  std::vector<Candidate> out;
  for (size_t g = 0; g < route.groups.size(); ++g) {
    const DestinationGroup& spec = route.groups[g];
    const Service* dest = model.FindService(spec.service);
    if (dest == nullptr) {
      continue;
    }
    const uint16_t number = spec.port != 0 ? spec.port : port.port;
    const auto dest_port = std::find_if(dest->ports.begin(), dest->ports.end(), [&](const auto& p) {
      return p.port == number && p.protocol == port.protocol;
    });
    if (dest_port == dest->ports.end()) {
      continue;
    }
    const std::set<std::string> clusters = ClustersOf(model, route, spec);
    for (const Endpoint& e : model.EndpointsOf(dest->name)) {
      if (clusters.count(e.cluster) == 0) {
        continue;
      }
      const Cluster* cluster = model.FindCluster(e.cluster);
      const std::optional<IpAddress> address = e.AddressOf(family);
      const EndpointPort* ep = e.FindPort(dest_port->name, dest_port->protocol);
      if (cluster == nullptr || !address || ep == nullptr) {
        continue;
      }
      const BackendPath path = PathOf(e, *cluster, model.local_node());
      if (node_local && !(cluster->local && path == BackendPath::kLocal)) {
        continue;
      }
      out.push_back(Candidate{g, &e, cluster, *address, ep->port, ep->protocol, path,
                              e.TakesNewFlows(), false});
    }
  }
  return out;
}

// kube-proxy's canUseTopology, over the local cluster's candidates: every ready one carries
// hints, and one is hinted for `zone`.
bool TopologyApplies(const std::vector<Candidate>& candidates, const std::string& zone) {
  bool for_zone = false;
  for (const Candidate& c : candidates) {
    if (!c.cluster->local || !c.takes_new) {
      continue;
    }
    const std::vector<std::string>& hints = c.endpoint->zone_hints;
    if (hints.empty()) {
      return false;
    }
    for_zone |= std::find(hints.begin(), hints.end(), zone) != hints.end();
  }
  return for_zone;
}

ServiceBackends Plan(const Model& model, const Service& service, const ServicePort& port,
                     IpFamily family, const ServiceRoute& route, FrontendScope scope,
                     bool node_local) {
  ServiceBackends out;
  out.service = service.name;
  out.port = port;
  out.family = family;
  out.policy = route.policy.empty() ? "default" : route.policy;
  out.spillover = route.spillover;
  out.scope = scope;
  out.node_local = node_local;

  std::vector<Candidate> candidates = CandidatesOf(model, port, family, route, node_local);
  if (std::none_of(candidates.begin(), candidates.end(),
                   [](const Candidate& c) { return c.takes_new; })) {
    for (Candidate& c : candidates) {
      c.takes_new = c.endpoint->conditions.Serving() && c.endpoint->conditions.Terminating();
      out.serving_terminating |= c.takes_new;
    }
  }
  const std::string& zone = model.local_node().zone;
  if (service.topology == TopologyRouting::kPreferClose && !node_local && !zone.empty() &&
      !out.serving_terminating && TopologyApplies(candidates, zone)) {
    out.zone_filtered = true;
    for (Candidate& c : candidates) {
      const std::vector<std::string>& hints = c.endpoint->zone_hints;
      if (c.cluster->local && c.takes_new &&
          std::find(hints.begin(), hints.end(), zone) == hints.end()) {
        c.takes_new = false;
        c.other_zone = true;
      }
    }
  }

  std::map<std::string, WeightedBackend> backends;
  std::vector<Group> groups;
  groups.reserve(route.groups.size());
  for (const DestinationGroup& spec : route.groups) {
    groups.push_back(Group{&spec, {}, 0});
  }
  std::vector<std::set<std::string>> ready(groups.size());
  for (const Candidate& c : candidates) {
    const bool draining = c.endpoint->conditions.Terminating() || c.other_zone;
    if (!c.takes_new && !draining) {
      continue;  // not ready and not draining either
    }
    std::string key = BackendKey(c.cluster->name, c.address, c.port);
    const auto [it, inserted] = backends.try_emplace(key);
    WeightedBackend& b = it->second;
    if (inserted || (c.takes_new && (b.terminating || b.other_zone))) {
      b.key = key;
      b.address = c.address;
      b.port = c.port;
      b.protocol = c.protocol;
      b.cluster = c.cluster->name;
      b.cluster_id = c.cluster->id;
      b.local = c.cluster->local;
      b.node_name = c.endpoint->node_name;
      b.node_address = c.endpoint->node_address;
      b.path = c.path;
      b.terminating = !c.takes_new && c.endpoint->conditions.Terminating();
      b.other_zone = !c.takes_new && c.other_zone;
    }
    if (c.takes_new) {
      ready[c.group].insert(std::move(key));
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].ready.assign(ready[g].begin(), ready[g].end());
  }

  Spill(groups, route.spillover);
  for (const auto& [key, weight] : EndpointWeights(groups)) {
    backends.at(key).weight = weight;
  }

  uint64_t total = 0;
  for (const auto& [key, b] : backends) {
    total += b.weight;
  }
  for (const Cluster& c : model.clusters()) {
    ClusterShare share{c.name, c.id, 0, 0};
    uint64_t weight = 0;
    for (const auto& [key, b] : backends) {
      if (b.cluster == c.name) {
        share.ready += b.terminating || b.other_zone ? 0 : 1;
        weight += b.weight;
      }
    }
    share.share = total == 0 ? 0 : static_cast<double>(weight) / static_cast<double>(total);
    out.clusters.push_back(std::move(share));
  }
  out.backends.reserve(backends.size());
  for (auto& [key, b] : backends) {
    out.backends.push_back(std::move(b));
  }
  if (total == 0) {
    // Reject only what has no usable endpoint anywhere: a Local policy that left none here
    // drops (kube-proxy: "has no local endpoints").
    out.rejects =
        !node_local ||
        Plan(model, service, port, family, route, scope, /*node_local=*/false).TotalWeight() == 0;
  }
  return out;
}

}  // namespace

const char* ToString(FrontendScope scope) {
  switch (scope) {
    case FrontendScope::kAll:
      return "all";
    case FrontendScope::kInternal:
      return "internal";
    case FrontendScope::kExternal:
      return "external";
  }
  return "?";
}

std::vector<FrontendScope> ScopesOf(const Service& service) {
  if (service.internal_policy == service.external_policy) {
    return {FrontendScope::kAll};
  }
  return {FrontendScope::kInternal, FrontendScope::kExternal};
}

ServiceTrafficPolicy PolicyOf(const Service& service, FrontendScope scope) {
  return scope == FrontendScope::kExternal ? service.external_policy : service.internal_policy;
}

ServiceBackends PlanServicePort(const Model& model, const Service& service, const ServicePort& port,
                                IpFamily family, const ServiceRoute& route, FrontendScope scope) {
  return Plan(model, service, port, family, route, scope,
              PolicyOf(service, scope) == ServiceTrafficPolicy::kLocal);
}

std::vector<ServiceBackends> PlanBackends(const Model& model, const Routes& routes) {
  std::vector<ServiceBackends> out;
  for (const auto& [name, service] : model.services()) {
    const ServiceRoute fallback = DefaultRoute(name);
    for (const ServicePort& port : service.ports) {
      const ServiceRoute* route = routes.Find(name, port);
      for (const IpFamily family : FamiliesOf(model, service)) {
        for (const FrontendScope scope : ScopesOf(service)) {
          out.push_back(PlanServicePort(model, service, port, family,
                                        route != nullptr ? *route : fallback, scope));
        }
      }
    }
  }
  return out;
}

std::vector<MaglevBackend> ToMaglevBackends(
    const ServiceBackends& list, const std::function<uint32_t(const WeightedBackend&)>& id_of) {
  std::vector<MaglevBackend> out;
  out.reserve(list.backends.size());
  for (const WeightedBackend& b : list.backends) {
    out.push_back(MaglevBackend{id_of(b), b.key, b.weight});
  }
  return out;
}

const char* ToString(BackendPath path) {
  switch (path) {
    case BackendPath::kLocal:
      return "local";
    case BackendPath::kTunnel:
      return "tunnel";
    case BackendPath::kRouted:
      return "routed";
    case BackendPath::kSnat:
      return "snat";
  }
  return "?";
}

BackendPath PathOf(const Endpoint& endpoint, const Cluster& cluster, const LocalNode& here) {
  const bool reachable_node = endpoint.node_address.has_value() && endpoint.node_runs_xlb;
  // An address of this node's own (a host-network endpoint here, an API server on this node):
  // its stack answers, and xlb_tc_egress meets that answer on the way out.
  for (const IpAddress& a : endpoint.addresses) {
    if (std::find(here.addresses.begin(), here.addresses.end(), a) != here.addresses.end()) {
      return BackendPath::kLocal;
    }
  }
  if (cluster.local) {
    // A node that does not know its name cannot tell its pods from others' (a one-node
    // config); a named node's endpoint without a node is a host address.
    if (here.name.empty() || endpoint.node_name == here.name) {
      return BackendPath::kLocal;
    }
    return !endpoint.node_name.empty() && reachable_node ? BackendPath::kTunnel
                                                         : BackendPath::kSnat;
  }
  if (endpoint.node_name.empty()) {
    return BackendPath::kRouted;
  }
  if (reachable_node) {
    return BackendPath::kTunnel;
  }
  // A remote node without an address is never planned (it waits for its Node, kube_source.cc);
  // one known to run no xlb cannot send answers back through the tunnel.
  return endpoint.node_runs_xlb ? BackendPath::kRouted : BackendPath::kSnat;
}

xlb_backend ToAbiBackend(const WeightedBackend& backend) {
  xlb_backend out{};
  backend.address.ToAbiWords(out.addr);
  out.port = htons(backend.port);
  out.family = static_cast<uint8_t>(backend.address.family());
  out.cluster_id = backend.cluster_id;
  out.flags = XLB_BE_F_VALID;
  if (backend.Tunnelled()) {
    backend.node_address->ToAbiWords(out.tunnel);
    out.tunnel_family = static_cast<uint8_t>(backend.node_address->family());
    out.flags |= XLB_BE_F_TUNNEL;
  }
  if (backend.path == BackendPath::kSnat) {
    out.flags |= XLB_BE_F_SNAT;
  }
  return out;
}

}  // namespace xlb
