// Hermetic fixtures for the loader tests: unique bpffs pin dirs and network namespaces that
// are removed by destructors, also when an assertion fails half-way. Needs root, like every
// test here: without it they fail, they do not skip.
#ifndef XLB_TESTS_LOADER_TEST_ENV_H
#define XLB_TESTS_LOADER_TEST_ENV_H

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "loader/xdp_loader.h"

namespace xlb::testing {

// The XDP datapath loaded without pins (nothing outlives the test), with `maglev_size`
// slots per table; nullptr, with a test failure recorded, when it does not load.
std::unique_ptr<XdpDatapath> LoadHermetic(uint32_t maglev_size = XLB_MAGLEV_DEFAULT_SIZE);

// A name no other test process uses: PREFIX-<pid>-<n>.
std::string UniqueName(const std::string& prefix);

// /sys/fs/bpf/xlb-test-<pid>-<n>: not created here (the loader does that), removed with
// everything in it by the destructor.
class PinDir {
 public:
  PinDir();
  ~PinDir();
  PinDir(const PinDir&) = delete;
  PinDir& operator=(const PinDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Pin(const char* map_name) const { return path_ + "/" + map_name; }

 private:
  std::string path_;
};

struct CommandResult {
  int status = -1;     // exit status, or -1 when it did not exit normally
  std::string output;  // stdout and stderr
};
CommandResult RunCommand(const std::string& command);

// A network namespace of its own (`ip netns add xlbt-<pid>-<n>`), deleted with every
// interface in it by the destructor. Only namespace-local links, no addresses outside
// 198.18.0.0/15 and 2001:db8::/32, nothing sent.
class Netns {
 public:
  Netns();
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  const std::string& error() const { return error_; }
  std::string Path() const { return "/var/run/netns/" + name_; }

  // `ip -n NAME ARGS` (ip switches namespaces in its own process only).
  CommandResult Ip(const std::string& args) const;
  // A veth pair inside the namespace, both ends up; false (with error()) on failure.
  bool AddVethPair(const std::string& a, const std::string& b);
  // Runs fn on a thread that has entered the namespace (setns affects only that thread;
  // an ifindex is only meaningful inside its namespace). False if setns failed.
  bool RunInside(const std::function<void()>& fn);

 private:
  std::string name_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace xlb::testing

#endif  // XLB_TESTS_LOADER_TEST_ENV_H
