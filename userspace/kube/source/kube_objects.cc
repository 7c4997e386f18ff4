#include "userspace/kube/source/kube_objects.h"

#include <algorithm>
#include <set>
#include <utility>

#include "util/rfc3339.h"
#include "util/text.h"

namespace xlb::kube {
namespace {

using nlohmann::json;

// How a value reads in a message: "\"x\"", "70000", "an object"; long values are cut (at a
// character boundary: the message stays UTF-8).
std::string Describe(const json& v) {
  if (v.is_object()) {
    return "an object";
  }
  if (v.is_array()) {
    return "a list";
  }
  return AbbreviateUtf8(v.dump(), 64);
}

// "cluster-b: EndpointSlice production/api-7x2"
std::string ObjectPrefix(const ObjectSource& from, const std::optional<NamespacedName>& name) {
  std::string prefix =
      (from.cluster.empty() ? std::string("local cluster") : from.cluster) + ": " + from.kind + " ";
  if (!name) {
    return prefix + "(no name)";
  }
  return prefix + (name->ns.empty() ? name->name : name->ToString());
}

// The child `key` of an object, or nullptr when `parent` is no object or the key is absent or
// null (Kubernetes omits and nulls alike).
const json* Child(const json& parent, std::string_view key) {
  if (!parent.is_object()) {
    return nullptr;
  }
  const auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

std::string Index(std::string_view field, size_t i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

// Collects the problems of one object with the message prefix that names it.
class Problems {
 public:
  Problems(const ObjectSource& from, const json& object)
      : prefix_(ObjectPrefix(from, ObjectName(object))) {}

  void Add(std::string reason, std::string_view field, const std::string& message) {
    list_.push_back(
        ObjectProblem{std::move(reason), prefix_ + ": " + std::string(field) + ": " + message});
  }

  template <typename T>
  Mapped<T> Invalid(std::string reason, std::string_view field, const std::string& message) {
    Add(std::move(reason), field, message);
    return Take<T>(std::nullopt);
  }

  // Valid, but not for xlb: counted and logged as `reason` with `message`.
  template <typename T>
  Mapped<T> Ignored(const std::string& reason, std::string_view field, const std::string& message) {
    Add(reason, field, message);
    return Silent<T>(reason);
  }

  // Valid, and not for any proxy: not counted.
  template <typename T>
  Mapped<T> Silent(std::string reason) {
    Mapped<T> out;
    out.ignored = std::move(reason);
    out.problems = std::move(list_);
    return out;
  }

  template <typename T>
  Mapped<T> Take(std::optional<T> value) {
    Mapped<T> out;
    out.value = std::move(value);
    out.problems = std::move(list_);
    return out;
  }

 private:
  std::string prefix_;
  std::vector<ObjectProblem> list_;
};

// A string field: nullopt when absent (no problem) or not a string (reported).
std::optional<std::string> String(Problems& p, const json& parent, std::string_view key,
                                  std::string_view field, const char* reason = "bad_value") {
  const json* v = Child(parent, key);
  if (v == nullptr) {
    return std::nullopt;
  }
  if (!v->is_string()) {
    p.Add(reason, field, "expected a string, got " + Describe(*v));
    return std::nullopt;
  }
  return v->get<std::string>();
}

// An integer in [min, max]; JSON numbers with a fraction are not integers.
std::optional<int64_t> IntegerIn(const json& v, int64_t min, int64_t max) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      return std::nullopt;
    }
    const auto i = static_cast<int64_t>(u);
    return i >= min ? std::optional<int64_t>(i) : std::nullopt;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    return i >= min && i <= max ? std::optional<int64_t>(i) : std::nullopt;
  }
  return std::nullopt;
}

std::optional<uint16_t> PortNumber(Problems& p, const json& v, std::string_view field) {
  const std::optional<int64_t> n = IntegerIn(v, 1, 65535);
  if (!n) {
    p.Add("bad_port", field, "expected integer 1-65535, got " + Describe(v));
    return std::nullopt;
  }
  return static_cast<uint16_t>(*n);
}

std::optional<Protocol> ProtocolOf(Problems& p, const json& parent, std::string_view field) {
  const json* v = Child(parent, "protocol");
  if (v == nullptr) {
    return Protocol::kTcp;  // the API server's default
  }
  std::optional<Protocol> proto;
  if (v->is_string()) {
    proto = ParseProtocol(v->get<std::string>());
  }
  if (!proto) {
    p.Add("bad_protocol", std::string(field) + ".protocol",
          "expected one of TCP, UDP, SCTP, got " + Describe(*v));
  }
  return proto;
}

std::optional<IpAddress> Address(Problems& p, const json& v, std::string_view field,
                                 std::optional<IpFamily> family = std::nullopt) {
  std::optional<IpAddress> a;
  if (v.is_string()) {
    a = IpAddress::Parse(v.get<std::string>());
  }
  if (!a) {
    p.Add("bad_address", field,
          std::string("expected an ") +
              (family ? std::string(ToString(*family)) + " address" : "IPv4 or IPv6 address") +
              ", got " + Describe(v));
    return std::nullopt;
  }
  if (family && a->family() != *family) {
    p.Add("bad_address", field,
          "an " + std::string(ToString(a->family())) + " address in a slice of addressType " +
              std::string(ToString(*family)));
    return std::nullopt;
  }
  return a;
}

// A list of addresses; bad entries are reported and skipped, duplicates dropped.
std::vector<IpAddress> Addresses(Problems& p, const json& parent, std::string_view key,
                                 std::string_view field) {
  std::vector<IpAddress> out;
  const json* list = Child(parent, key);
  if (list == nullptr) {
    return out;
  }
  if (!list->is_array()) {
    p.Add("bad_address", field, "expected a list of addresses, got " + Describe(*list));
    return out;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    if (auto a = Address(p, (*list)[i], Index(field, i))) {
      if (std::find(out.begin(), out.end(), *a) == out.end()) {
        out.push_back(*a);
      }
    }
  }
  return out;
}

// sessionAffinity and sessionAffinityConfig of a Service spec or a ServiceImport.
void Affinity(Problems& p, const json& spec, std::string_view base, SessionAffinity& affinity,
              uint32_t& timeout) {
  const std::string prefix = base.empty() ? "" : std::string(base) + ".";
  if (auto a = String(p, spec, "sessionAffinity", prefix + "sessionAffinity")) {
    if (*a == "ClientIP") {
      affinity = SessionAffinity::kClientIP;
    } else if (*a != "None") {
      p.Add("bad_value", prefix + "sessionAffinity",
            "expected one of None, ClientIP, got " + Describe(json(*a)));
    }
  }
  const json* config = Child(spec, "sessionAffinityConfig");
  const json* client_ip = config != nullptr ? Child(*config, "clientIP") : nullptr;
  const json* t = client_ip != nullptr ? Child(*client_ip, "timeoutSeconds") : nullptr;
  if (t != nullptr) {
    if (auto v = IntegerIn(*t, 1, 86400)) {
      timeout = static_cast<uint32_t>(*v);
    } else {
      p.Add("bad_value", prefix + "sessionAffinityConfig.clientIP.timeoutSeconds",
            "expected integer 1-86400, got " + Describe(*t) + "; using 10800");
    }
  }
}

// The ports of a Service spec (with_target: targetPort, nodePort) or of a ServiceImport.
std::vector<ServicePort> ServicePorts(Problems& p, const json& spec, std::string_view base,
                                      bool with_target) {
  std::vector<ServicePort> out;
  const std::string field = base.empty() ? "ports" : std::string(base) + ".ports";
  const json* list = Child(spec, "ports");
  if (list == nullptr) {
    return out;
  }
  if (!list->is_array()) {
    p.Add("bad_port", field, "expected a list, got " + Describe(*list));
    return out;
  }
  std::set<std::pair<uint16_t, Protocol>> numbers;
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    const std::string at = Index(field, i);
    if (!item.is_object()) {
      p.Add("bad_port", at, "expected an object, got " + Describe(item));
      continue;
    }
    ServicePort port;
    const json* number = Child(item, "port");
    if (number == nullptr) {
      p.Add("bad_port", at + ".port", "required field is missing");
      continue;
    }
    const std::optional<uint16_t> n = PortNumber(p, *number, at + ".port");
    const std::optional<Protocol> proto = ProtocolOf(p, item, at);
    if (!n || !proto) {
      continue;
    }
    port.port = *n;
    port.protocol = *proto;
    if (auto name = String(p, item, "name", at + ".name")) {
      port.name = *name;
    }
    if (auto app = String(p, item, "appProtocol", at + ".appProtocol")) {
      port.app_protocol = *app;
    }
    if (with_target) {
      if (const json* target = Child(item, "targetPort")) {
        if (target->is_string() && !target->get<std::string>().empty() &&
            target->get<std::string>().size() <= 15) {
          port.target_port_name = target->get<std::string>();
        } else if (auto t = IntegerIn(*target, 1, 65535)) {
          port.target_port = static_cast<uint16_t>(*t);
        } else {
          // Informational only (the endpoints carry the resolved port): keep the port.
          p.Add("bad_port", at + ".targetPort",
                "expected a port number 1-65535 or a port name, got " + Describe(*target));
        }
      }
      if (const json* node_port = Child(item, "nodePort")) {
        if (auto np = IntegerIn(*node_port, 0, 65535)) {
          port.node_port = static_cast<uint16_t>(*np);
        } else {
          p.Add("bad_port", at + ".nodePort",
                "expected integer 1-65535, got " + Describe(*node_port) +
                    "; the port is served without a nodePort");
        }
      }
    }
    if (!numbers.insert({port.port, port.protocol}).second) {
      p.Add("duplicate_port", at + ".port",
            "port " + std::to_string(port.port) + "/" + std::string(ToString(port.protocol)) +
                " given twice; the first one is used");
      continue;
    }
    if (!names.insert(port.name).second) {
      p.Add("duplicate_port", at + ".name",
            "port name \"" + port.name + "\" given twice; the first one is used");
      continue;
    }
    out.push_back(std::move(port));
  }
  return out;
}

// The entry `key` of metadata.labels or metadata.annotations (`map`), or nullptr.
const json* MetaEntry(const json& object, std::string_view map, std::string_view key) {
  const json* meta = Child(object, "metadata");
  const json* entries = meta != nullptr ? Child(*meta, map) : nullptr;
  return entries != nullptr ? Child(*entries, key) : nullptr;
}

// A label value of metadata.labels, "" when absent.
std::string Label(const json& object, std::string_view key) {
  const json* v = MetaEntry(object, "labels", key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

std::string AnnotationField(std::string_view key) {
  return "metadata.annotations[" + std::string(key) + "]";
}

// spec.externalTrafficPolicy or spec.internalTrafficPolicy; absent: Cluster.
ServiceTrafficPolicy TrafficPolicy(Problems& p, const json& spec, const char* key) {
  const std::string field = std::string("spec.") + key;
  const std::optional<std::string> v = String(p, spec, key, field);
  if (!v || *v == "Cluster") {
    return ServiceTrafficPolicy::kCluster;
  }
  if (*v == "Local") {
    return ServiceTrafficPolicy::kLocal;
  }
  // "Global" is Cluster's legacy name, which old writers still send.
  if (*v == "Global" && std::string_view(key) == "externalTrafficPolicy") {
    return ServiceTrafficPolicy::kCluster;
  }
  p.Add("bad_value", field,
        "expected one of Cluster, Local, got " + Describe(json(*v)) + "; read as Cluster");
  return ServiceTrafficPolicy::kCluster;
}

// One entry of the source ranges, spaces trimmed (the API server lets them through and
// kube-proxy trims them). With host bits set it is read as its network, as kube-proxy's
// iptables (-s) and IPVS (net.ParseCIDR) read it, and reported.
std::optional<IpPrefix> SourceRange(Problems& p, std::string_view text, const std::string& field) {
  const std::string trimmed(TrimAsciiSpace(text));
  if (std::optional<IpPrefix> prefix = IpPrefix::Parse(trimmed)) {
    return prefix;
  }
  // What IpPrefix::Parse refuses besides malformed text: host bits. Its network parses.
  const size_t slash = trimmed.find('/');
  if (const std::optional<IpAddress> address =
          slash == std::string::npos ? std::nullopt : IpAddress::Parse(trimmed.substr(0, slash))) {
    const std::string digits = trimmed.substr(slash + 1);
    const bool number = !digits.empty() && digits.size() <= 3 &&
                        digits.find_first_not_of("0123456789") == std::string::npos &&
                        (digits.size() == 1 || digits.front() != '0');
    const int length = number ? std::stoi(digits) : -1;
    if (length >= 0 && length <= (address->family() == IpFamily::kIPv4 ? 32 : 128)) {
      const IpPrefix network{address->Masked(static_cast<uint8_t>(length)),
                             static_cast<uint8_t>(length)};
      p.Add(
          "bad_address", field,
          Describe(json(std::string(text))) + " has host bits set; read as " + network.ToString());
      return network;
    }
  }
  p.Add("bad_address", field,
        "expected a CIDR such as 198.18.0.0/15, got " + Describe(json(std::string(text))) +
            "; skipped");
  return std::nullopt;
}

// spec.loadBalancerSourceRanges, or when it is empty the annotation (comma separated), as
// kube-proxy reads them. nullopt (reported) when ranges are given and none is usable.
std::optional<std::vector<IpPrefix>> SourceRanges(Problems& p, const json& object,
                                                  const json& spec) {
  std::vector<IpPrefix> out;
  size_t given = 0;
  const auto add = [&](std::optional<IpPrefix> prefix) {
    ++given;
    if (prefix && std::find(out.begin(), out.end(), *prefix) == out.end()) {
      out.push_back(*prefix);
    }
  };
  const json* list = Child(spec, "loadBalancerSourceRanges");
  std::string field = "spec.loadBalancerSourceRanges";
  if (list != nullptr && !list->is_array()) {
    p.Add("bad_address", field, "expected a list of CIDRs, got " + Describe(*list));
    ++given;
  } else if (list != nullptr && !list->empty()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const json& item = (*list)[i];
      if (!item.is_string()) {
        p.Add("bad_address", Index(field, i), "expected a CIDR, got " + Describe(item));
        add(std::nullopt);
        continue;
      }
      add(SourceRange(p, item.get<std::string>(), Index(field, i)));
    }
  } else if (const json* annotation = MetaEntry(object, "annotations", kSourceRangesAnnotation)) {
    field = AnnotationField(kSourceRangesAnnotation);
    if (!annotation->is_string()) {
      p.Add("bad_address", field, "expected a string, got " + Describe(*annotation));
      ++given;
    } else {
      const std::string& text = annotation->get_ref<const std::string&>();
      size_t start = 0;
      while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view entry = std::string_view(text).substr(start, comma - start);
        if (!TrimAsciiSpace(entry).empty()) {
          add(SourceRange(p, entry, field));
        }
        start = comma + 1;
      }
    }
  }
  if (given > 0 && out.empty()) {
    p.Add("bad_address", field,
          "none of the source ranges is usable; the Service is not taken, as an empty list "
          "would admit every source");
    return std::nullopt;
  }
  return out;
}

// spec.trafficDistribution and the topology annotations, as the EndpointSlice controller and
// kube-proxy read them (pkg/proxy/topology.go: topology only when the service asks for it).
TopologyRouting Topology(Problems& p, const json& object, const json& spec) {
  TopologyRouting out = TopologyRouting::kNone;
  if (const std::optional<std::string> td =
          String(p, spec, "trafficDistribution", "spec.trafficDistribution")) {
    if (*td == "PreferClose" || *td == "PreferSameZone") {
      out = TopologyRouting::kPreferClose;
    } else if (*td == "PreferSameNode") {
      out = TopologyRouting::kPreferClose;
      p.Add("not_honoured", "spec.trafficDistribution",
            "PreferSameNode is not honoured: read as PreferSameZone (the EndpointSlice "
            "controller writes zone hints for it too)");
    } else {
      p.Add("not_honoured", "spec.trafficDistribution",
            "expected PreferClose or PreferSameZone, got " + Describe(json(*td)) +
                "; not honoured: endpoints of every zone");
    }
  }
  // The deprecated annotation wins when it is present, whatever its value.
  std::string_view key = kTopologyAwareHintsAnnotation;
  const json* mode = MetaEntry(object, "annotations", key);
  if (mode == nullptr) {
    key = kTopologyModeAnnotation;
    mode = MetaEntry(object, "annotations", key);
  }
  if (mode != nullptr) {
    const std::string value = mode->is_string() ? mode->get<std::string>() : std::string("?");
    if (value == "Auto" || value == "auto") {
      out = TopologyRouting::kPreferClose;
    } else if (!value.empty() && value != "Disabled" && value != "disabled") {
      p.Add("not_honoured", AnnotationField(key),
            "expected Auto or Disabled, got " + Describe(*mode) +
                "; not honoured: endpoints of every zone");
    }
  }
  return out;
}

// endpoints[].hints.forZones[].name; hints.forNodes (PreferSameNode) is not read.
std::vector<std::string> ZoneHints(Problems& p, const json& endpoint, const std::string& at) {
  std::vector<std::string> out;
  const json* hints = Child(endpoint, "hints");
  if (hints == nullptr) {
    return out;
  }
  const json* zones = Child(*hints, "forZones");
  if (!hints->is_object() || (zones != nullptr && !zones->is_array())) {
    const json& bad = hints->is_object() ? *zones : *hints;
    p.Add("bad_hint", at + (hints->is_object() ? ".hints.forZones" : ".hints"),
          "expected " + std::string(hints->is_object() ? "a list" : "an object") + ", got " +
              Describe(bad) + "; no zone hints");
    return out;
  }
  for (size_t i = 0; zones != nullptr && i < zones->size(); ++i) {
    const std::string field = Index(at + ".hints.forZones", i) + ".name";
    const json* zone = Child((*zones)[i], "name");
    if (zone == nullptr || !zone->is_string() || zone->get_ref<const std::string&>().empty()) {
      p.Add(
          "bad_hint", field,
          "expected a zone name, got " + (zone ? Describe(*zone) : "nothing") + "; no zone hints");
      return {};
    }
    if (std::find(out.begin(), out.end(), zone->get<std::string>()) == out.end()) {
      out.push_back(zone->get<std::string>());
    }
  }
  return out;
}

std::optional<bool> Condition(Problems& p, const json& conditions, std::string_view key,
                              std::string_view at, bool& ok) {
  const json* v = Child(conditions, key);
  if (v == nullptr) {
    return std::nullopt;  // nil: the EndpointSlice default applies
  }
  if (!v->is_boolean()) {
    p.Add("bad_condition", std::string(at) + "." + std::string(key),
          "expected true, false or null, got " + Describe(*v));
    ok = false;
    return std::nullopt;
  }
  return v->get<bool>();
}

}  // namespace

ObjectProblem ProblemWith(const ObjectSource& from, const NamespacedName& name, std::string reason,
                          std::string_view field, std::string_view message) {
  return ObjectProblem{std::move(reason), ObjectPrefix(from, name) + ": " + std::string(field) +
                                              ": " + std::string(message)};
}

std::optional<NamespacedName> ObjectName(const json& object) {
  const json* meta = Child(object, "metadata");
  if (meta == nullptr) {
    return std::nullopt;
  }
  const json* name = Child(*meta, "name");
  if (name == nullptr || !name->is_string() || name->get<std::string>().empty()) {
    return std::nullopt;
  }
  const json* ns = Child(*meta, "namespace");
  return NamespacedName{ns != nullptr && ns->is_string() ? ns->get<std::string>() : "",
                        name->get<std::string>()};
}

namespace {

// The object's namespace/name, required for namespaced kinds, as DNS-1123 labels (the names
// of services and namespaces; a slice's own name may be longer, a subdomain).
template <typename T>
std::optional<NamespacedName> RequireName(Problems& p, const json& object, bool namespaced,
                                          bool label_name, Mapped<T>& fail) {
  if (!object.is_object()) {
    fail = p.Invalid<T>("bad_object", "(object)", "expected an object, got " + Describe(object));
    return std::nullopt;
  }
  std::optional<NamespacedName> name = ObjectName(object);
  if (!name) {
    fail = p.Invalid<T>("missing_name", "metadata.name", "required field is missing");
    return std::nullopt;
  }
  if (namespaced && !IsDnsLabel(name->ns)) {
    fail = p.Invalid<T>("missing_name", "metadata.namespace",
                        "expected a DNS-1123 label, got " + Describe(json(name->ns)));
    return std::nullopt;
  }
  if (label_name && !IsDnsLabel(name->name)) {
    fail = p.Invalid<T>("bad_name", "metadata.name",
                        "expected a DNS-1123 label, got " + Describe(json(name->name)));
    return std::nullopt;
  }
  return name;
}

// The spec object, or an empty object when absent; nullptr (reported) when of another type.
const json* Spec(Problems& p, const json& object, const json& empty) {
  const auto it = object.find("spec");
  if (it == object.end() || it->is_null()) {
    return &empty;
  }
  if (!it->is_object()) {
    p.Add("bad_spec", "spec", "expected an object, got " + Describe(*it));
    return nullptr;
  }
  return &*it;
}

}  // namespace

Mapped<Service> MapService(const ObjectSource& from, const json& object) {
  Problems p(from, object);
  Mapped<Service> fail;
  const auto name = RequireName(p, object, /*namespaced=*/true, /*label_name=*/true, fail);
  if (!name) {
    return fail;
  }
  const json empty = json::object();
  const json* spec = Spec(p, object, empty);
  if (spec == nullptr) {
    return p.Take<Service>(std::nullopt);
  }
  Service s;
  s.name = *name;
  if (const json* proxy = MetaEntry(object, "labels", kServiceProxyNameLabel)) {
    return p.Ignored<Service>("service_proxy_name",
                              "metadata.labels[" + std::string(kServiceProxyNameLabel) + "]",
                              "set to " + Describe(*proxy) +
                                  ": the service of another proxy; skipped, as kube-proxy "
                                  "skips it");
  }
  const std::string type = String(p, *spec, "type", "spec.type").value_or("ClusterIP");
  if (type == "ExternalName") {
    return p.Ignored<Service>("external_name", "spec.type",
                              "ExternalName: a DNS alias that no proxy serves; skipped");
  }
  if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer") {
    p.Add("bad_value", "spec.type",
          "expected one of ClusterIP, NodePort, LoadBalancer, ExternalName, got " +
              Describe(json(type)) + "; read as ClusterIP");
  }

  // "None" (headless) and "" (no IP yet) are no address.
  bool headless = false;
  const auto cluster_ip = [&](const json& v, const std::string& field) {
    if (v.is_string() && (v.get<std::string>() == "None" || v.get<std::string>().empty())) {
      headless |= v.get<std::string>() == "None";
      return;
    }
    if (auto a = Address(p, v, field)) {
      if (std::find(s.cluster_ips.begin(), s.cluster_ips.end(), *a) == s.cluster_ips.end()) {
        s.cluster_ips.push_back(*a);
      }
    }
  };
  if (const json* ip = Child(*spec, "clusterIP")) {
    cluster_ip(*ip, "spec.clusterIP");
  }
  if (const json* ips = Child(*spec, "clusterIPs")) {
    if (!ips->is_array()) {
      p.Add("bad_address", "spec.clusterIPs",
            "expected a list of addresses, got " + Describe(*ips));
    } else {
      for (size_t i = 0; i < ips->size(); ++i) {
        cluster_ip((*ips)[i], Index("spec.clusterIPs", i));
      }
    }
  }
  s.external_ips = Addresses(p, *spec, "externalIPs", "spec.externalIPs");
  if (headless && !s.external_ips.empty()) {
    p.Add("not_honoured", "spec.externalIPs",
          "a headless service (clusterIP None) is not proxied, as kube-proxy skips it; its "
          "externalIPs are not served");
    s.external_ips.clear();
  }
  if (const json* status = Child(object, "status")) {
    const json* lb = Child(*status, "loadBalancer");
    const json* ingress = lb != nullptr ? Child(*lb, "ingress") : nullptr;
    if (ingress != nullptr && ingress->is_array()) {
      for (size_t i = 0; i < ingress->size(); ++i) {
        const std::string at = Index("status.loadBalancer.ingress", i);
        const json* ip = Child((*ingress)[i], "ip");
        if (ip == nullptr) {
          continue;  // a hostname-only ingress (a cloud load balancer's DNS name)
        }
        // ipMode Proxy (KEP-1860): the load balancer proxies to the nodes, so packets never
        // carry its address; kube-proxy leaves the address alone, so that in-cluster clients
        // reach the load balancer itself.
        const std::optional<std::string> mode = String(p, (*ingress)[i], "ipMode", at + ".ipMode");
        if (mode == "Proxy") {
          continue;
        }
        if (mode && *mode != "VIP") {
          p.Add("bad_value", at + ".ipMode",
                "expected one of VIP, Proxy, got " + Describe(json(*mode)) + "; read as VIP");
        }
        if (auto a = Address(p, *ip, at + ".ip")) {
          if (std::find(s.load_balancer_ips.begin(), s.load_balancer_ips.end(), *a) ==
              s.load_balancer_ips.end()) {
            s.load_balancer_ips.push_back(*a);
          }
        }
      }
    }
  }
  s.ports = ServicePorts(p, *spec, "spec", /*with_target=*/true);
  Affinity(p, *spec, "spec", s.affinity, s.affinity_timeout_s);
  s.external_policy = TrafficPolicy(p, *spec, "externalTrafficPolicy");
  s.internal_policy = TrafficPolicy(p, *spec, "internalTrafficPolicy");
  if (const json* port = Child(*spec, "healthCheckNodePort")) {
    // 0 is what some writers put for "none".
    if (!(port->is_number_integer() && port->get<int64_t>() == 0)) {
      s.health_check_node_port = PortNumber(p, *port, "spec.healthCheckNodePort").value_or(0);
    }
  }
  std::optional<std::vector<IpPrefix>> ranges = SourceRanges(p, object, *spec);
  if (!ranges) {
    return p.Take<Service>(std::nullopt);
  }
  s.load_balancer_source_ranges = std::move(*ranges);
  s.topology = Topology(p, object, *spec);
  return p.Take<Service>(std::move(s));
}

Mapped<SliceInfo> MapEndpointSlice(const ObjectSource& from, const json& object) {
  Problems p(from, object);
  Mapped<SliceInfo> fail;
  const auto name = RequireName(p, object, /*namespaced=*/true, /*label_name=*/false, fail);
  if (!name) {
    return fail;
  }
  SliceInfo slice;
  slice.name = *name;
  slice.source_cluster = Label(object, kMcsSourceClusterLabel);
  // Only a latency measurement hangs on it, as in kube-proxy: a bad value is not a problem
  // with the endpoints, and leaves this change unmeasured.
  if (const json* t = MetaEntry(object, "annotations", kTriggerTimeAnnotation);
      t != nullptr && t->is_string()) {
    slice.trigger_time = ParseRfc3339(t->get<std::string>());
  }
  std::string_view label_key = kServiceNameLabel;
  if (!slice.source_cluster.empty()) {
    if (!IsDnsLabel(slice.source_cluster)) {
      return p.Invalid<SliceInfo>(
          "bad_label", "metadata.labels[" + std::string(kMcsSourceClusterLabel) + "]",
          "expected a DNS-1123 label, got " + Describe(json(slice.source_cluster)));
    }
    slice.service = Label(object, kMcsServiceNameLabel);
    label_key = kMcsServiceNameLabel;
    if (slice.service.empty()) {
      slice.service = Label(object, kServiceNameLabel);
      label_key = kServiceNameLabel;
    }
  } else {
    slice.service = Label(object, kServiceNameLabel);
  }
  if (slice.service.empty()) {
    // A slice of no service (a controller's own use of the API): not for a proxy.
    return p.Ignored<SliceInfo>("no_service_label",
                                "metadata.labels[" + std::string(kServiceNameLabel) + "]",
                                "no such label: the endpoints of no service; skipped");
  }
  if (!IsDnsLabel(slice.service)) {
    return p.Invalid<SliceInfo>("bad_label", "metadata.labels[" + std::string(label_key) + "]",
                                "expected a DNS-1123 label, got " + Describe(json(slice.service)));
  }
  const json* type = Child(object, "addressType");
  if (type != nullptr && type->is_string() && type->get<std::string>() == "FQDN") {
    return p.Ignored<SliceInfo>("fqdn", "addressType",
                                "FQDN: names, which no proxy can forward to; skipped");
  }
  if (type != nullptr && type->is_string() && type->get<std::string>() == "IPv6") {
    slice.family = IpFamily::kIPv6;
  } else if (type == nullptr || !type->is_string() || type->get<std::string>() != "IPv4") {
    return p.Invalid<SliceInfo>(
        "bad_address_type", "addressType",
        "expected one of IPv4, IPv6, FQDN, got " + (type ? Describe(*type) : "nothing"));
  }

  if (const json* ports = Child(object, "ports")) {
    if (!ports->is_array()) {
      return p.Invalid<SliceInfo>("bad_port", "ports", "expected a list, got " + Describe(*ports));
    }
    std::set<std::pair<std::string, Protocol>> seen;
    for (size_t i = 0; i < ports->size(); ++i) {
      const json& item = (*ports)[i];
      const std::string at = Index("ports", i);
      if (!item.is_object()) {
        p.Add("bad_port", at, "expected an object, got " + Describe(item));
        continue;
      }
      EndpointPort port;
      port.name = String(p, item, "name", at + ".name").value_or("");
      const json* number = Child(item, "port");
      if (number == nullptr) {
        // Allowed by the API ("all ports"), but no proxy can DNAT to it: kube-proxy skips it.
        p.Add("port_unset", at + ".port", "no port number (\"all ports\"); skipped");
        continue;
      }
      const std::optional<uint16_t> n = PortNumber(p, *number, at + ".port");
      const std::optional<Protocol> proto = ProtocolOf(p, item, at);
      if (!n || !proto) {
        continue;
      }
      port.port = *n;
      port.protocol = *proto;
      if (!seen.insert({port.name, port.protocol}).second) {
        p.Add("duplicate_port", at + ".name",
              "port \"" + port.name + "\"/" + std::string(ToString(port.protocol)) +
                  " given twice; the first one is used");
        continue;
      }
      slice.ports.push_back(std::move(port));
    }
  }

  if (const json* endpoints = Child(object, "endpoints")) {
    if (!endpoints->is_array()) {
      return p.Invalid<SliceInfo>("bad_endpoint", "endpoints",
                                  "expected a list, got " + Describe(*endpoints));
    }
    slice.endpoints.reserve(endpoints->size());
    for (size_t i = 0; i < endpoints->size(); ++i) {
      const json& item = (*endpoints)[i];
      const std::string at = Index("endpoints", i);
      if (!item.is_object()) {
        p.Add("bad_endpoint", at, "expected an object, got " + Describe(item));
        continue;
      }
      SliceEndpoint e;
      bool ok = true;
      const json* addresses = Child(item, "addresses");
      if (addresses == nullptr || !addresses->is_array() || addresses->empty()) {
        p.Add("bad_address", at + ".addresses",
              "expected a list of at least one address, got " +
                  (addresses ? Describe(*addresses) : "nothing"));
        continue;
      }
      for (size_t k = 0; k < addresses->size(); ++k) {
        auto a = Address(p, (*addresses)[k], Index(at + ".addresses", k), slice.family);
        if (!a) {
          ok = false;
          break;
        }
        e.addresses.push_back(*a);
      }
      if (const std::optional<std::string> node = String(p, item, "nodeName", at + ".nodeName")) {
        e.node_name = *node;
      } else if (Child(item, "nodeName") != nullptr) {
        ok = false;
      }
      // Topology is a preference: a bad zone or hint loses the preference, not the endpoint.
      e.zone = String(p, item, "zone", at + ".zone").value_or("");
      e.zone_hints = ZoneHints(p, item, at);
      if (const json* conditions = Child(item, "conditions")) {
        if (!conditions->is_object()) {
          p.Add("bad_condition", at + ".conditions",
                "expected an object, got " + Describe(*conditions));
          ok = false;
        } else {
          const std::string c = at + ".conditions";
          e.conditions.ready = Condition(p, *conditions, "ready", c, ok);
          e.conditions.serving = Condition(p, *conditions, "serving", c, ok);
          e.conditions.terminating = Condition(p, *conditions, "terminating", c, ok);
        }
      }
      if (ok) {
        slice.endpoints.push_back(std::move(e));
      }
    }
  }
  return p.Take<SliceInfo>(std::move(slice));
}

Mapped<ImportInfo> MapServiceImport(const ObjectSource& from, const json& object) {
  Problems p(from, object);
  Mapped<ImportInfo> fail;
  const auto name = RequireName(p, object, /*namespaced=*/true, /*label_name=*/true, fail);
  if (!name) {
    return fail;
  }
  const json* spec_it = Child(object, "spec");
  if (spec_it != nullptr && !spec_it->is_object()) {
    return p.Invalid<ImportInfo>("bad_spec", "spec",
                                 "expected an object, got " + Describe(*spec_it));
  }
  const json& body = spec_it != nullptr ? *spec_it : object;
  const std::string base = spec_it != nullptr ? "spec" : "";
  const std::string dot = base.empty() ? "" : base + ".";
  ImportInfo import;
  import.name = *name;
  import.ips = Addresses(p, body, "ips", dot + "ips");
  const std::optional<std::string> type = String(p, body, "type", dot + "type");
  if (type == "Headless") {
    import.headless = true;
  } else if (type != "ClusterSetIP") {
    // v1alpha1 requires it; read a missing or unknown type from whether there are IPs.
    import.headless = import.ips.empty();
    p.Add("bad_value", dot + "type",
          "expected one of ClusterSetIP, Headless, got " +
              (type ? Describe(json(*type)) : std::string("nothing")) + "; read as " +
              (import.headless ? "Headless" : "ClusterSetIP"));
  }
  if (import.headless) {
    import.ips.clear();
  }
  import.ports = ServicePorts(p, body, base, /*with_target=*/false);
  Affinity(p, body, base, import.affinity, import.affinity_timeout_s);
  return p.Take<ImportInfo>(std::move(import));
}

Mapped<NodeInfo> MapNode(const ObjectSource& from, const json& object) {
  Problems p(from, object);
  Mapped<NodeInfo> fail;
  const auto name = RequireName(p, object, /*namespaced=*/false, /*label_name=*/false, fail);
  if (!name) {
    return fail;
  }
  NodeInfo node;
  node.name = name->name;
  if (const json* metadata = Child(object, "metadata"); metadata != nullptr) {
    if (const json* labels = Child(*metadata, "labels"); labels != nullptr && labels->is_object()) {
      const auto label = labels->find(kDatapathLabel);
      node.runs_xlb = label == labels->end() || *label != "none";
    }
  }
  node.zone = Label(object, kZoneLabel);
  std::vector<IpAddress> internal;
  std::vector<IpAddress> external;
  const json* status = Child(object, "status");
  const json* list = status != nullptr ? Child(*status, "addresses") : nullptr;
  if (list != nullptr && list->is_array()) {
    for (size_t i = 0; i < list->size(); ++i) {
      const json& item = (*list)[i];
      const std::string at = Index("status.addresses", i);
      const std::string type = String(p, item, "type", at + ".type").value_or("");
      if (type != "InternalIP" && type != "ExternalIP") {
        continue;  // Hostname, InternalDNS, ExternalDNS
      }
      const json* address = Child(item, "address");
      if (address == nullptr) {
        p.Add("bad_address", at + ".address", "required field is missing");
        continue;
      }
      if (auto a = Address(p, *address, at + ".address")) {
        (type == "InternalIP" ? internal : external).push_back(*a);
      }
    }
  } else if (list != nullptr) {
    p.Add("bad_address", "status.addresses", "expected a list, got " + Describe(*list));
  }
  if (!internal.empty()) {
    node.tunnel_address = internal.front();
  } else if (!external.empty()) {
    node.tunnel_address = external.front();
  }
  for (const auto* l : {&internal, &external}) {
    for (const IpAddress& a : *l) {
      if (std::find(node.addresses.begin(), node.addresses.end(), a) == node.addresses.end()) {
        node.addresses.push_back(a);
      }
    }
  }
  return p.Take<NodeInfo>(std::move(node));
}

Mapped<std::string> MapClusterProperty(const ObjectSource& from, const json& object) {
  Problems p(from, object);
  Mapped<std::string> fail;
  const auto name = RequireName(p, object, /*namespaced=*/false, /*label_name=*/false, fail);
  if (!name) {
    return fail;
  }
  if (name->name != kClusterIdProperty) {
    return p.Silent<std::string>("other_property");
  }
  const json* spec = Child(object, "spec");
  const json* value = spec != nullptr ? Child(*spec, "value") : nullptr;
  if (value == nullptr || !value->is_string() || !IsDnsLabel(value->get<std::string>())) {
    return p.Invalid<std::string>("bad_value", "spec.value",
                                  "expected the cluster's name, a DNS-1123 label, got " +
                                      (value ? Describe(*value) : std::string("nothing")));
  }
  return p.Take<std::string>(value->get<std::string>());
}

}  // namespace xlb::kube
