#include "userspace/policy/routes.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

namespace xlb {
namespace {

ConfigError ErrorAt(const SourceRef& ref, std::string message) {
  return ConfigError{ref.file, ref.document, ref.field, std::move(message), ref.line};
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// "spec.http[0]" -> "http[0]"
std::string RuleName(const RouteRule& rule) {
  std::string_view f = rule.ref.field;
  if (StartsWith(f, "spec.")) {
    f.remove_prefix(5);
  }
  return std::string(f);
}

// Two kinds of problem. A hard one is in the policy itself (a host that is no service name,
// a subset no DestinationRule defines, two policies for one service): the policy contributes
// no route. A soft one depends on the model of the moment (a service, port or cluster that
// does not exist): it is reported, and the policy still applies with that part empty, so that
// a cluster or a canary service going away spills its share over instead of resetting the
// service to default weights. PolicyStore rejects a new set on either kind.
class Resolver {
 public:
  Resolver(const PolicySet& set, const Model& model, const PolicyOptions& options,
           ConfigErrors& errors)
      : set_(set), model_(model), options_(options), errors_(errors) {}

  Routes Run() {
    for (const DestinationRule& dr : set_.destination_rules) {
      ResolveDestinationRule(dr);
    }
    for (const VirtualService& vs : set_.virtual_services) {
      ResolveVirtualService(vs);
    }
    for (const TrafficPolicy& tp : set_.traffic_policies) {
      ResolveTrafficPolicy(tp);
    }
    return std::move(routes_);
  }

 private:
  // A destination resolved as far as it can be without knowing the routed port.
  struct Target {
    const Service* service = nullptr;  // nullptr: not in the model (reported)
    DestinationGroup group;
    bool explicit_port = false;
    const RouteDestination* dest = nullptr;
  };

  struct Pending {
    const Service* service;
    const ServicePort* port;
    ServiceRoute route;
  };

  void Fail(const SourceRef& ref, std::string message) {
    errors_.push_back(ErrorAt(ref, std::move(message)));
    ++hard_;
  }
  void Note(const SourceRef& ref, std::string message) {
    errors_.push_back(ErrorAt(ref, std::move(message)));
  }

  std::string Namespace(const PolicyMeta& meta, const VirtualService* vs) const {
    if (!meta.ns.empty()) {
      return meta.ns;
    }
    if (!options_.default_namespace.empty()) {
      return options_.default_namespace;
    }
    if (vs != nullptr) {
      std::set<std::string> named;
      for (const auto* rules : {&vs->http, &vs->tcp}) {
        for (const RouteRule& r : *rules) {
          for (const RouteDestination& d : r.route) {
            if (d.host.find('.') != std::string::npos) {
              if (auto h = ParseServiceHost(d.host, "default")) {
                named.insert(h->service.ns);
              }
            }
          }
        }
      }
      if (named.size() == 1) {
        return *named.begin();
      }
    }
    return "default";
  }

  // The service name `host` stands for (nullopt: a hard problem, reported), and the service
  // when the model has it (nullptr: a soft problem, reported).
  std::pair<std::optional<ServiceHost>, const Service*> FindService(const std::string& host,
                                                                    const std::string& ns,
                                                                    const SourceRef& ref) {
    const std::optional<ServiceHost> parsed = ParseServiceHost(host, ns);
    if (!parsed) {
      Fail(ref, "host \"" + host +
                    "\" matches no service: expected NAME, NAME.NS, NAME.NS.svc, "
                    "NAME.NS.svc.cluster.local or NAME.NS.svc.clusterset.local");
      return {std::nullopt, nullptr};
    }
    const Service* s = model_.FindService(parsed->service);
    if (s == nullptr) {
      Note(ref, "host \"" + host + "\" matches no service (there is no service " +
                    parsed->service.ToString() + ")");
    }
    return {parsed, s};
  }

  void CheckCluster(const std::string& name, const SourceRef& ref) {
    if (model_.FindCluster(name) == nullptr) {
      Note(ref, "no cluster \"" + name + "\" in the clusterset");
    }
  }

  // False (reported) if a policy other than `meta` routes `service` already.
  bool Unclaimed(const NamespacedName& service, const PolicyMeta& meta, const SourceRef& ref) {
    const auto it = owner_.find(service);
    if (it != owner_.end() && it->second != meta.Describe()) {
      Fail(ref, "service " + service.ToString() + " already has a policy: " + it->second);
      return false;
    }
    return true;
  }

  void ResolveDestinationRule(const DestinationRule& dr) {
    const size_t before = hard_;
    const auto [host, service] = FindService(dr.host, Namespace(dr.meta, nullptr), dr.host_ref);
    std::map<std::string, std::string> subsets;
    for (const Subset& s : dr.subsets) {
      CheckCluster(s.cluster, s.cluster_ref);
      subsets[s.name] = s.cluster;
    }
    if (!host || hard_ != before) {
      return;
    }
    const auto [it, inserted] =
        subsets_.emplace(host->service, std::make_pair(dr.meta.Describe(), subsets));
    if (!inserted) {
      Fail(dr.host_ref, "service " + host->service.ToString() +
                            " already has a DestinationRule: " + it->second.first);
    }
  }

  std::optional<Target> ResolveDestination(const RouteDestination& d, const std::string& ns) {
    const auto [host, service] = FindService(d.host, ns, d.host_ref);
    if (!host) {
      return std::nullopt;
    }
    Target t;
    t.dest = &d;
    t.service = service;
    DestinationGroup& g = t.group;
    g.service = host->service;
    g.weight = d.weight.value_or(0);
    g.label = d.host;
    if (!d.subset.empty()) {
      const auto it = subsets_.find(host->service);
      const std::string* cluster = nullptr;
      if (it != subsets_.end()) {
        const auto s = it->second.second.find(d.subset);
        if (s != it->second.second.end()) {
          cluster = &s->second;
        }
      }
      if (cluster == nullptr) {
        Fail(d.subset_ref, "no DestinationRule for " + host->service.ToString() +
                               " defines subset \"" + d.subset + "\"");
        return std::nullopt;
      }
      g.scope = DestinationGroup::Scope::kCluster;
      g.cluster = *cluster;
      g.label += " subset " + d.subset;
    } else {
      g.scope = host->scope == HostScope::kClusterSet ? DestinationGroup::Scope::kRest
                                                      : DestinationGroup::Scope::kLocal;
    }
    if (d.port != 0) {
      if (service != nullptr && service->FindPort(d.port) == nullptr) {
        Note(d.port_ref,
             "service " + service->name.ToString() + " has no port " + std::to_string(d.port));
      }
      g.port = d.port;
      t.explicit_port = true;
    }
    return t;
  }

  // The first rule of `rules` that matches `port`, and its index.
  static const RouteRule* FirstMatch(const std::vector<RouteRule>& rules, uint16_t port,
                                     size_t* index) {
    for (size_t i = 0; i < rules.size(); ++i) {
      if (rules[i].Matches(port)) {
        *index = i;
        return &rules[i];
      }
    }
    return nullptr;
  }

  void ResolveVirtualService(const VirtualService& vs) {
    const size_t before = hard_;
    const std::string ns = Namespace(vs.meta, &vs);

    std::vector<std::pair<const Service*, const SourceRef*>> hosts;
    for (const auto& [host, ref] : vs.hosts) {
      const Service* s = FindService(host, ns, ref).second;
      if (s != nullptr &&
          std::none_of(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == s; })) {
        hosts.emplace_back(s, &ref);
      }
    }
    // Destinations, once each, whatever port they end up serving.
    std::vector<std::vector<Target>> http_targets;
    std::vector<std::vector<Target>> tcp_targets;
    for (const auto& [rules, targets] :
         {std::pair{&vs.http, &http_targets}, std::pair{&vs.tcp, &tcp_targets}}) {
      for (const RouteRule& rule : *rules) {
        std::vector<Target>& list = targets->emplace_back();
        for (const RouteDestination& d : rule.route) {
          if (auto t = ResolveDestination(d, ns)) {
            list.push_back(std::move(*t));
          }
        }
      }
    }
    if (hard_ != before) {
      return;
    }

    std::vector<Pending> pending;
    for (const auto& [service, ref] : hosts) {
      for (const ServicePort& port : service->ports) {
        size_t http_index = 0;
        size_t tcp_index = 0;
        const RouteRule* http = FirstMatch(vs.http, port.port, &http_index);
        const RouteRule* tcp = FirstMatch(vs.tcp, port.port, &tcp_index);
        if (http != nullptr && tcp != nullptr) {
          (IsHttpPort(port) ? tcp : http) = nullptr;
        }
        const RouteRule* rule = http != nullptr ? http : tcp;
        if (rule == nullptr) {
          continue;  // no rule for this port: it keeps the default
        }
        const std::vector<Target>& targets =
            http != nullptr ? http_targets[http_index] : tcp_targets[tcp_index];
        ServiceRoute route;
        route.spillover = vs.spillover;
        route.policy = vs.meta.Describe() + " " + RuleName(*rule);
        for (const Target& t : targets) {
          DestinationGroup g = t.group;
          if (!t.explicit_port && t.service != nullptr &&
              t.service->FindPort(port.port) == nullptr) {
            // Not the routed port's number: the destination's only port, if it has one.
            if (t.service->ports.size() == 1) {
              g.port = t.service->ports.front().port;
            } else {
              Note(t.dest->ref, "service " + t.service->name.ToString() + " has no port " +
                                    std::to_string(port.port) +
                                    " and not exactly one other: give destination.port.number");
            }
          }
          route.groups.push_back(std::move(g));
        }
        pending.push_back(Pending{service, &port, std::move(route)});
      }
    }
    if (!hosts.empty()) {
      NoteRulesThatRouteNothing(vs, hosts);
    }
    for (const auto& [service, ref] : hosts) {
      if (!Unclaimed(service->name, vs.meta, *ref)) {
        return;
      }
    }
    for (const auto& [service, ref] : hosts) {
      owner_.emplace(service->name, vs.meta.Describe());
    }
    for (Pending& p : pending) {
      routes_.Put(p.service->name, *p.port, std::move(p.route));
    }
  }

  static std::string PortName(const ServicePort& port) {
    return std::to_string(port.port) + "/" + std::string(ToString(port.protocol));
  }

  // A rule that can route no port, and a match port that names none, would be accepted and
  // change nothing: each is a problem (a soft one: the services' ports may change). Istio accepts
  // them; its analyzer flags the unreachable rule (IST0130). A rule that loses a port only to the
  // other kind's, by Istio's protocol selection, is how one VirtualService covers http and tcp
  // ports alike, and is no problem.
  void NoteRulesThatRouteNothing(
      const VirtualService& vs,
      const std::vector<std::pair<const Service*, const SourceRef*>>& hosts) {
    std::string services;  // "production/api (80/TCP, 443/TCP)"
    for (const auto& [service, ref] : hosts) {
      std::string ports;
      for (const ServicePort& port : service->ports) {
        ports += (ports.empty() ? "" : ", ") + PortName(port);
      }
      services += (services.empty() ? "" : " or ") + service->name.ToString() + " (" +
                  (ports.empty() ? std::string("no ports") : ports) + ")";
    }
    const std::string of = "of service" + std::string(hosts.size() > 1 ? "s " : " ") + services;
    for (const auto* rules : {&vs.http, &vs.tcp}) {
      for (const RouteRule& rule : *rules) {
        bool matches = false;
        bool reached = false;
        std::set<std::string> earlier;  // the rules that take its ports
        for (const auto& [service, ref] : hosts) {
          for (const ServicePort& port : service->ports) {
            if (!rule.Matches(port.port)) {
              continue;
            }
            matches = true;
            size_t index = 0;
            const RouteRule* first = FirstMatch(*rules, port.port, &index);
            reached |= first == &rule;
            if (first != &rule) {
              earlier.insert(RuleName(*first));
            }
          }
        }
        if (!matches) {
          Note(rule.ref, "matches no port " + of + ": the rule routes nothing");
          continue;
        }
        for (const uint16_t number : rule.match_ports) {
          const bool known = std::any_of(hosts.begin(), hosts.end(), [&](const auto& h) {
            return h.first->FindPort(number) != nullptr;
          });
          if (!known) {
            Note(rule.ref, "match port " + std::to_string(number) + " is no port " + of +
                               ": that match routes nothing");
          }
        }
        if (!reached) {
          std::string names;
          for (const std::string& name : earlier) {
            names += (names.empty() ? "" : ", ") + name;
          }
          Note(rule.ref, "is never used: each port it matches " + of + " takes an earlier rule (" +
                             names + ")");
        }
      }
    }
  }

  void ResolveTrafficPolicy(const TrafficPolicy& tp) {
    const Service* service =
        FindService(tp.service, Namespace(tp.meta, nullptr), tp.service_ref).second;
    for (const ClusterWeight& w : tp.weights) {
      CheckCluster(w.cluster, w.ref);
    }
    for (const auto& [cluster, ref] : tp.failover) {
      CheckCluster(cluster, ref);
    }
    if (service == nullptr) {
      return;
    }
    ServiceRoute route;
    route.spillover = tp.spillover;
    route.policy = tp.meta.Describe();
    const auto group = [&](const std::string& cluster, uint32_t weight) {
      DestinationGroup g;
      g.service = service->name;
      g.scope = DestinationGroup::Scope::kCluster;
      g.cluster = cluster;
      g.weight = weight;
      g.label = "cluster " + cluster;
      return g;
    };
    for (const auto& failover : tp.failover) {
      const std::string& cluster = failover.first;
      const auto it = std::find_if(tp.weights.begin(), tp.weights.end(),
                                   [&](const ClusterWeight& w) { return w.cluster == cluster; });
      route.groups.push_back(group(cluster, it == tp.weights.end() ? 0 : it->weight));
    }
    for (const ClusterWeight& w : tp.weights) {
      const bool listed = std::any_of(tp.failover.begin(), tp.failover.end(),
                                      [&](const auto& f) { return f.first == w.cluster; });
      if (!listed) {
        route.groups.push_back(group(w.cluster, w.weight));
      }
    }
    if (!Unclaimed(service->name, tp.meta, tp.service_ref)) {
      return;
    }
    owner_.emplace(service->name, tp.meta.Describe());
    for (const ServicePort& port : service->ports) {
      routes_.Put(service->name, port, route);
    }
  }

  const PolicySet& set_;
  const Model& model_;
  const PolicyOptions& options_;
  ConfigErrors& errors_;
  size_t hard_ = 0;  // hard problems so far
  Routes routes_;
  // service -> (its DestinationRule, the subsets: name -> cluster)
  std::map<NamespacedName, std::pair<std::string, std::map<std::string, std::string>>> subsets_;
  std::map<NamespacedName, std::string> owner_;  // service -> the policy that routes it
};

}  // namespace

const char* ToString(Spillover spillover) {
  return spillover == Spillover::kOrdered ? "ordered" : "proportional";
}

std::string PolicyMeta::Describe() const {
  std::string out = kind + " " + (ns.empty() ? std::string() : ns + "/") + name;
  if (!ref.file.empty()) {
    out += " (" + ref.file + ", document " + std::to_string(ref.document) + ")";
  }
  return out;
}

bool RouteRule::Matches(uint16_t port) const {
  return match_ports.empty() ||
         std::find(match_ports.begin(), match_ports.end(), port) != match_ports.end();
}

bool IsHttpPort(const ServicePort& port) {
  for (const char* p : {"http", "http2", "grpc", "grpc-web"}) {
    const std::string_view prefix(p);
    if (port.name == prefix || StartsWith(port.name, std::string(prefix) + "-")) {
      return true;
    }
  }
  const std::string& a = port.app_protocol;
  return a == "http" || a == "http2" || a == "grpc" || a == "grpc-web" ||
         a == "kubernetes.io/h2c" || a == "kubernetes.io/ws";
}

ServiceRoute DefaultRoute(const NamespacedName& service) {
  ServiceRoute route;
  DestinationGroup g;
  g.service = service;
  g.scope = DestinationGroup::Scope::kAllClusters;
  g.weight = 1;
  g.label = "every ready endpoint";
  route.groups.push_back(std::move(g));
  return route;
}

const ServiceRoute* Routes::Find(const NamespacedName& service, const ServicePort& port) const {
  const auto it = routes_.find({service, port.port, port.protocol});
  return it == routes_.end() ? nullptr : &it->second;
}

void Routes::Put(const NamespacedName& service, const ServicePort& port, ServiceRoute route) {
  routes_.insert_or_assign({service, port.port, port.protocol}, std::move(route));
}

Routes ResolveRoutes(const PolicySet& set, const Model& model, const PolicyOptions& options,
                     ConfigErrors& errors) {
  ConfigErrors found;
  Routes routes = Resolver(set, model, options, found).Run();
  for (ConfigError& e : found) {
    const bool dup = std::any_of(errors.begin(), errors.end(), [&](const ConfigError& x) {
      return x.file == e.file && x.document == e.document && x.field == e.field &&
             x.message == e.message;
    });
    if (!dup) {
      errors.push_back(std::move(e));
    }
  }
  return routes;
}

}  // namespace xlb
