#include "userspace/model/config_source.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/model/yaml_fields.h"

namespace xlb {
namespace {

using yaml::Field;

struct NodeDecl {
  std::string name;
  std::vector<IpAddress> addresses;
  bool runs_xlb = true;
  std::string zone;
};

struct Declared {
  std::string where;  // "document 1, clusters[0]": for "declared twice" messages
};

std::string Where(const yaml::Document& doc, const Field& f) {
  return "document " + std::to_string(doc.index()) + ", " + f.path();
}

class ConfigParser {
 public:
  explicit ConfigParser(std::string file) : file_(std::move(file)) {}

  ConfigResult<Model> Parse(const std::string& text) {
    XLB_ASSIGN_OR_RETURN(const auto docs, yaml::LoadDocuments(file_, text));
    // Two passes, so that an EndpointSlice may name a cluster or service of a later document.
    std::vector<std::pair<yaml::Document, YAML::Node>> roots;
    roots.reserve(docs.size());
    for (const yaml::LoadedDocument& d : docs) {
      if (d.root.IsNull()) {
        continue;  // an empty document, e.g. after a trailing `---`
      }
      roots.emplace_back(yaml::Document(file_, d.index, errors_), d.root);
    }
    if (roots.empty()) {
      errors_.push_back(ConfigError{file_, 0, "", "no document in the file", 0});
    }
    std::vector<bool> header_ok;
    header_ok.reserve(roots.size());
    for (const auto& [doc, node] : roots) {
      header_ok.push_back(ParseHeader(Field(doc, node)));
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      if (header_ok[i]) {
        const Field root(roots[i].first, roots[i].second);
        if (const Field node = root["node"]; node.present()) {
          ParseNode(roots[i].first, node);
        }
        for (const Field& c : root["clusters"].Items()) {
          ParseCluster(roots[i].first, c);
        }
        for (const Field& s : root["services"].Items()) {
          ParseService(roots[i].first, s);
        }
      }
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      if (header_ok[i]) {
        const Field root(roots[i].first, roots[i].second);
        for (const Field& s : root["endpointSlices"].Items()) {
          ParseSlice(s);
        }
      }
    }
    ZoneOfLocalNode();
    if (!errors_.empty()) {
      return std::move(errors_);
    }
    return std::move(model_);
  }

 private:
  bool ParseHeader(const Field& root) {
    if (!root.IsMap()) {
      return false;
    }
    bool ok =
        root.OnlyFields({"apiVersion", "kind", "node", "clusters", "services", "endpointSlices"});
    ok = root["apiVersion"].RequiredValue(kConfigApiVersion) && ok;
    ok = root["kind"].RequiredValue(kConfigKind) && ok;
    return ok;
  }

  // A DNS-1123 label in `f`, required.
  std::optional<std::string> Label(const Field& f) {
    if (!f.Required()) {
      return std::nullopt;
    }
    auto s = f.String();
    if (s && !IsDnsLabel(*s)) {
      f.Fail("expected a DNS-1123 label (1-63 of a-z, 0-9, '-'), got " + f.Describe());
      return std::nullopt;
    }
    return s;
  }

  // spec.externalTrafficPolicy / spec.internalTrafficPolicy; absent: Cluster.
  static ServiceTrafficPolicy TrafficPolicy(const Field& f) {
    return f.OneOf({"Cluster", "Local"}).value_or("Cluster") == "Local"
               ? ServiceTrafficPolicy::kLocal
               : ServiceTrafficPolicy::kCluster;
  }

  // A zone name (a label value: not empty); false (reported) otherwise.
  static bool Zone(const Field& f, std::string& out) {
    const std::optional<std::string> zone = f.String();
    if (!zone) {
      return false;
    }
    if (zone->empty()) {
      f.Fail("expected a zone name, got \"\"");
      return false;
    }
    out = *zone;
    return true;
  }

  // The local node takes the zone of the local cluster's node of its name, unless it has one.
  void ZoneOfLocalNode() {
    const LocalNode& node = model_.local_node();
    if (!node.zone.empty() || node.name.empty() || local_.empty()) {
      return;
    }
    for (const NodeDecl& decl : nodes_[local_]) {
      if (decl.name == node.name && !decl.zone.empty()) {
        LocalNode zoned = node;
        zoned.zone = decl.zone;
        model_.SetLocalNode(std::move(zoned));
        return;
      }
    }
  }

  std::optional<IpAddress> Address(const Field& f) {
    auto s = f.String();
    if (!s) {
      if (!f.present()) {
        f.Fail("expected an IP address, got nothing");
      }
      return std::nullopt;
    }
    auto a = IpAddress::Parse(*s);
    if (!a) {
      f.Fail("expected an IPv4 or IPv6 address, got " + f.Describe());
    }
    return a;
  }

  std::vector<IpAddress> Addresses(const Field& list) {
    std::vector<IpAddress> out;
    for (const Field& item : list.Items()) {
      if (auto a = Address(item)) {
        out.push_back(*a);
      }
    }
    return out;
  }

  // The top-level `node:` block: this agent's node, whose addresses serve the NodePorts.
  void ParseNode(const yaml::Document& doc, const Field& f) {
    if (!f.IsMap()) {
      return;
    }
    f.OnlyFields({"name", "addresses", "zone"});
    LocalNode node;
    bool ok = true;
    if (const Field name = f["name"]; name.present()) {
      if (auto s = name.String()) {
        node.name = *s;
      } else {
        ok = false;
      }
    }
    if (const Field zone = f["zone"]; zone.present()) {
      ok &= Zone(zone, node.zone);
    }
    const Field addrs = f["addresses"];
    if (!addrs.Required()) {
      ok = false;
    } else if (addrs.IsSeq()) {
      if (addrs.node().size() == 0) {
        addrs.Fail("expected at least one address");
        ok = false;
      }
      for (const Field& af : addrs.Items()) {
        auto a = Address(af);
        if (!a) {
          ok = false;
          continue;
        }
        if (std::find(node.addresses.begin(), node.addresses.end(), *a) != node.addresses.end()) {
          af.Fail("address " + a->ToString() + " given twice");
          ok = false;
          continue;
        }
        node.addresses.push_back(*a);
      }
    } else {
      ok = false;
    }
    if (!node_where_.empty()) {
      f.Fail("node declared twice (first at " + node_where_ + ")");
      return;
    }
    node_where_ = Where(doc, f);
    if (ok) {
      model_.SetLocalNode(std::move(node));
    }
  }

  void ParseCluster(const yaml::Document& doc, const Field& f) {
    if (!f.IsMap()) {
      return;
    }
    f.OnlyFields({"name", "id", "local", "nodes"});
    Cluster c;
    const auto name = Label(f["name"]);
    const Field id_field = f["id"];
    std::optional<int64_t> id;
    if (id_field.Required()) {
      id = id_field.IntegerIn(1, 65535);
    }
    c.local = f["local"].Bool().value_or(false);

    std::vector<NodeDecl> nodes;
    std::set<std::string> node_names;
    for (const Field& n : f["nodes"].Items()) {
      if (!n.IsMap()) {
        continue;
      }
      n.OnlyFields({"name", "addresses", "xlb", "zone"});
      NodeDecl node;
      const Field node_name = n["name"];
      if (node_name.Required()) {
        node.name = node_name.String().value_or("");
        if (!node.name.empty() && !node_names.insert(node.name).second) {
          node_name.Fail("node \"" + node.name + "\" declared twice");
        }
      }
      const Field addrs = n["addresses"];
      if (addrs.IsSeq()) {
        node.addresses = Addresses(addrs);
        if (node.addresses.empty() && addrs.node().size() == 0) {
          addrs.Fail("expected at least one address");
        }
      }
      if (const Field runs = n["xlb"]; runs.present()) {
        node.runs_xlb = runs.Bool().value_or(true);
      }
      if (const Field zone = n["zone"]; zone.present()) {
        Zone(zone, node.zone);
      }
      nodes.push_back(std::move(node));
    }

    if (!name || !id) {
      return;
    }
    c.name = *name;
    c.id = static_cast<uint16_t>(*id);
    if (const auto it = cluster_where_.find(c.name); it != cluster_where_.end()) {
      f["name"].Fail("cluster \"" + c.name + "\" declared twice (first at " + it->second + ")");
      return;
    }
    if (const auto it = cluster_ids_.find(c.id); it != cluster_ids_.end()) {
      id_field.Fail("cluster id " + std::to_string(c.id) + " already belongs to cluster \"" +
                    it->second + "\"");
      return;
    }
    if (c.local) {
      if (!local_.empty()) {
        f["local"].Fail("only one cluster may be local, and \"" + local_ + "\" is");
        return;
      }
      local_ = c.name;
    }
    cluster_where_[c.name] = Where(doc, f);
    cluster_ids_[c.id] = c.name;
    std::vector<IpAddress> node_addresses;
    for (const NodeDecl& node : nodes) {
      node_addresses.insert(node_addresses.end(), node.addresses.begin(), node.addresses.end());
    }
    model_.SetNodeAddresses(c.name, std::move(node_addresses));
    nodes_[c.name] = std::move(nodes);
    model_.PutCluster(std::move(c));
  }

  void ParseServicePort(const Field& f, ServicePort& p, bool& ok) {
    if (!f.IsMap()) {
      ok = false;
      return;
    }
    f.OnlyFields({"name", "port", "targetPort", "protocol", "nodePort", "appProtocol"});
    if (auto name = f["name"].String()) {
      p.name = *name;
    }
    const Field port = f["port"];
    if (port.Required()) {
      if (auto v = port.IntegerIn(1, 65535)) {
        p.port = static_cast<uint16_t>(*v);
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto proto = f["protocol"].OneOf({"TCP", "UDP", "SCTP"})) {
      p.protocol = *ParseProtocol(*proto);
    }
    const Field target = f["targetPort"];
    if (target.present()) {
      const YAML::Node& n = target.node();
      const bool number_like = n.IsScalar() && n.Tag() != "!" && !n.Scalar().empty() &&
                               n.Scalar().find_first_not_of("0123456789") == std::string::npos;
      if (number_like) {
        if (auto v = target.IntegerIn(1, 65535)) {
          p.target_port = static_cast<uint16_t>(*v);
        }
      } else if (auto s = target.String()) {
        if (s->empty() || s->size() > 15) {
          target.Fail("expected a port number 1-65535 or a port name, got " + target.Describe());
        } else {
          p.target_port_name = *s;
        }
      }
    }
    if (auto v = f["nodePort"].IntegerIn(1, 65535)) {
      p.node_port = static_cast<uint16_t>(*v);
    }
    if (auto s = f["appProtocol"].String()) {
      p.app_protocol = *s;
    }
  }

  void ParseService(const yaml::Document& doc, const Field& f) {
    if (!f.IsMap()) {
      return;
    }
    f.OnlyFields({"name", "namespace", "type", "clusterIP", "clusterIPs", "clusterSetIPs",
                  "externalIPs", "loadBalancerIPs", "sessionAffinity", "sessionAffinityConfig",
                  "externalTrafficPolicy", "internalTrafficPolicy", "healthCheckNodePort",
                  "loadBalancerSourceRanges", "trafficDistribution", "ports"});
    Service s;
    const auto name = Label(f["name"]);
    const auto ns = Label(f["namespace"]);
    (void)f["type"].OneOf({"ClusterIP", "NodePort", "LoadBalancer"});

    const Field cluster_ip = f["clusterIP"];
    if (cluster_ip.present()) {
      if (cluster_ip.String().value_or("") != "None") {
        if (auto a = Address(cluster_ip)) {
          s.cluster_ips.push_back(*a);
        }
      }
    }
    for (const IpAddress& a : Addresses(f["clusterIPs"])) {
      if (std::find(s.cluster_ips.begin(), s.cluster_ips.end(), a) == s.cluster_ips.end()) {
        s.cluster_ips.push_back(a);
      }
    }
    s.clusterset_ips = Addresses(f["clusterSetIPs"]);
    s.external_ips = Addresses(f["externalIPs"]);
    s.load_balancer_ips = Addresses(f["loadBalancerIPs"]);

    if (auto a = f["sessionAffinity"].OneOf({"None", "ClientIP"})) {
      s.affinity = *a == "ClientIP" ? SessionAffinity::kClientIP : SessionAffinity::kNone;
    }
    const Field affinity_config = f["sessionAffinityConfig"];
    if (affinity_config.present() && affinity_config.IsMap()) {
      affinity_config.OnlyFields({"clientIP"});
      const Field client_ip = affinity_config["clientIP"];
      if (client_ip.present() && client_ip.IsMap()) {
        client_ip.OnlyFields({"timeoutSeconds"});
        if (auto t = client_ip["timeoutSeconds"].IntegerIn(1, 86400)) {
          s.affinity_timeout_s = static_cast<uint32_t>(*t);
        }
      }
    }
    s.external_policy = TrafficPolicy(f["externalTrafficPolicy"]);
    s.internal_policy = TrafficPolicy(f["internalTrafficPolicy"]);
    if (auto port = f["healthCheckNodePort"].IntegerIn(1, 65535)) {
      s.health_check_node_port = static_cast<uint16_t>(*port);
    }
    for (const Field& range : f["loadBalancerSourceRanges"].Items()) {
      const std::optional<std::string> text = range.String();
      const std::optional<IpPrefix> prefix = text ? IpPrefix::Parse(*text) : std::nullopt;
      if (text && !prefix) {
        range.Fail("expected a CIDR such as 198.18.0.0/15, without host bits, got " +
                   range.Describe());
      } else if (prefix && std::find(s.load_balancer_source_ranges.begin(),
                                     s.load_balancer_source_ranges.end(),
                                     *prefix) == s.load_balancer_source_ranges.end()) {
        s.load_balancer_source_ranges.push_back(*prefix);
      }
    }
    if (f["trafficDistribution"].OneOf({"PreferClose", "PreferSameZone"})) {
      s.topology = TopologyRouting::kPreferClose;
    }

    const std::vector<Field> ports = f["ports"].Items();
    std::set<std::string> port_names;
    std::set<std::pair<uint16_t, Protocol>> port_numbers;
    for (const Field& pf : ports) {
      ServicePort p;
      bool ok = true;
      ParseServicePort(pf, p, ok);
      if (!ok) {
        continue;
      }
      if (p.name.empty() && ports.size() > 1) {
        pf["name"].Fail("required when a service has more than one port");
        continue;
      }
      if (!p.name.empty() && !port_names.insert(p.name).second) {
        pf["name"].Fail("port name \"" + p.name + "\" used twice");
        continue;
      }
      if (!port_numbers.insert({p.port, p.protocol}).second) {
        pf["port"].Fail("port " + std::to_string(p.port) + "/" + std::string(ToString(p.protocol)) +
                        " declared twice");
        continue;
      }
      s.ports.push_back(std::move(p));
    }

    if (!name || !ns) {
      return;
    }
    s.name = {*ns, *name};
    if (const auto it = service_where_.find(s.name); it != service_where_.end()) {
      f["name"].Fail("service " + s.name.ToString() + " declared twice (first at " + it->second +
                     ")");
      return;
    }
    service_where_[s.name] = Where(doc, f);
    model_.PutService(std::move(s));
  }

  void ParseSlice(const Field& f) {
    if (!f.IsMap()) {
      return;
    }
    f.OnlyFields({"service", "namespace", "cluster", "addressType", "ports", "endpoints"});
    const auto name = Label(f["service"]);
    const auto ns = Label(f["namespace"]);
    const Field cluster_field = f["cluster"];
    const auto cluster = Label(cluster_field);
    std::optional<IpFamily> family;
    if (auto t = f["addressType"].OneOf({"IPv4", "IPv6"})) {
      family = *t == "IPv4" ? IpFamily::kIPv4 : IpFamily::kIPv6;
    }

    const Service* service = nullptr;
    if (name && ns) {
      service = model_.FindService({*ns, *name});
      if (service == nullptr) {
        f["service"].Fail("no service " + *ns + "/" + *name + " is declared");
      }
    }
    const std::vector<NodeDecl>* nodes = nullptr;
    if (cluster) {
      if (model_.FindCluster(*cluster) == nullptr) {
        cluster_field.Fail("no cluster \"" + *cluster + "\" is declared");
      } else {
        nodes = &nodes_[*cluster];
      }
    }

    std::vector<EndpointPort> ports;
    const Field ports_field = f["ports"];
    if (ports_field.present()) {
      std::set<std::pair<std::string, Protocol>> seen;
      for (const Field& pf : ports_field.Items()) {
        if (!pf.IsMap()) {
          continue;
        }
        pf.OnlyFields({"name", "port", "protocol"});
        EndpointPort p;
        p.name = pf["name"].String().value_or("");
        const Field port = pf["port"];
        std::optional<int64_t> number;
        if (port.Required()) {
          number = port.IntegerIn(1, 65535);
        }
        if (auto proto = pf["protocol"].OneOf({"TCP", "UDP", "SCTP"})) {
          p.protocol = *ParseProtocol(*proto);
        }
        if (!number) {
          continue;
        }
        p.port = static_cast<uint16_t>(*number);
        if (service != nullptr) {
          const bool named =
              std::any_of(service->ports.begin(), service->ports.end(), [&](const ServicePort& sp) {
                return sp.name == p.name && sp.protocol == p.protocol;
              });
          if (!named) {
            (p.name.empty() ? pf : pf["name"])
                .Fail("service " + service->name.ToString() + " has no " +
                      std::string(ToString(p.protocol)) + " port named \"" + p.name + "\"");
            continue;
          }
        }
        if (!seen.insert({p.name, p.protocol}).second) {
          pf["name"].Fail("port \"" + p.name + "\" given twice");
          continue;
        }
        ports.push_back(std::move(p));
      }
    } else if (service != nullptr) {
      for (const ServicePort& sp : service->ports) {
        if (sp.target_port == 0 && !sp.target_port_name.empty()) {
          ports_field.Fail("required: service " + service->name.ToString() + " port \"" + sp.name +
                           "\" has a named targetPort (\"" + sp.target_port_name +
                           "\"), so the endpoints' port number must be given");
          continue;
        }
        ports.push_back({sp.name, sp.target_port != 0 ? sp.target_port : sp.port, sp.protocol});
      }
    }

    std::vector<Endpoint> endpoints;
    for (const Field& ef : f["endpoints"].Items()) {
      if (!ef.IsMap()) {
        continue;
      }
      ef.OnlyFields({"addresses", "nodeName", "zone", "hints", "conditions"});
      Endpoint e;
      const Field addrs = ef["addresses"];
      bool ok = true;
      if (addrs.IsSeq()) {
        if (addrs.node().size() == 0) {
          addrs.Fail("expected at least one address");
          ok = false;
        }
        const std::vector<Field> items = addrs.Items();
        for (const Field& af : items) {
          auto a = Address(af);
          if (!a) {
            ok = false;
            continue;
          }
          if (family && a->family() != *family) {
            af.Fail("an " + std::string(ToString(a->family())) +
                    " address in a slice of addressType " + std::string(ToString(*family)));
            ok = false;
            continue;
          }
          e.addresses.push_back(*a);
        }
      } else {
        ok = false;
      }
      const Field node_name = ef["nodeName"];
      if (auto n = node_name.String()) {
        e.node_name = *n;
        if (nodes != nullptr) {
          const auto it = std::find_if(nodes->begin(), nodes->end(),
                                       [&](const NodeDecl& d) { return d.name == *n; });
          if (it == nodes->end()) {
            node_name.Fail("no node \"" + *n + "\" in cluster \"" + *cluster + "\"");
            ok = false;
          } else {
            if (!it->addresses.empty()) {
              e.node_address = it->addresses.front();
            }
            e.node_runs_xlb = it->runs_xlb;
            e.zone = it->zone;  // as the EndpointSlice controller copies the Node's label
          }
        }
      }
      if (const Field zone = ef["zone"]; zone.present()) {
        ok &= Zone(zone, e.zone);
      }
      if (const Field hints = ef["hints"]; hints.present() && hints.IsMap()) {
        hints.OnlyFields({"forZones"});
        for (const Field& hint : hints["forZones"].Items()) {
          if (!hint.IsMap()) {
            ok = false;
            continue;
          }
          hint.OnlyFields({"name"});
          std::string name;
          if (!hint["name"].Required() || !Zone(hint["name"], name)) {
            ok = false;
          } else if (std::find(e.zone_hints.begin(), e.zone_hints.end(), name) ==
                     e.zone_hints.end()) {
            e.zone_hints.push_back(std::move(name));
          }
        }
      }
      const Field cond = ef["conditions"];
      if (cond.present() && cond.IsMap()) {
        cond.OnlyFields({"ready", "serving", "terminating"});
        e.conditions.ready = cond["ready"].Bool();
        e.conditions.serving = cond["serving"].Bool();
        e.conditions.terminating = cond["terminating"].Bool();
      }
      if (ok) {
        endpoints.push_back(std::move(e));
      }
    }

    if (service == nullptr || nodes == nullptr) {
      return;
    }
    for (Endpoint& e : endpoints) {
      e.service = service->name;
      e.cluster = *cluster;
      e.ports = ports;
      model_.AddEndpoint(std::move(e));
    }
  }

  std::string file_;
  ConfigErrors errors_;
  Model model_;
  std::map<std::string, std::string> cluster_where_;
  std::map<uint16_t, std::string> cluster_ids_;
  std::map<std::string, std::vector<NodeDecl>> nodes_;
  std::map<NamespacedName, std::string> service_where_;
  std::string local_;
  std::string node_where_;  // where `node:` was declared, "" before
};

}  // namespace

ConfigResult<Model> ParseConfig(const std::string& file, const std::string& text) {
  return ConfigParser(file).Parse(text);
}

ConfigResult<Model> LoadConfigFile(const std::string& path) {
  XLB_ASSIGN_OR_RETURN(const std::string text, yaml::ReadFile(path));
  return ParseConfig(path, text);
}

}  // namespace xlb
