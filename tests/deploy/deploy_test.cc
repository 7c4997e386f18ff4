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
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "testbed.h"
#include "userspace/agent/agent_options.h"
#include "userspace/kube/source/kube_config.h"
#include "userspace/kube/source/kube_objects.h"
#include "userspace/kube/source/kube_source.h"
#include "userspace/policy/policy_parse.h"

namespace xlb {
namespace {

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testbed::CommandResult r = testbed::RunIn(
        "", {"kubectl", "kustomize", std::string(XLB_DEPLOY_DIR) + "/base"}, std::chrono::seconds(30));
    ASSERT_TRUE(r.ok()) << r.Describe();
    for (const YAML::Node& doc : YAML::LoadAll(r.out)) {
      const std::string key = doc["kind"].as<std::string>() + "/" +
                              doc["metadata"]["name"].as<std::string>();
      ASSERT_TRUE(objects_.emplace(key, doc).second) << "twice: " << key;
    }
  }

  const YAML::Node& Object(const std::string& key) {
    static const YAML::Node none;
    auto it = objects_.find(key);
    if (it == objects_.end()) {
      ADD_FAILURE() << key << " is not in the rendered manifests";
      return none;
    }
    return it->second;
  }

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

// The container's command line, with the kubelet's $(VAR) expansion of the env it declares
// (values a node would have), goes through xlb-agent's own parser; the mounted files the
// flags name are the ConfigMaps' keys.
TEST_F(DeployTest, ContainerArgumentsAreAcceptedByTheAgentsFlagParser) {
  const YAML::Node c = Container();
  std::map<std::string, std::string> env = {{"NODE_NAME", "node-a1"}, {"NODE_IP", "198.18.0.11"}};
  const YAML::Node node_cm = Object("ConfigMap/xlb-node")["data"];
  for (const YAML::Node& e : c["env"]) {
    if (e["valueFrom"] && e["valueFrom"]["configMapKeyRef"]) {
      const std::string key = e["valueFrom"]["configMapKeyRef"]["key"].as<std::string>();
      ASSERT_TRUE(node_cm[key]) << "xlb-node has no key " << key;
      env[e["name"].as<std::string>()] = node_cm[key].as<std::string>();
    }
  }
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
  std::vector<const char*> argv;
  for (const std::string& a : args) {
    argv.push_back(a.c_str());
  }
  AgentOptions options;
  std::string problem;
  bool help = false;
  ASSERT_TRUE(ParseAgentOptions(static_cast<int>(argv.size()), argv.data(), options, problem, help))
      << problem;
  EXPECT_EQ(options.kube, "/etc/xlb/sources/sources.yaml");
  EXPECT_EQ(options.policy, "/etc/xlb/policies");
  EXPECT_TRUE(options.uplink_auto) << "the uplinks from each node's routes";
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

}  // namespace
}  // namespace xlb
