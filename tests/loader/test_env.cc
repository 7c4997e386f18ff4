#include "test_env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

namespace xlb::testing {

std::unique_ptr<XdpDatapath> LoadHermetic(uint32_t maglev_size) {
  LoadOptions o;
  o.pin_dir = "";
  o.config.maglev_size = maglev_size;
  auto dp = XdpDatapath::Load(o);
  EXPECT_TRUE(dp.ok()) << dp.error().ToString();
  return dp.ok() ? std::move(*dp) : nullptr;
}

std::string UniqueName(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

PinDir::PinDir() : path_("/sys/fs/bpf/" + UniqueName("xlb-test")) {}

PinDir::~PinDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) {
    std::fprintf(stderr, "could not remove %s: %s\n", path_.c_str(), ec.message().c_str());
  }
}

CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    r.output = "popen failed";
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) {
    r.output.append(buf, n);
  }
  int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

namespace {

// Namespaces xlbt-<pid>-<n> whose process is gone: a test process killed before its
// destructors ran (a ctest stopped mid-run) leaves them; the next one that makes a namespace
// removes them.
void RemoveStaleNamespaces() {
  const std::string prefix = "xlbt-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) {
      continue;
    }
    const long pid = std::atol(name.c_str() + prefix.size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      RunCommand("ip netns del " + name);
    }
  }
}

}  // namespace

Netns::Netns() : name_(UniqueName("xlbt")) {
  static std::once_flag stale_removed;
  std::call_once(stale_removed, RemoveStaleNamespaces);
  CommandResult r = RunCommand("ip netns add " + name_);
  ok_ = r.status == 0;
  if (!ok_) {
    error_ = "ip netns add " + name_ + ": " + r.output;
  }
}

Netns::~Netns() {
  if (!ok_) {
    return;
  }
  CommandResult r = RunCommand("ip netns del " + name_);
  if (r.status != 0) {
    std::fprintf(stderr, "ip netns del %s: %s\n", name_.c_str(), r.output.c_str());
  }
}

CommandResult Netns::Ip(const std::string& args) const {
  return RunCommand("ip -n " + name_ + " " + args);
}

bool Netns::AddVethPair(const std::string& a, const std::string& b) {
  std::string add = "link add " + a;
  add.append(" type veth peer name ").append(b);
  for (const std::string& cmd : {add, "link set " + a + " up", "link set " + b + " up"}) {
    CommandResult r = Ip(cmd);
    if (r.status != 0) {
      error_ = "ip -n " + name_;
      error_.append(" ").append(cmd).append(": ").append(r.output);
      return false;
    }
  }
  return true;
}

bool Netns::RunInside(const std::function<void()>& fn) {
  bool entered = false;
  std::thread t([&] {
    int fd = ::open(Path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return;
    }
    entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    if (entered) {
      fn();
    }
  });
  t.join();
  if (!entered) {
    error_ = "setns into " + Path() + " failed";
  }
  return entered;
}

}  // namespace xlb::testing
