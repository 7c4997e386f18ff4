// The KubeSources configuration (kube_config.h): a complete file, the kubeconfig directory of
// a mounted Secret, cluster ids, and the errors, each naming file and field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "tests/child_deadline.h"
#include "tests/pkt/temp_dir.h"
#include "userspace/kube/source/kube_config.h"

namespace xlb::kube {
namespace {

using namespace std::chrono_literals;

ConfigResult<KubeSourcesConfig> Parse(const std::string& text) {
  return ParseKubeSourcesConfig("kube.yaml", text);
}

// The one error of a rejected config, as text.
std::string OnlyError(const ConfigResult<KubeSourcesConfig>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) {
    return "";
  }
  EXPECT_EQ(r.error().size(), 1u) << ToString(r.error());
  return r.error().front().ToString();
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

constexpr const char* kHeader = "apiVersion: xlb.dev/v1alpha1\nkind: KubeSources\n";

TEST(KubeConfig, CompleteFile) {
  const auto r = Parse(std::string(kHeader) + R"(
node:
  name: node-a1
  addresses: [198.18.0.11, 2001:db8::11]
staleAfter: 30s
local:
  name: cluster-a
  id: 1
  inCluster: true
clusters:
- name: cluster-c
  mode: mcs
- name: cluster-b
  kubeconfig: /etc/xlb/clusters/cluster-b
  id: 2
  staleAfter: 200ms
)");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  const KubeSourcesConfig& c = *r;
  EXPECT_EQ(c.local.name, "cluster-a");
  EXPECT_EQ(c.local.Id(), 1);
  EXPECT_TRUE(c.local.in_cluster);
  EXPECT_EQ(c.node_name, "node-a1");
  ASSERT_EQ(c.node_addresses.size(), 2u);
  EXPECT_EQ(c.node_addresses[1].ToString(), "2001:db8::11");
  ASSERT_EQ(c.remotes.size(), 2u);  // in name order
  EXPECT_EQ(c.remotes[0].name, "cluster-b");
  EXPECT_EQ(c.remotes[0].mode, ClusterMode::kDirect);
  EXPECT_EQ(c.remotes[0].kubeconfig, "/etc/xlb/clusters/cluster-b");
  EXPECT_EQ(c.remotes[0].Id(), 2);
  EXPECT_EQ(c.remotes[0].stale_after, 200ms);
  EXPECT_EQ(c.remotes[1].name, "cluster-c");
  EXPECT_EQ(c.remotes[1].mode, ClusterMode::kMcs);
  EXPECT_EQ(c.remotes[1].stale_after, 30s);  // the file's default
  EXPECT_EQ(c.remotes[1].Id(), ClusterIdOf("cluster-c"));
  EXPECT_EQ(c.service_imports, "v1alpha1");  // an mcs cluster needs them
}

TEST(KubeConfig, MinimalFileDefaults) {
  const auto r = Parse(std::string(kHeader) + "local: {kubeconfig: /root/.kube/config}\n");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  EXPECT_EQ(r->local.name, "");  // from the ClusterProperty
  EXPECT_EQ(r->local.kubeconfig, "/root/.kube/config");
  EXPECT_TRUE(r->remotes.empty());
  EXPECT_EQ(r->service_imports, "");  // no mcs cluster: not watched
}

TEST(KubeConfig, ClusterIdsAreAFunctionOfTheName) {
  // Pinned: every node, and every version of xlb in a rolling upgrade, must agree.
  EXPECT_EQ(ClusterIdOf("cluster-a"), 60510);
  EXPECT_EQ(ClusterIdOf("cluster-b"), 61169);
  EXPECT_EQ(ClusterIdOf("east"), 29328);
  std::set<uint16_t> ids;
  for (int i = 0; i < 1000; ++i) {
    const uint16_t id = ClusterIdOf("cluster-" + std::to_string(i));
    EXPECT_GE(id, 1);
    ids.insert(id);
  }
  EXPECT_GT(ids.size(), 980u);  // spread, not a constant
}

TEST(KubeConfig, DerivedIdCollisionIsAnError) {
  ASSERT_EQ(ClusterIdOf("c-air"), ClusterIdOf("c-dsa"));
  std::string text = std::string(kHeader) + R"(
local: {name: c-air, inCluster: true}
clusters:
- {name: c-dsa, kubeconfig: /k/c-dsa}
)";
  const std::string error = OnlyError(Parse(text));
  EXPECT_NE(error.find("kube.yaml: document 1: clusters[c-dsa]: cluster \"c-dsa\" has id 25140 "
                       "(derived from its name), as cluster \"c-air\" has: give one of them an "
                       "explicit id"),
            std::string::npos)
      << error;
  // An explicit id resolves it.
  text = std::string(kHeader) + R"(
local: {name: c-air, inCluster: true}
clusters:
- {name: c-dsa, kubeconfig: /k/c-dsa, id: 7}
)";
  EXPECT_TRUE(Parse(text).ok());
  // Configured ids collide too.
  text = std::string(kHeader) + R"(
local: {name: cluster-a, id: 5, inCluster: true}
clusters:
- {name: cluster-b, kubeconfig: /k/b, id: 5}
)";
  EXPECT_NE(OnlyError(Parse(text)).find("has id 5, as cluster \"cluster-a\""), std::string::npos);
}

TEST(KubeConfig, ErrorsNameFileAndField) {
  const struct {
    std::string body;
    std::string expected;
  } cases[] = {
      {"apiVersion: xlb.dev/v1alpha1\nkind: Config\nlocal: {inCluster: true}\n",
       "kube.yaml: document 1: kind: expected KubeSources, got \"Config\" (line 2)"},
      {std::string(kHeader) + "clusters: []\n",
       "kube.yaml: document 1: local: required field is missing"},
      {std::string(kHeader) + "local: {inCluster: true, kubeconfig: /k}\n",
       "kube.yaml: document 1: local: give inCluster: true or a kubeconfig, not both (line 3)"},
      {std::string(kHeader) + "local: {name: cluster-a}\n",
       "kube.yaml: document 1: local: required: inCluster: true or kubeconfig: PATH (line 3)"},
      {std::string(kHeader) + "local: {inCluster: true}\nclusters:\n- {name: cluster-b}\n",
       "kube.yaml: document 1: clusters[0].kubeconfig: required for a cluster of mode direct "
       "(line 5)"},
      {std::string(kHeader) +
           "local: {inCluster: true}\nclusters:\n- {name: cluster-b, mode: mcs, kubeconfig: /k}\n",
       "kube.yaml: document 1: clusters[0].kubeconfig: not used by a cluster of mode mcs"},
      {std::string(kHeader) +
           "local: {inCluster: true}\nclusters:\n- {name: Cluster_B, mode: mcs}\n",
       "kube.yaml: document 1: clusters[0].name: expected a DNS-1123 label"},
      {std::string(kHeader) +
           "local: {inCluster: true}\nclusters:\n- {name: b, mode: mcs}\n- {name: b, mode: mcs}\n",
       "kube.yaml: document 1: clusters[1].name: cluster \"b\" declared twice (first at "
       "clusters[0].name)"},
      {std::string(kHeader) + "local: {inCluster: true}\nclusters:\n- {name: b, mode: tunnel}\n",
       "kube.yaml: document 1: clusters[0].mode: expected one of direct, mcs, got \"tunnel\""},
      {std::string(kHeader) + "staleAfter: 10 minutes\nlocal: {inCluster: true}\n",
       "kube.yaml: document 1: staleAfter: expected a duration such as 200ms, 60s, 5m, got "
       "\"10 minutes\" (line 3)"},
      {std::string(kHeader) + "local: {inCluster: true, staleAfter: 5s}\n",
       "kube.yaml: document 1: local.staleAfter: not for the local cluster"},
      {std::string(kHeader) + "local: {inCluster: true}\nclustres: []\n",
       "kube.yaml: document 1: clustres: unknown field \"clustres\""},
      {std::string(kHeader) + "local: {inCluster: true}\nnode: {addresses: [x]}\n",
       "kube.yaml: document 1: node.addresses[0]: expected an IPv4 or IPv6 address, got \"x\""},
      {std::string(kHeader) +
           "local: {inCluster: true}\nserviceImports: none\nclusters:\n- {name: b, mode: mcs}\n",
       "kube.yaml: document 1: serviceImports: clusters of mode mcs are seen through"},
      {std::string(kHeader) + "local: {inCluster: true, id: 0}\n",
       "kube.yaml: document 1: local.id: expected integer 1-65535, got \"0\""},
  };
  for (const auto& c : cases) {
    const std::string error = OnlyError(Parse(c.body));
    EXPECT_NE(error.find(c.expected), std::string::npos)
        << "config:\n"
        << c.body << "\nerror: " << error << "\nexpected: " << c.expected;
  }
}

TEST(KubeConfig, DurationForms) {
  EXPECT_EQ(ParseDuration("200ms"), 200ms);
  EXPECT_EQ(ParseDuration("60s"), 60s);
  EXPECT_EQ(ParseDuration("5m"), 5min);
  EXPECT_EQ(ParseDuration("1h"), 1h);
  EXPECT_FALSE(ParseDuration("0s"));
  EXPECT_FALSE(ParseDuration("-5s"));
  EXPECT_FALSE(ParseDuration("5"));
  EXPECT_FALSE(ParseDuration("s"));
  EXPECT_FALSE(ParseDuration("1.5s"));
}

TEST(KubeConfig, KubeconfigDirOfASecretVolume) {
  pkt::TempDir dir("xlb-kube-config");
  // A Secret volume: keys are symlinks into a hidden timestamped directory.
  const std::string data = dir.File("..2026_11_22_00_00_00.123");
  std::filesystem::create_directory(data);
  Write(data + "/cluster-b.yaml", "kubeconfig of b");
  Write(data + "/cluster-d", "kubeconfig of d");
  std::filesystem::create_directory_symlink(data, dir.File("..data"));
  std::filesystem::create_symlink("..data/cluster-b.yaml", dir.File("cluster-b.yaml"));
  std::filesystem::create_symlink("..data/cluster-d", dir.File("cluster-d"));
  const auto r = Parse(std::string(kHeader) + "local: {name: cluster-a, inCluster: true}\n" +
                       "clusters:\n- {name: cluster-d, kubeconfig: /explicit/d, id: 9}\n" +
                       "kubeconfigDir: " + dir.path() + "\n");
  ASSERT_TRUE(r.ok()) << ToString(r.error());
  ASSERT_EQ(r->remotes.size(), 2u);
  EXPECT_EQ(r->remotes[0].name, "cluster-b");
  EXPECT_EQ(r->remotes[0].mode, ClusterMode::kDirect);
  EXPECT_EQ(r->remotes[0].kubeconfig, dir.File("cluster-b.yaml"));
  EXPECT_EQ(r->remotes[1].name, "cluster-d");  // the explicit entry wins
  EXPECT_EQ(r->remotes[1].kubeconfig, "/explicit/d");
  EXPECT_EQ(r->remotes[1].Id(), 9);
}

TEST(KubeConfig, KubeconfigDirErrors) {
  pkt::TempDir dir("xlb-kube-config");
  Write(dir.File("Bad_Name.yaml"), "x");
  Write(dir.File("cluster-b.yaml"), "x");
  Write(dir.File("cluster-b.conf"), "x");
  auto r =
      Parse(std::string(kHeader) + "local: {inCluster: true}\nkubeconfigDir: " + dir.path() + "\n");
  ASSERT_FALSE(r.ok());
  const std::string all = ToString(r.error());
  EXPECT_NE(all.find("kubeconfigDir: file " + dir.File("Bad_Name.yaml") +
                     ": cluster name \"Bad_Name\" (from the file name) is no DNS-1123 label"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("files cluster-b.conf and cluster-b.yaml both name cluster \"cluster-b\""),
            std::string::npos)
      << all;
  r = Parse(std::string(kHeader) + "local: {inCluster: true}\nkubeconfigDir: " + dir.File("none") +
            "\n");
  EXPECT_NE(OnlyError(r).find("kubeconfigDir: cannot list directory " + dir.File("none")),
            std::string::npos);
}

TEST(KubeConfig, LoadNamesTheFile) {
  pkt::TempDir dir("xlb-kube-config");
  const std::string path = dir.File("kube.yaml");
  Write(path, std::string(kHeader) + "local: {inCluster: true}\n");
  EXPECT_TRUE(LoadKubeSourcesConfig(path).ok());
  const auto r = LoadKubeSourcesConfig(dir.File("missing.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error()[0].ToString().find(dir.File("missing.yaml")), std::string::npos);
}

// A sources file of one ',' once hung yaml-cpp's LoadAll; it is a syntax error naming the
// file and the position (run in a child with a deadline so that a regression cannot hang).
TEST(KubeConfig, AStrayFlowEntryIsASyntaxErrorNotAHang) {
  for (const std::string text : {",", "{a: b},", "---\n,"}) {
    const std::string outcome =
        xlb::testing::InChildWithin(std::chrono::seconds(5), [&] { return !Parse(text).ok(); });
    ASSERT_EQ(outcome, "ok") << "input: " << text;
    EXPECT_NE(
        OnlyError(Parse(text)).find("kube.yaml: document 1: YAML syntax error: unexpected ','"),
        std::string::npos);
  }
}

}  // namespace
}  // namespace xlb::kube
