// The container image as `make image` builds it (scripts/build-image.sh with the build's
// xlb-agent and xlbctl), read back as a runtime would: the OCI layout's index, manifest and
// config (one layer, the entrypoint, the architecture, the version and revision labels),
// unpacked by umoci and both binaries run in it under chroot, so that every library they need
// is inside. Built twice: the same tree gives the same manifest digest. The manifests under
// deploy/ must name the image by the tag the build gives it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test_env.h"

namespace xlb::testing {
namespace {

using nlohmann::json;

const std::string kTag = std::string("xlb-agent:") + XLB_VERSION;

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A blob of the layout by its digest ("sha256:...").
json Blob(const std::string& layout, const std::string& digest) {
  return json::parse(Read(layout + "/blobs/sha256/" + digest.substr(digest.find(':') + 1)));
}

struct Build {
  std::string dir;  // --out
  std::string output;
  std::string archive() const { return dir + "/xlb-agent-" XLB_VERSION ".oci.tar"; }
  std::string digest() const {
    std::string d = Read(dir + "/xlb-agent-" XLB_VERSION ".digest");
    return d.substr(0, d.find('\n'));
  }
};

Build BuildImage() {
  Build b;
  b.dir = "/tmp/" + UniqueName("xlb-image");
  const CommandResult r =
      RunCommand(std::string(XLB_BUILD_IMAGE) + " --version " XLB_VERSION " --agent " +
                 XLB_AGENT_BIN + " --xlbctl " + XLBCTL + " --out " + b.dir);
  EXPECT_EQ(r.status, 0) << r.output;
  b.output = r.output;
  return b;
}

// The one manifest of an unpacked OCI layout.
json Manifest(const std::string& layout) {
  const json index = json::parse(Read(layout + "/index.json"));
  EXPECT_EQ(index["manifests"].size(), 1u) << index.dump();
  EXPECT_EQ(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], XLB_VERSION);
  return Blob(layout, index["manifests"][0]["digest"]);
}

// One test, so that ctest builds the image twice in all (each test is a process of its own).
TEST(Image, BuildsReproduciblyWithOneLayerAndBothBinariesStartInsideIt) {
  const Build build = BuildImage();
  const std::string layout = "/tmp/" + UniqueName("xlb-image-layout");
  const std::string bundle = "/tmp/" + UniqueName("xlb-image-bundle");
  struct Cleanup {
    std::string paths;
    ~Cleanup() { RunCommand("rm -rf " + paths); }
  } cleanup{build.dir + " " + layout + " " + bundle};

  // What make image prints: the name:tag and the digest to pin.
  EXPECT_NE(build.output.find("image:   " + kTag), std::string::npos) << build.output;
  ASSERT_EQ(build.digest().rfind("sha256:", 0), 0u) << build.digest();
  EXPECT_NE(build.output.find(build.digest()), std::string::npos) << build.output;

  CommandResult r =
      RunCommand("mkdir -p " + layout + " && tar -xf " + build.archive() + " -C " + layout);
  ASSERT_EQ(r.status, 0) << r.output;
  const json index = json::parse(Read(layout + "/index.json"));
  EXPECT_EQ(index["manifests"][0]["digest"], build.digest());
  const json manifest = Manifest(layout);
  ASSERT_EQ(manifest["layers"].size(), 1u) << manifest.dump(2);
  EXPECT_EQ(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  const json config = Blob(layout, manifest["config"]["digest"]);
  EXPECT_EQ(config["architecture"], "amd64") << config.dump(2);
  EXPECT_EQ(config["os"], "linux");
  EXPECT_EQ(config["config"]["Entrypoint"], json::array({"/usr/local/bin/xlb-agent"}));
  const json& labels = config["config"]["Labels"];
  EXPECT_EQ(labels["org.opencontainers.image.version"], XLB_VERSION) << labels.dump();
  const CommandResult head = RunCommand("git -C " XLB_DEPLOY_DIR " rev-parse HEAD");
  ASSERT_EQ(head.status, 0) << head.output;
  EXPECT_EQ(labels["org.opencontainers.image.revision"], head.output.substr(0, 40));

  // As a runtime unpacks it; every library the binaries load must be inside.
  r = RunCommand("umoci unpack --image " + layout + ":" XLB_VERSION " " + bundle + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string rootfs = bundle + "/rootfs";
  for (const char* binary : {"/usr/local/bin/xlb-agent", "/usr/local/bin/xlbctl"}) {
    r = RunCommand("chroot " + rootfs + " " + binary + " --help");
    EXPECT_EQ(r.status, 0) << binary << ":\n" << r.output;
    EXPECT_EQ(r.output.rfind("usage:", 0), 0u) << binary << ":\n" << r.output;
  }
  // Nothing but what they need: no shell, the CA bundle, the packages recorded.
  r = RunCommand("cd " + rootfs + " && find . -type f | sort");
  EXPECT_EQ(r.output.find("/bin/sh"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("./etc/ssl/certs/ca-certificates.crt"), std::string::npos) << r.output;
  const std::string packages = Read(rootfs + "/usr/share/xlb/packages.txt");
  for (const char* package : {"libbpf1 ", "libc6 ", "libssl3 ", "libyaml-cpp0.7 "}) {
    EXPECT_NE(packages.find(package), std::string::npos) << packages;
  }

  struct stat archive {};
  ASSERT_EQ(::stat(build.archive().c_str(), &archive), 0);
  const CommandResult du = RunCommand("du -sk " + rootfs);
  const long unpacked_kib = std::strtol(du.output.c_str(), nullptr, 10);
  std::printf(
      "image %s: archive %.1f MiB, unpacked %.1f MiB (debian:12-slim alone: ~74 MiB "
      "unpacked)\n",
      kTag.c_str(), static_cast<double>(archive.st_size) / (1 << 20),
      static_cast<double>(unpacked_kib) / 1024);
  RecordProperty("archive_bytes", std::to_string(archive.st_size));
  RecordProperty("unpacked_kib", std::to_string(unpacked_kib));
  EXPECT_LT(unpacked_kib, 74 * 1024) << "larger than debian:12-slim";

  // Built again from the same tree and binaries: the same bytes, so the same digest.
  const Build again = BuildImage();
  cleanup.paths += " " + again.dir;
  EXPECT_EQ(again.digest(), build.digest()) << again.output;
  EXPECT_EQ(Read(again.archive()), Read(build.archive())) << "the archives differ";
}

TEST(Image, TheManifestsNameItByTheTagTheBuildGives) {
  const YAML::Node agent = YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/base/daemonset.yaml");
  EXPECT_EQ(agent["spec"]["template"]["spec"]["containers"][0]["image"].as<std::string>(), kTag);
  const YAML::Node cleanup =
      YAML::LoadFile(std::string(XLB_DEPLOY_DIR) + "/cleanup/daemonset.yaml");
  EXPECT_EQ(cleanup["spec"]["template"]["spec"]["initContainers"][0]["image"].as<std::string>(),
            kTag);
}

}  // namespace
}  // namespace xlb::testing
