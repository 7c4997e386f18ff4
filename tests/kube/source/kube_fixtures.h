// Kubernetes objects as the API server sends them, built for the source's tests: only the
// fields xlb reads, in their real places, so the tests exercise the real mapping.
#ifndef XLB_TESTS_KUBE_SOURCE_KUBE_FIXTURES_H
#define XLB_TESTS_KUBE_SOURCE_KUBE_FIXTURES_H

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace xlb::kube::testing {

using nlohmann::json;

inline json Meta(const std::string& ns, const std::string& name, json labels = nullptr) {
  json m = {{"name", name}, {"uid", "uid-" + ns + "-" + name}, {"resourceVersion", "1"}};
  if (!ns.empty()) {
    m["namespace"] = ns;
  }
  if (!labels.is_null()) {
    m["labels"] = std::move(labels);
  }
  return m;
}

// A ClusterIP Service with one TCP port "http" 80 -> 8080.
inline json ServiceObject(const std::string& ns, const std::string& name,
                          const std::string& cluster_ip) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", Meta(ns, name)},
          {"spec",
           {{"type", "ClusterIP"},
            {"clusterIP", cluster_ip},
            {"clusterIPs", json::array({cluster_ip})},
            {"sessionAffinity", "None"},
            {"ports",
             json::array(
                 {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}}})}}},
          {"status", {{"loadBalancer", json::object()}}}};
}

// ServiceObject() as a LoadBalancer with every traffic field kube-proxy honours set: both
// traffic policies Local, healthCheckNodePort 32456, source range 198.18.0.0/16,
// trafficDistribution PreferClose.
inline json LocalPoliciesServiceObject(const std::string& ns, const std::string& name,
                                       const std::string& cluster_ip) {
  json s = ServiceObject(ns, name, cluster_ip);
  s["spec"]["type"] = "LoadBalancer";
  s["spec"]["externalTrafficPolicy"] = "Local";
  s["spec"]["internalTrafficPolicy"] = "Local";
  s["spec"]["healthCheckNodePort"] = 32456;
  s["spec"]["loadBalancerSourceRanges"] = {"198.18.0.0/16"};
  s["spec"]["trafficDistribution"] = "PreferClose";
  return s;
}

// An endpoint; `conditions` null = the field is absent.
inline json EndpointObject(const std::string& address, const std::string& node = "",
                           json conditions = nullptr) {
  json e = {{"addresses", json::array({address})}};
  if (!node.empty()) {
    e["nodeName"] = node;
  }
  if (!conditions.is_null()) {
    e["conditions"] = std::move(conditions);
  }
  return e;
}

inline json ReadyConditions(bool ready) {
  return {{"ready", ready}, {"serving", ready}, {"terminating", false}};
}

// A slice of `service` with port "http" 8080/TCP; `source_cluster` set: an MCS slice.
inline json SliceObject(const std::string& ns, const std::string& name, const std::string& service,
                        json endpoints, const std::string& address_type = "IPv4",
                        const std::string& source_cluster = "") {
  json labels = json::object();
  if (source_cluster.empty()) {
    labels["kubernetes.io/service-name"] = service;
  } else {
    labels["multicluster.kubernetes.io/service-name"] = service;
    labels["multicluster.kubernetes.io/source-cluster"] = source_cluster;
  }
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata", Meta(ns, name, labels)},
          {"addressType", address_type},
          {"ports", json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})},
          {"endpoints", std::move(endpoints)}};
}

// What the EndpointSlice controller writes for a service with publishNotReadyAddresses: true
// (ready true while the pod is not ready), a terminating pod that still serves, a terminating
// pod that no longer does, with the zones and the zone hints of trafficDistribution
// PreferClose.
inline json ControllerSliceObject() {
  return json::parse(R"({
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
      "name": "api-x7k2p",
      "namespace": "production",
      "generateName": "api-",
      "labels": {
        "kubernetes.io/service-name": "api",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
      },
      "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "api",
                           "uid": "0c1f3e3a-4e3b-4a51-9a58-2c9e4e0e7a11"}]
    },
    "addressType": "IPv4",
    "endpoints": [
      {"addresses": ["198.18.1.1"],
       "conditions": {"ready": true, "serving": false, "terminating": false},
       "nodeName": "node-a1", "zone": "zone-1",
       "hints": {"forZones": [{"name": "zone-1"}]},
       "targetRef": {"kind": "Pod", "namespace": "production", "name": "api-0"}},
      {"addresses": ["198.18.1.2"],
       "conditions": {"ready": false, "serving": true, "terminating": true},
       "nodeName": "node-a2", "zone": "zone-2",
       "hints": {"forZones": [{"name": "zone-2"}, {"name": "zone-3"}]}},
      {"addresses": ["198.18.1.3"],
       "conditions": {"ready": false, "serving": false, "terminating": true},
       "nodeName": "node-a2", "zone": "zone-2"}
    ],
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]
  })");
}

inline json NodeObject(const std::string& name, const std::string& internal_ip,
                       const std::string& external_ip = "") {
  json addresses = json::array({{{"type", "Hostname"}, {"address", name}}});
  if (!external_ip.empty()) {
    addresses.push_back({{"type", "ExternalIP"}, {"address", external_ip}});
  }
  if (!internal_ip.empty()) {
    addresses.push_back({{"type", "InternalIP"}, {"address", internal_ip}});
  }
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", Meta("", name)},
          {"status", {{"addresses", addresses}}}};
}

// A v1alpha1 ServiceImport (fields under spec) with port "http" 80/TCP.
inline json ImportObject(const std::string& ns, const std::string& name,
                         const std::vector<std::string>& ips,
                         const std::string& type = "ClusterSetIP") {
  return {{"apiVersion", "multicluster.x-k8s.io/v1alpha1"},
          {"kind", "ServiceImport"},
          {"metadata", Meta(ns, name)},
          {"spec",
           {{"type", type},
            {"ips", ips},
            {"ports", json::array({{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}})}}}};
}

inline json ClusterPropertyObject(const std::string& name, const std::string& value) {
  return {{"apiVersion", "about.k8s.io/v1alpha1"},
          {"kind", "ClusterProperty"},
          {"metadata", Meta("", name)},
          {"spec", {{"value", value}}}};
}

}  // namespace xlb::kube::testing

#endif  // XLB_TESTS_KUBE_SOURCE_KUBE_FIXTURES_H
