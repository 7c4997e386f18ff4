// deploy/cleanup rendered by `kubectl kustomize` (as `kubectl apply -k` renders it) and held
// against what it runs: the uninstall command goes through xlbctl's own command-line parser
// and removes the pin dir the agent of deploy/base pins under, on the node's network namespace
// and bpffs, with the agent's image. No root, no cluster.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"
#include "testbed.h"
#include "userspace/cli/command_line.h"

namespace xlb {
namespace {

// The one object of `kind` in what `kubectl kustomize DIR` renders.
YAML::Node Rendered(const std::string& dir, const std::string& kind) {
  const testbed::CommandResult r =
      testbed::RunIn("", {"kubectl", "kustomize", std::string(XLB_DEPLOY_DIR) + "/" + dir},
                     std::chrono::seconds(30));
  EXPECT_TRUE(r.ok()) << r.Describe();
  std::vector<YAML::Node> found;
  for (const YAML::Node& doc : YAML::LoadAll(r.out)) {
    if (doc["kind"].as<std::string>() == kind) {
      found.push_back(doc);
    }
  }
  EXPECT_EQ(found.size(), 1u) << dir << " renders " << found.size() << " " << kind;
  return found.empty() ? YAML::Node() : found[0];
}

TEST(Cleanup, RunsXlbctlUninstallOnTheAgentsPinDirWithTheAgentsImage) {
  const YAML::Node cleanup = Rendered("cleanup", "DaemonSet");
  const YAML::Node pod = cleanup["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["hostNetwork"].as<bool>()) << "the node's interfaces";
  const YAML::Node uninstall = pod["initContainers"][0];
  ASSERT_TRUE(uninstall.IsDefined());

  const auto command = uninstall["command"].as<std::vector<std::string>>();
  ASSERT_GE(command.size(), 2u);
  EXPECT_EQ(command[0], "/usr/local/bin/xlbctl");
  const std::vector<std::string> args(command.begin() + 1, command.end());
  auto line = cli::ParseCommandLine(args);
  ASSERT_TRUE(line.ok()) << line.error();
  EXPECT_EQ(line->command, "uninstall");
  EXPECT_TRUE(line->positional.empty());
  EXPECT_FALSE(line->help);

  // deploy/base's agent pins under the default pin dir, unless its arguments say otherwise.
  const YAML::Node agent =
      Rendered("base", "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
  std::string agent_pin_dir = XLB_PIN_DIR;
  const auto agent_args = agent["args"].as<std::vector<std::string>>();
  for (size_t i = 0; i + 1 < agent_args.size(); ++i) {
    if (agent_args[i] == "--pin-dir") {
      agent_pin_dir = agent_args[i + 1];
    }
  }
  EXPECT_EQ(line->pin_dir, agent_pin_dir);
  EXPECT_EQ(uninstall["image"].as<std::string>(), agent["image"].as<std::string>());

  // The pin dir is on the host's bpffs, mounted where the agent mounts it.
  bool mounted = false;
  for (const YAML::Node& m : uninstall["volumeMounts"]) {
    const std::string path = m["mountPath"].as<std::string>();
    if (line->pin_dir.starts_with(path + "/")) {
      for (const YAML::Node& v : pod["volumes"]) {
        if (v["name"].as<std::string>() == m["name"].as<std::string>()) {
          mounted = v["hostPath"]["path"].as<std::string>() == path;
        }
      }
    }
  }
  EXPECT_TRUE(mounted) << line->pin_dir << " is not on the host's bpffs in the pod";
}

}  // namespace
}  // namespace xlb
