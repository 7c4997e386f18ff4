// deploy/base rendered by `kubectl kustomize` (the real kustomize, as `kubectl apply -k` runs
// it), then held against the code it configures: the DaemonSet's arguments go through
// xlb-agent's own flag parser, the sources ConfigMap through the Kubernetes sources' config
// parser, the policies ConfigMap through the policy parser, and the ClusterRole must allow
// every list and watch the sources start.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "testbed.h"
#include "userspace/agent/agent_options.h"
#include "userspace/kube/source/kube_config.h"
#include "userspace/kube/source/kube_objects.h"
#include "userspace/kube/client/cluster_connection.h"
#include "userspace/kube/source/kube_source.h"
#include "userspace/policy/policy_parse.h"

namespace xlb {
namespace {

// `kubectl kustomize DIR` (DIR relative to deploy/, or absolute), as objects by "Kind/name".
std::map<std::string, YAML::Node> Render(const std::string& dir) {
  std::map<std::string, YAML::Node> objects;
  const testbed::CommandResult r = testbed::RunIn(
      "", {"kubectl", "kustomize", dir[0] == '/' ? dir : std::string(XLB_DEPLOY_DIR) + "/" + dir},
      std::chrono::seconds(30));
  EXPECT_TRUE(r.ok()) << "kubectl kustomize " << dir << ": " << r.Describe();
  for (const YAML::Node& doc : YAML::LoadAll(r.out)) {
    const std::string key =
        doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>();
    EXPECT_TRUE(objects.emplace(key, doc).second) << dir << " renders twice: " << key;
  }
  return objects;
}

const YAML::Node& Find(const std::map<std::string, YAML::Node>& objects, const std::string& key) {
  static const YAML::Node none;
  auto it = objects.find(key);
  if (it == objects.end()) {
    ADD_FAILURE() << key << " is not in the rendered manifests";
    return none;
  }
  return it->second;
}

// A scratch directory, gone with the object.
struct TempDir {
  TempDir() {
    char dir[] = "/tmp/xlb-deploy-test-XXXXXX";
    EXPECT_NE(::mkdtemp(dir), nullptr);
    path = dir;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

// The agent's options as a node gets them from the rendered DaemonSet: the container's command
// line with the kubelet's $(VAR) expansion of the env it declares (values a node would have),
// through xlb-agent's own parser, then the node settings from ConfigMap xlb-node as the agent
// reads them from its mount (here a copy of the key in a scratch directory).
AgentOptions AgentOptionsOf(const std::map<std::string, YAML::Node>& objects,
                            const std::string& node_name) {
  const YAML::Node c = Find(objects, "DaemonSet/xlb-agent")["spec"]["template"]["spec"]["containers"][0];
  std::map<std::string, std::string> env = {{"NODE_NAME", node_name}, {"NODE_IP", "198.18.0.11"}};
  std::vector<std::string> args = {c["command"][0].as<std::string>()};
  for (const YAML::Node& a : c["args"]) {
    std::string arg = a.as<std::string>();
    for (const auto& [name, value] : env) {
      const std::string ref = "$(" + name + ")";
      for (size_t at = arg.find(ref); at != std::string::npos; at = arg.find(ref)) {
        arg.replace(at, ref.size(), value);
      }
    }
    EXPECT_EQ(arg.find("$("), std::string::npos) << "unexpanded " << arg;
    args.push_back(arg);
  }
  TempDir scratch;
  const std::string mounted = "/etc/xlb/node/node-settings.yaml";
  for (std::string& a : args) {
    if (a == mounted) {
      a = scratch.path + "/node-settings.yaml";
      std::ofstream(a) << Find(objects, "ConfigMap/xlb-node")["data"]["node-settings.yaml"].as<std::string>();
    }
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  AgentOptions options;
  std::string problem;
  bool help = false;
  EXPECT_TRUE(ParseAgentOptions(static_cast<int>(argv.size()), argv.data(), options, problem, help))
      << problem;
  EXPECT_TRUE(ApplyNodeSettings(static_cast<int>(argv.size()), argv.data(), node_name, options,
                                problem))
      << problem;
  return options;
}

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override { objects_ = Render("base"); }

  const YAML::Node& Object(const std::string& key) { return Find(objects_, key); }

  const YAML::Node Container() {
    return Object("DaemonSet/xlb-agent")["spec"]["template"]["spec"]["containers"][0];
  }

  std::map<std::string, YAML::Node> objects_;
};

TEST_F(DeployTest, RendersTheAgentItsRbacAndItsConfigInOneNamespace) {
  for (const char* key : {"Namespace/xlb-system", "ServiceAccount/xlb-agent",
                          "ClusterRole/xlb-agent", "ClusterRoleBinding/xlb-agent",
                          "ConfigMap/xlb-sources", "ConfigMap/xlb-node", "ConfigMap/xlb-policies",
                          "DaemonSet/xlb-agent"}) {
    EXPECT_TRUE(objects_.count(key)) << key;
  }
  for (const auto& [key, doc] : objects_) {
    if (doc["metadata"]["namespace"]) {
      EXPECT_EQ(doc["metadata"]["namespace"].as<std::string>(), "xlb-system") << key;
    }
  }
}

// What the datapath needs from the pod: the node's interfaces, BPF, and the host's bpffs so
// the pinned maps (and with them the running datapath) outlive the pod; no more privilege
// than three capabilities (capabilities_test.cc runs the agent with exactly them).
TEST_F(DeployTest, AgentPodIsUnprivilegedOnTheHostNetworkWithTheHostsBpffs) {
  const YAML::Node spec = Object("DaemonSet/xlb-agent")["spec"]["template"]["spec"];
  EXPECT_TRUE(spec["hostNetwork"].as<bool>());
  EXPECT_EQ(spec["serviceAccountName"].as<std::string>(), "xlb-agent");
  const YAML::Node sc = Container()["securityContext"];
  EXPECT_FALSE(sc["privileged"].as<bool>());
  EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>());
  EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>());
  EXPECT_EQ(sc["capabilities"]["drop"].as<std::vector<std::string>>(),
            std::vector<std::string>{"ALL"});
  EXPECT_EQ(sc["capabilities"]["add"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"BPF", "NET_ADMIN", "PERFMON"}));
  bool bpffs = false;
  for (const YAML::Node& v : spec["volumes"]) {
    if (v["hostPath"] && v["hostPath"]["path"].as<std::string>() == "/sys/fs/bpf") {
      for (const YAML::Node& m : Container()["volumeMounts"]) {
        bpffs |= m["name"].as<std::string>() == v["name"].as<std::string>() &&
                 m["mountPath"].as<std::string>() == "/sys/fs/bpf";
      }
    }
  }
  EXPECT_TRUE(bpffs) << "no hostPath /sys/fs/bpf mounted at /sys/fs/bpf";
  // The probes reach what --metrics-addr serves.
  EXPECT_EQ(Container()["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(Container()["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
}

// The agent stays off nodes labelled with the datapath label the sources read (NodeInfo::runs_xlb):
// the label that says "no xlb here" to the other nodes' agents is the one that keeps it off.
TEST_F(DeployTest, AgentStaysOffNodesLabelledWithoutXlb) {
  const YAML::Node terms = Object("DaemonSet/xlb-agent")["spec"]["template"]["spec"]["affinity"]
                                 ["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                                 ["nodeSelectorTerms"];
  ASSERT_TRUE(terms.IsSequence() && terms.size() == 1);
  bool excluded = false;
  for (const YAML::Node& e : terms[0]["matchExpressions"]) {
    excluded |= e["key"].as<std::string>() == kube::kDatapathLabel &&
                e["operator"].as<std::string>() == "NotIn" && e["values"].size() == 1 &&
                e["values"][0].as<std::string>() == "none";
  }
  EXPECT_TRUE(excluded) << "no `" << kube::kDatapathLabel << " NotIn [none]` node affinity";
}

// The container's command line goes through xlb-agent's own parser, with the node settings;
// the mounted files the flags name are the ConfigMaps' keys.
TEST_F(DeployTest, ContainerArgumentsAreAcceptedByTheAgentsFlagParser) {
  const YAML::Node c = Container();
  const AgentOptions options = AgentOptionsOf(objects_, "node-a1");
  EXPECT_EQ(options.kube, "/etc/xlb/sources/sources.yaml");
  EXPECT_EQ(options.policy, "/etc/xlb/policies");
  EXPECT_TRUE(options.uplink_auto) << "the uplinks from each node's routes";
  EXPECT_EQ(options.pod_ifaces, std::vector<std::string>{"veth*"});
  EXPECT_EQ(options.datapath.tunnel_mtu, 1500);
  // Scrapeable on the node's addresses, on the port the pod declares.
  EXPECT_EQ(options.metrics_addr, "0.0.0.0:9464");
  EXPECT_EQ(c["ports"][0]["name"].as<std::string>(), "metrics");
  EXPECT_EQ(c["ports"][0]["containerPort"].as<int>(), 9464);
  const YAML::Node annotations =
      Object("DaemonSet/xlb-agent")["spec"]["template"]["metadata"]["annotations"];
  EXPECT_EQ(annotations["prometheus.io/scrape"].as<std::string>(), "true");
  EXPECT_EQ(annotations["prometheus.io/port"].as<std::string>(), "9464");
  // kube-proxy's node health check, where cloud load balancers probe it; healthCheckNodePorts
  // on every address.
  EXPECT_EQ(options.healthz_addr, "0.0.0.0:10256");
  EXPECT_EQ(options.health_check_addr, "::");
  EXPECT_EQ(c["ports"][1]["name"].as<std::string>(), "healthz");
  EXPECT_EQ(c["ports"][1]["containerPort"].as<int>(), 10256);
  // No --node-addr: the Node's InternalIP and ExternalIP addresses of both families serve the
  // NodePorts (one status.hostIP would leave the others out).
  EXPECT_TRUE(options.node_addrs.empty());
  // Socket LB goes on the host's cgroup v2 root, mounted where --cgroup points: the
  // container's own /sys/fs/cgroup is a cgroup namespace that holds none of the node's
  // processes.
  EXPECT_NE(options.socket_lb.mode, SocketLbOptions::Mode::kOff);
  ASSERT_FALSE(options.socket_lb.cgroup.empty()) << "no --cgroup";
  const YAML::Node spec = Object("DaemonSet/xlb-agent")["spec"]["template"]["spec"];
  bool host_cgroup = false;
  for (const YAML::Node& m : c["volumeMounts"]) {
    if (m["mountPath"].as<std::string>() != options.socket_lb.cgroup) {
      continue;
    }
    for (const YAML::Node& v : spec["volumes"]) {
      host_cgroup |= v["name"].as<std::string>() == m["name"].as<std::string>() && v["hostPath"] &&
                     v["hostPath"]["path"].as<std::string>() == "/sys/fs/cgroup";
    }
  }
  EXPECT_TRUE(host_cgroup) << "--cgroup " << options.socket_lb.cgroup
                           << " is not the host's /sys/fs/cgroup";
}

TEST_F(DeployTest, SourcesAndPoliciesConfigMapsParse) {
  std::string sources = Object("ConfigMap/xlb-sources")["data"]["sources.yaml"].as<std::string>();
  // The kubeconfigDir is listed while parsing: the Secret's mount point, here an empty
  // directory (what the kubelet mounts when the optional Secret does not exist).
  const std::string mount = "/etc/xlb/clusters";
  const size_t at = sources.find("kubeconfigDir: " + mount);
  ASSERT_NE(at, std::string::npos) << sources;
  char dir[] = "/tmp/xlb-deploy-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  sources.replace(at + 15, mount.size(), dir);
  auto config = kube::ParseKubeSourcesConfig("xlb-sources/sources.yaml", sources);
  ::rmdir(dir);
  ASSERT_TRUE(config.ok()) << ToString(config.error());
  EXPECT_TRUE(config->local.in_cluster);
  EXPECT_TRUE(config->remotes.empty());

  std::vector<PolicyFile> files;
  for (const auto& kv : Object("ConfigMap/xlb-policies")["data"]) {
    files.push_back({"xlb-policies/" + kv.first.as<std::string>(), kv.second.as<std::string>()});
  }
  ASSERT_FALSE(files.empty());
  auto policies = ParsePolicies(files);
  EXPECT_TRUE(policies.ok()) << ToString(policies.error());
}

// Every collection the sources list and watch is allowed by the ClusterRole (get, list,
// watch), so an agent never sits on a 403 for a resource the manifests forgot.
TEST_F(DeployTest, ClusterRoleAllowsEveryResourceTheSourcesWatch) {
  std::set<std::string> allowed;  // "group/resource:verb"
  for (const YAML::Node& rule : Object("ClusterRole/xlb-agent")["rules"]) {
    for (const YAML::Node& g : rule["apiGroups"]) {
      for (const YAML::Node& r : rule["resources"]) {
        for (const YAML::Node& v : rule["verbs"]) {
          allowed.insert(g.as<std::string>() + "/" + r.as<std::string>() + ":" +
                         v.as<std::string>());
        }
      }
    }
  }
  for (kube::KubeResource r :
       {kube::KubeResource::kServices, kube::KubeResource::kEndpointSlices,
        kube::KubeResource::kNodes, kube::KubeResource::kServiceImports,
        kube::KubeResource::kClusterProperties}) {
    for (const char* version : {"v1alpha1", "v1beta1"}) {
      const std::string path = kube::PathOf(r, version).path;  // /api/v1/X or /apis/G/V/X
      const size_t last = path.rfind('/');
      const std::string resource = path.substr(last + 1);
      std::string group;
      if (path.rfind("/apis/", 0) == 0) {
        group = path.substr(6, path.find('/', 6) - 6);
      }
      for (const char* verb : {"list", "watch"}) {
        EXPECT_TRUE(allowed.count(group + "/" + resource + ":" + verb))
            << path << " needs " << verb << " on " << group << "/" << resource;
      }
    }
  }
}

// Beside kube-proxy, whose ports they are, xlb serves neither the node health check nor the
// healthCheckNodePorts (the agent would not start with 10256 taken); everything else is the
// base's.
TEST(Overlays, AlongsideKubeProxyLeavesKubeProxyItsPorts) {
  const auto objects = Render("overlays/alongside-kube-proxy");
  const AgentOptions options = AgentOptionsOf(objects, "node-a1");
  EXPECT_EQ(options.healthz_addr, "");
  EXPECT_EQ(options.health_check_addr, "");
  EXPECT_EQ(options.metrics_addr, "0.0.0.0:9464");
  EXPECT_EQ(options.kube, "/etc/xlb/sources/sources.yaml");
  const YAML::Node c =
      Find(objects, "DaemonSet/xlb-agent")["spec"]["template"]["spec"]["containers"][0];
  for (const YAML::Node& port : c["ports"]) {
    EXPECT_NE(port["containerPort"].as<int>(), 10256) << "the port is kube-proxy's";
  }
  EXPECT_FALSE(c["env"].IsDefined() && [&] {
    for (const YAML::Node& e : c["env"]) {
      if (e["name"].as<std::string>() == "KUBERNETES_SERVICE_HOST") {
        return true;
      }
    }
    return false;
  }()) << "beside kube-proxy the kubernetes Service's ClusterIP works";
}

// Instead of kube-proxy: the agent reaches the API server by its real address (which the
// in-cluster client takes from the two variables), resolves names with the node's resolver,
// and serves kube-proxy's health checks.
TEST(Overlays, ReplaceKubeProxyReachesTheApiServerWithoutAnyServiceRouting) {
  const auto objects = Render("overlays/replace-kube-proxy");
  const AgentOptions options = AgentOptionsOf(objects, "node-a1");
  EXPECT_EQ(options.healthz_addr, "0.0.0.0:10256");
  EXPECT_EQ(options.health_check_addr, "::");
  const YAML::Node spec = Find(objects, "DaemonSet/xlb-agent")["spec"]["template"]["spec"];
  EXPECT_EQ(spec["dnsPolicy"].as<std::string>(), "Default") << "cluster DNS is behind a ClusterIP";
  const YAML::Node data = Find(objects, "ConfigMap/xlb-apiserver")["data"];
  std::map<std::string, std::string> env;
  for (const YAML::Node& e : spec["containers"][0]["env"]) {
    const YAML::Node ref = e["valueFrom"]["configMapKeyRef"];
    if (ref && ref["name"].as<std::string>() == "xlb-apiserver") {
      ASSERT_TRUE(data[ref["key"].as<std::string>()]) << ref["key"];
      env[e["name"].as<std::string>()] = data[ref["key"].as<std::string>()].as<std::string>();
    }
  }
  ASSERT_EQ(env.size(), 2u);
  TempDir account;
  for (const char* f : {"ca.crt", "token", "namespace"}) {
    std::ofstream(account.path + "/" + f) << (std::string(f) == "namespace" ? "xlb-system" : "x");
  }
  kube::InClusterOptions in_cluster;
  in_cluster.service_account_dir = account.path;
  in_cluster.getenv = [&](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  auto connection = kube::InClusterConnection(in_cluster);
  ASSERT_TRUE(connection.ok()) << connection.error().message;
  EXPECT_EQ(connection->host, data["host"].as<std::string>());
  EXPECT_EQ(connection->port, std::stoi(data["port"].as<std::string>()));
}

// kube-proxy's own cleanup of its rules, once on every node, in kube-system.
TEST(Overlays, KubeProxyCleanupRunsKubeProxysOwnCleanupOnEveryNode) {
  const auto objects = Render("kube-proxy-cleanup");
  const YAML::Node ds = Find(objects, "DaemonSet/kube-proxy-cleanup");
  EXPECT_EQ(ds["metadata"]["namespace"].as<std::string>(), "kube-system");
  const YAML::Node spec = ds["spec"]["template"]["spec"];
  EXPECT_TRUE(spec["hostNetwork"].as<bool>());
  EXPECT_EQ(spec["tolerations"][0]["operator"].as<std::string>(), "Exists");
  const YAML::Node init = spec["initContainers"][0];
  const std::string image = init["image"].as<std::string>();
  EXPECT_EQ(image.rfind("registry.k8s.io/kube-proxy:v1.", 0), 0u) << image;
  std::vector<std::string> command;
  for (const YAML::Node& a : init["command"]) {
    command.push_back(a.as<std::string>());
  }
  ASSERT_FALSE(command.empty());
  EXPECT_NE(command[0].find("kube-proxy"), std::string::npos);
  EXPECT_NE(std::find(command.begin(), command.end(), "--cleanup"), command.end());
  EXPECT_TRUE(init["securityContext"]["privileged"].as<bool>());
}

// The Prometheus Operator's PodMonitor selects the agent's pods and scrapes the port they
// declare, where the agent serves /metrics.
TEST(Monitoring, PodMonitorScrapesTheAgentsMetricsPort) {
  const YAML::Node monitor =
      YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/monitoring/podmonitor.yaml");
  EXPECT_EQ(monitor["apiVersion"].as<std::string>(), "monitoring.coreos.com/v1");
  EXPECT_EQ(monitor["kind"].as<std::string>(), "PodMonitor");
  const auto objects = Render("base");
  const YAML::Node ds = Find(objects, "DaemonSet/xlb-agent");
  EXPECT_EQ(monitor["metadata"]["namespace"].as<std::string>(),
            ds["metadata"]["namespace"].as<std::string>());
  const YAML::Node pod_labels = ds["spec"]["template"]["metadata"]["labels"];
  for (const auto& kv : monitor["spec"]["selector"]["matchLabels"]) {
    ASSERT_TRUE(pod_labels[kv.first.as<std::string>()]) << kv.first;
    EXPECT_EQ(pod_labels[kv.first.as<std::string>()].as<std::string>(), kv.second.as<std::string>());
  }
  const YAML::Node endpoint = monitor["spec"]["podMetricsEndpoints"][0];
  int port = 0;
  for (const YAML::Node& p : ds["spec"]["template"]["spec"]["containers"][0]["ports"]) {
    if (p["name"].as<std::string>() == endpoint["port"].as<std::string>()) {
      port = p["containerPort"].as<int>();
    }
  }
  const AgentOptions options = AgentOptionsOf(objects, "node-a1");
  EXPECT_EQ(options.metrics_addr, "0.0.0.0:" + std::to_string(port));
  EXPECT_EQ(endpoint["path"].as<std::string>(), "/metrics");
}

// The Argo CD ApplicationSet: for each overlay a cluster label may choose, the path exists and
// renders, with the ApplicationSet's own kustomize patches applied as Argo CD applies them (a
// kustomization over the overlay).
TEST(GitOps, ArgoCdApplicationSetRendersForEveryOverlayItChooses) {
  const YAML::Node set =
      YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/gitops/argocd/applicationset.yaml");
  EXPECT_EQ(set["apiVersion"].as<std::string>(), "argoproj.io/v1alpha1");
  EXPECT_EQ(set["kind"].as<std::string>(), "ApplicationSet");
  const YAML::Node gen = set["spec"]["generators"][0]["clusters"];
  ASSERT_TRUE(gen.IsMap()) << "the cluster generator";
  const YAML::Node expr = gen["selector"]["matchExpressions"][0];
  EXPECT_EQ(expr["key"].as<std::string>(), "xlb.dev/overlay");
  const YAML::Node source = set["spec"]["template"]["spec"]["source"];
  const std::string path = source["path"].as<std::string>();
  const std::string label = "{{index .metadata.labels \"xlb.dev/overlay\"}}";
  ASSERT_NE(path.find(label), std::string::npos) << path;
  EXPECT_EQ(set["spec"]["template"]["spec"]["destination"]["namespace"].as<std::string>(),
            "xlb-system");
  ASSERT_GE(expr["values"].size(), 2u);
  for (const YAML::Node& v : expr["values"]) {
    std::string dir = path;
    dir.replace(dir.find(label), label.size(), v.as<std::string>());
    ASSERT_EQ(dir.rfind("deploy/", 0), 0u) << dir;
    // The patches with the template's values as a cluster would fill them in.
    YAML::Node patches = YAML::Clone(source["kustomize"]["patches"]);
    ASSERT_TRUE(patches.IsSequence());
    for (YAML::Node p : patches) {
      std::string text = p["patch"].as<std::string>();
      for (const auto& [from, to] :
           {std::pair<std::string, std::string>{"{{index .metadata.annotations \"xlb.dev/"
                                                "apiserver-host\" | default \"unset\"}}",
                                                "198.18.0.1"},
            {"{{index .metadata.annotations \"xlb.dev/apiserver-port\" | default \"6443\"}}",
             "6443"}}) {
        if (const size_t at = text.find(from); at != std::string::npos) {
          text.replace(at, from.size(), to);
        }
      }
      EXPECT_EQ(text.find("{{"), std::string::npos) << text;
      p["patch"] = text;
    }
    TempDir scratch;
    const std::string overlay = std::string(XLB_DEPLOY_DIR) + "/" + dir.substr(7);
    YAML::Node kustomization;
    kustomization["resources"].push_back(
        std::filesystem::relative(overlay, scratch.path).string());
    kustomization["patches"] = patches;
    std::ofstream(scratch.path + "/kustomization.yaml") << YAML::Dump(kustomization) << "\n";
    const auto objects = Render(scratch.path);
    const AgentOptions options = AgentOptionsOf(objects, "node-a1");
    EXPECT_EQ(options.kube, "/etc/xlb/sources/sources.yaml") << dir;
    if (objects.count("ConfigMap/xlb-apiserver")) {
      EXPECT_EQ(Find(objects, "ConfigMap/xlb-apiserver")["data"]["host"].as<std::string>(),
                "198.18.0.1");
    }
  }
}

// The Fleet bundle: every overlay it names is inside the bundle (deploy/) and renders.
TEST(GitOps, FleetBundleNamesOverlaysThatRender) {
  const YAML::Node fleet = YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/fleet.yaml");
  EXPECT_EQ(fleet["defaultNamespace"].as<std::string>(), "xlb-system");
  std::vector<std::string> dirs = {fleet["kustomize"]["dir"].as<std::string>()};
  std::set<std::string> selected;
  for (const YAML::Node& t : fleet["targetCustomizations"]) {
    dirs.push_back(t["kustomize"]["dir"].as<std::string>());
    selected.insert(t["clusterSelector"]["matchLabels"]["xlb.dev/overlay"].as<std::string>());
  }
  EXPECT_EQ(selected, (std::set<std::string>{"alongside-kube-proxy", "replace-kube-proxy"}));
  for (const std::string& dir : dirs) {
    EXPECT_EQ(dir.find(".."), std::string::npos) << dir << " leaves the bundle";
    const auto objects = Render(dir);
    EXPECT_TRUE(objects.count("DaemonSet/xlb-agent")) << dir;
  }
}

}  // namespace
}  // namespace xlb
