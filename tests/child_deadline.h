// Runs a piece of code in a forked child under a deadline, for regression tests of inputs that
// once hung a parser: a hang must fail the test, not stall CI, and a runaway allocation must
// not take the test runner with it (the child is killed).
#ifndef XLB_TESTS_CHILD_DEADLINE_H
#define XLB_TESTS_CHILD_DEADLINE_H

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

namespace xlb::testing {

// "ok" when `check` returned true in the child within `deadline`; otherwise what happened
// ("timed out", "returned false", "killed by signal 11").
inline std::string InChildWithin(std::chrono::milliseconds deadline,
                                 const std::function<bool()>& check) {
  const pid_t pid = ::fork();
  if (pid < 0) {
    return "fork failed";
  }
  if (pid == 0) {
    // A hang that also allocates without bound stops at 1 GiB instead of at the OOM killer.
    // Not under AddressSanitizer, whose shadow memory alone reserves terabytes of address
    // space: there the deadline stops it.
#if !defined(__SANITIZE_ADDRESS__)
    const rlimit as{1ul << 30, 1ul << 30};
    ::setrlimit(RLIMIT_AS, &as);
#endif
    ::_exit(check() ? 0 : 1);
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      break;
    }
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return "timed out";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status)) {
    return "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return WEXITSTATUS(status) == 0 ? "ok" : "returned false";
}

}  // namespace xlb::testing

#endif  // XLB_TESTS_CHILD_DEADLINE_H
