#include "userspace/policy/policy_parse.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "userspace/model/model.h"
#include "userspace/model/yaml_fields.h"

namespace xlb {
namespace {

using yaml::Field;

constexpr int64_t kMaxWeight = std::numeric_limits<int32_t>::max();  // Istio's int32

bool IsIstioVersion(std::string_view api) {
  return api == "networking.istio.io/v1" || api == "networking.istio.io/v1beta1" ||
         api == "networking.istio.io/v1alpha3";
}

class DocumentParser {
 public:
  DocumentParser(const yaml::Document& doc, PolicySet& out) : doc_(doc), out_(out) {}

  void Parse(const Field& root) {
    if (!root.IsMap()) {
      return;
    }
    root.OnlyFields({"apiVersion", "kind", "metadata", "spec", "status"});
    const Field api_field = root["apiVersion"];
    const Field kind_field = root["kind"];
    const bool have_api = api_field.Required();
    const bool have_kind = kind_field.Required();
    if (!have_api || !have_kind) {
      return;
    }
    const auto api = api_field.String();
    const auto kind = kind_field.String();
    if (!api || !kind) {
      return;
    }
    const bool istio_api = IsIstioVersion(*api);
    const bool xlb_api = *api == kPolicyApiVersion;
    if (!istio_api && !xlb_api) {
      api_field.Fail(
          "unknown apiVersion: expected networking.istio.io/v1, networking.istio.io/v1beta1, "
          "networking.istio.io/v1alpha3 or xlb.dev/v1alpha1, got " +
          api_field.Describe());
      return;
    }
    if (*kind == "VirtualService" || *kind == "DestinationRule") {
      if (!istio_api) {
        api_field.Fail("a " + *kind + " is networking.istio.io/v1, v1beta1 or v1alpha3, got " +
                       api_field.Describe());
        return;
      }
    } else if (*kind == "TrafficPolicy") {
      if (!xlb_api) {
        api_field.Fail("a TrafficPolicy is xlb.dev/v1alpha1, got " + api_field.Describe());
        return;
      }
    } else {
      kind_field.Fail(std::string("unknown kind: expected ") +
                      (istio_api ? "VirtualService or DestinationRule for " + *api
                                 : std::string("TrafficPolicy for xlb.dev/v1alpha1")) +
                      ", got " + kind_field.Describe());
      return;
    }

    PolicyMeta meta;
    meta.kind = *kind;
    meta.ref = Ref(root);
    std::optional<std::string> spillover;
    if (!ParseMeta(root["metadata"], meta, spillover)) {
      return;
    }
    const Field spec = root["spec"];
    if (!spec.IsMap()) {
      return;
    }
    if (*kind == "VirtualService") {
      ParseVirtualService(spec, std::move(meta), spillover);
    } else if (*kind == "DestinationRule") {
      if (spillover) {
        root["metadata"]["annotations"][kSpilloverAnnotation].Fail(
            "applies to VirtualServices and TrafficPolicies only");
      }
      ParseDestinationRule(spec, std::move(meta));
    } else {
      if (spillover) {
        root["metadata"]["annotations"][kSpilloverAnnotation].Fail(
            "a TrafficPolicy says spec.spillover instead");
      }
      ParseTrafficPolicy(spec, std::move(meta));
    }
  }

 private:
  SourceRef Ref(const Field& f) const {
    return SourceRef{doc_.file(), doc_.index(), f.path(), f.line()};
  }

  bool ParseMeta(const Field& m, PolicyMeta& meta, std::optional<std::string>& spillover) {
    if (!m.IsMap()) {
      return false;
    }
    m.OnlyFields({"name", "namespace", "labels", "annotations", "uid", "resourceVersion",
                  "generation", "creationTimestamp", "managedFields", "ownerReferences",
                  "finalizers", "generateName"});
    bool ok = true;
    const Field name = m["name"];
    if (name.Required()) {
      meta.name = name.String().value_or("");
      if (meta.name.empty()) {
        ok = false;
      }
    } else {
      ok = false;
    }
    const Field ns = m["namespace"];
    if (auto v = ns.String()) {
      if (!IsDnsLabel(*v)) {
        ns.Fail("expected a DNS-1123 label, got " + ns.Describe());
        ok = false;
      } else {
        meta.ns = *v;
      }
    }
    const Field annotations = m["annotations"];
    if (annotations.present()) {
      for (auto& [key, value] : annotations.Entries()) {
        if (key == kSpilloverAnnotation) {
          spillover = value.OneOf({"proportional", "ordered"});
          if (!spillover) {
            ok = false;
          }
        }
      }
    }
    return ok;
  }

  // A weight: an integer 0..2^31-1.
  std::optional<uint32_t> Weight(const Field& f) {
    auto v = f.Integer();
    if (!v) {
      return std::nullopt;
    }
    if (*v < 0) {
      f.Fail("weight must not be negative, got " + std::to_string(*v));
      return std::nullopt;
    }
    if (*v > kMaxWeight) {
      f.Fail("weight must be at most " + std::to_string(kMaxWeight) + ", got " +
             std::to_string(*v));
      return std::nullopt;
    }
    return static_cast<uint32_t>(*v);
  }

  // `host`: a string naming a service as policy.h describes; anything else cannot name one.
  std::optional<std::string> Host(const Field& f) {
    if (!f.Required()) {
      return std::nullopt;
    }
    auto h = f.String();
    if (h && (h->empty() || h->find('*') != std::string::npos)) {
      f.Fail("expected a service host (NAME, NAME.NS or NAME.NS.svc.cluster[set].local), got " +
             f.Describe() +
             (h->find('*') != std::string::npos ? ": wildcards are not supported" : ""));
      return std::nullopt;
    }
    return h;
  }

  std::optional<RouteRule> ParseRule(const Field& rf, RouteRule::Kind kind) {
    if (!rf.IsMap()) {
      return std::nullopt;
    }
    bool ok = true;
    if (kind == RouteRule::Kind::kHttp) {
      ok &= rf.OnlyFields({"name", "match", "route"});
    } else {
      ok &= rf.OnlyFields({"match", "route"});
    }
    RouteRule rule;
    rule.kind = kind;
    rule.ref = Ref(rf);
    if (kind == RouteRule::Kind::kHttp) {
      rule.name = rf["name"].String().value_or("");
    }
    bool match_all = false;
    const Field match = rf["match"];
    const std::vector<Field> matches = match.Items();
    if (match.present() && matches.empty() && match.node().IsSequence()) {
      match_all = true;
    }
    for (const Field& mf : matches) {
      if (!mf.IsMap()) {
        ok = false;
        continue;
      }
      if (kind == RouteRule::Kind::kHttp) {
        ok &= mf.OnlyFields({"name", "port"});
      } else {
        ok &= mf.OnlyFields({"port"});
      }
      const Field port = mf["port"];
      if (!port.present()) {
        match_all = true;  // a match on nothing xlb can see matches every port
        continue;
      }
      if (auto p = port.IntegerIn(1, 65535)) {
        rule.match_ports.push_back(static_cast<uint16_t>(*p));
      } else {
        ok = false;
      }
    }
    if (match_all) {
      rule.match_ports.clear();
    }

    const Field route = rf["route"];
    if (!route.IsSeq()) {
      return std::nullopt;
    }
    const std::vector<Field> dests = route.Items();
    if (dests.empty()) {
      route.Fail("expected at least one destination");
      return std::nullopt;
    }
    for (const Field& df : dests) {
      if (!df.IsMap()) {
        ok = false;
        continue;
      }
      ok &= df.OnlyFields({"destination", "weight"});
      RouteDestination d;
      d.ref = Ref(df);
      const Field w = df["weight"];
      if (w.present()) {
        d.weight = Weight(w);
        ok &= d.weight.has_value();
      }
      const Field dest = df["destination"];
      if (!dest.IsMap()) {
        ok = false;
        continue;
      }
      ok &= dest.OnlyFields({"host", "subset", "port"});
      const Field host = dest["host"];
      d.host_ref = Ref(host);
      if (auto h = Host(host)) {
        d.host = *h;
      } else {
        ok = false;
      }
      const Field subset = dest["subset"];
      d.subset_ref = Ref(subset);
      d.subset = subset.String().value_or("");
      const Field port = dest["port"];
      if (port.present()) {
        if (port.IsMap()) {
          ok &= port.OnlyFields({"number"});
          const Field number = port["number"];
          d.port_ref = Ref(number);
          if (number.Required()) {
            if (auto n = number.IntegerIn(1, 65535)) {
              d.port = static_cast<uint16_t>(*n);
            } else {
              ok = false;
            }
          } else {
            ok = false;
          }
        } else {
          ok = false;
        }
      }
      rule.route.push_back(std::move(d));
    }
    if (!ok) {
      return std::nullopt;
    }
    // Istio: one destination without a weight takes everything; with several, unset is 0.
    if (rule.route.size() == 1 && !rule.route[0].weight) {
      rule.route[0].weight = 100;
    }
    bool any = false;
    for (RouteDestination& d : rule.route) {
      d.weight = d.weight.value_or(0);
      any |= *d.weight > 0;
    }
    if (!any) {
      route.Fail("every destination has weight 0, so the route sends traffic nowhere");
      return std::nullopt;
    }
    return rule;
  }

  void ParseVirtualService(const Field& spec, PolicyMeta meta,
                           const std::optional<std::string>& spillover) {
    bool ok = spec.OnlyFields({"hosts", "exportTo", "http", "tcp"});
    VirtualService vs;
    vs.meta = std::move(meta);
    if (spillover) {
      vs.spillover = *spillover == "ordered" ? Spillover::kOrdered : Spillover::kProportional;
    }
    const Field hosts = spec["hosts"];
    if (hosts.IsSeq()) {
      const std::vector<Field> items = hosts.Items();
      if (items.empty()) {
        hosts.Fail("expected at least one host");
        ok = false;
      }
      for (const Field& h : items) {
        if (auto s = Host(h)) {
          vs.hosts.emplace_back(*s, Ref(h));
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }
    (void)spec["exportTo"].Strings();
    for (const Field& rf : spec["http"].Items()) {
      if (auto r = ParseRule(rf, RouteRule::Kind::kHttp)) {
        vs.http.push_back(std::move(*r));
      } else {
        ok = false;
      }
    }
    for (const Field& rf : spec["tcp"].Items()) {
      if (auto r = ParseRule(rf, RouteRule::Kind::kTcp)) {
        vs.tcp.push_back(std::move(*r));
      } else {
        ok = false;
      }
    }
    if (ok && vs.http.empty() && vs.tcp.empty()) {
      spec.Fail("no http or tcp route: the VirtualService routes nothing");
      ok = false;
    }
    if (ok) {
      out_.virtual_services.push_back(std::move(vs));
    }
  }

  void ParseDestinationRule(const Field& spec, PolicyMeta meta) {
    bool ok = spec.OnlyFields({"host", "exportTo", "subsets"});
    DestinationRule dr;
    dr.meta = std::move(meta);
    const Field host = spec["host"];
    dr.host_ref = Ref(host);
    if (auto h = Host(host)) {
      dr.host = *h;
    } else {
      ok = false;
    }
    (void)spec["exportTo"].Strings();
    std::set<std::string> names;
    for (const Field& sf : spec["subsets"].Items()) {
      if (!sf.IsMap()) {
        ok = false;
        continue;
      }
      ok &= sf.OnlyFields({"name", "labels"});
      Subset s;
      s.ref = Ref(sf);
      const Field name = sf["name"];
      if (name.Required()) {
        s.name = name.String().value_or("");
        if (!s.name.empty() && !names.insert(s.name).second) {
          name.Fail("subset \"" + s.name + "\" defined twice");
          ok = false;
        }
      } else {
        ok = false;
      }
      const Field labels = sf["labels"];
      if (!labels.IsMap()) {
        ok = false;
        continue;
      }
      bool found = false;
      bool other = false;
      for (auto& [key, value] : labels.Entries()) {
        if (key != kClusterLabel) {
          value.Fail(std::string("xlb selects subsets by cluster only: the one label is ") +
                     kClusterLabel);
          ok = false;
          other = true;
          continue;
        }
        found = true;
        s.cluster_ref = Ref(value);
        if (!value.Required()) {
          ok = false;
          continue;
        }
        s.cluster = value.String().value_or("");
      }
      if (!found && !other) {
        labels[kClusterLabel].Fail("required field is missing: a subset names its cluster");
        ok = false;
      }
      dr.subsets.push_back(std::move(s));
    }
    if (ok) {
      out_.destination_rules.push_back(std::move(dr));
    }
  }

  void ParseTrafficPolicy(const Field& spec, PolicyMeta meta) {
    bool ok = spec.OnlyFields({"service", "weights", "failover", "spillover"});
    TrafficPolicy tp;
    tp.meta = std::move(meta);
    const Field service = spec["service"];
    tp.service_ref = Ref(service);
    if (auto h = Host(service)) {
      tp.service = *h;
    } else {
      ok = false;
    }
    const Field weights = spec["weights"];
    if (weights.IsMap()) {
      bool any = false;
      for (auto& [cluster, wf] : weights.Entries()) {
        if (!wf.Required()) {
          ok = false;
          continue;
        }
        auto w = Weight(wf);
        if (!w) {
          ok = false;
          continue;
        }
        any |= *w > 0;
        tp.weights.push_back(ClusterWeight{cluster, *w, Ref(wf)});
      }
      if (ok && !any) {
        weights.Fail(tp.weights.empty()
                         ? std::string("expected at least one cluster")
                         : "every cluster has weight 0, so the policy sends traffic nowhere");
        ok = false;
      }
    } else {
      ok = false;
    }
    const Field failover = spec["failover"];
    std::set<std::string> seen;
    for (const Field& ff : failover.Items()) {
      auto c = ff.String();
      if (!c) {
        if (!ff.present()) {
          ff.Fail("expected a cluster name, got nothing");
        }
        ok = false;
        continue;
      }
      if (!seen.insert(*c).second) {
        ff.Fail("cluster \"" + *c + "\" is listed twice");
        ok = false;
        continue;
      }
      tp.failover.emplace_back(*c, Ref(ff));
    }
    if (auto s = spec["spillover"].OneOf({"proportional", "ordered"})) {
      tp.spillover = *s == "ordered" ? Spillover::kOrdered : Spillover::kProportional;
    } else if (spec["spillover"].present()) {
      ok = false;
    }
    if (ok) {
      out_.traffic_policies.push_back(std::move(tp));
    }
  }

  const yaml::Document& doc_;
  PolicySet& out_;
};

bool IsPolicyFileName(const std::string& name) {
  if (name.empty() || name[0] == '.') {
    return false;
  }
  for (const char* ext : {".yaml", ".yml", ".json"}) {
    const std::string_view e(ext);
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

ConfigResult<std::vector<PolicyFile>> ReadPolicyPath(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return ConfigErrors{ConfigError{path, 0, "", "no such file or directory", 0}};
  }
  std::vector<std::string> paths;
  if (fs::is_directory(status)) {
    // increment(ec), not ++: the range-for's ++ throws when the directory goes away midway,
    // and policies are re-read on the sync path.
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::directory_entry& e = *it;
      const std::string name = e.path().filename().string();
      std::error_code file_ec;
      if (IsPolicyFileName(name) && e.is_regular_file(file_ec)) {
        paths.push_back(e.path().string());
      }
    }
    if (ec) {
      return ConfigErrors{ConfigError{path, 0, "", "cannot list directory: " + ec.message(), 0}};
    }
    std::sort(paths.begin(), paths.end());
  } else {
    paths.push_back(path);
  }
  std::vector<PolicyFile> files;
  ConfigErrors errors;
  for (const std::string& p : paths) {
    auto text = yaml::ReadFile(p);
    if (!text.ok()) {
      const ConfigErrors& e = text.error();
      errors.insert(errors.end(), e.begin(), e.end());
      continue;
    }
    files.push_back(PolicyFile{p, std::move(*text)});
  }
  if (!errors.empty()) {
    return errors;
  }
  return files;
}

ConfigResult<PolicySet> ParsePolicies(std::span<const PolicyFile> files) {
  PolicySet set;
  ConfigErrors errors;
  for (const PolicyFile& f : files) {
    auto docs = yaml::LoadDocuments(f.name, f.text);
    if (!docs.ok()) {
      const ConfigErrors& e = docs.error();
      errors.insert(errors.end(), e.begin(), e.end());
      continue;
    }
    for (const yaml::LoadedDocument& d : *docs) {
      if (d.root.IsNull()) {
        continue;  // an empty document
      }
      const yaml::Document doc(f.name, d.index, errors);
      DocumentParser(doc, set).Parse(Field(doc, d.root));
    }
  }
  if (!errors.empty()) {
    return errors;
  }
  return set;
}

}  // namespace xlb
