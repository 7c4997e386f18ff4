// xlb_tc on every interface matching a --pod-iface glob, from the moment it appears: a new pod's
// first packet (its first DNS query, typically) must already meet xlb_tc on the host side of
// its veth, or it goes to a ClusterIP nobody answers.
//
// Two ways in, one state:
//   - rtnetlink link events (RTM_NEWLINK, RTM_DELLINK on RTMGRP_LINK): a new veth is attached
//     within a millisecond or so of its creation (tests/agent: AgentInterfaces);
//   - a periodic rescan of every interface (--iface-rescan), the safety net for events the
//     kernel dropped (ENOBUFS, which also triggers a rescan at once) and for attaches that
//     failed and are retried.
//
// PodInterfaceWatch runs both on a thread of its own that blocks in poll() on the netlink
// socket and a stop eventfd. The agent's loop cannot wait there itself: with --kube it blocks
// on the kube source's condition variable, which a socket cannot wake; and a new pod must not
// wait for a sync of ten thousand services to finish either.
#ifndef XLB_USERSPACE_AGENT_POD_INTERFACES_H
#define XLB_USERSPACE_AGENT_POD_INTERFACES_H

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "loader/fd.h"
#include "loader/log.h"
#include "userspace/agent/rtnetlink.h"
#include "util/result.h"

namespace xlb {

class PodInterfaces {
 public:
  // Attaches xlb_tc to an ifindex and leaves it attached (the filter outlives the agent);
  // returns the program id.
  using AttachFn = std::function<Result<uint32_t>(int ifindex)>;
  using LogFn = std::function<void(LogLevel, const std::string&)>;

  PodInterfaces(std::vector<std::string> globs, AttachFn attach, LogFn log);

  // Lists every interface: attaches to new matches, forgets interfaces that went away. False
  // when an attach failed (logged once per interface and error, retried at the next scan or
  // event).
  bool Scan();
  // One link event: a new or renamed matching interface is attached now; a removed one is
  // forgotten.
  void OnLinkEvent(const LinkEvent& event);

  const std::vector<std::string>& globs() const { return globs_; }
  const LogFn& log() const { return log_; }

 private:
  bool Attach(int ifindex, const std::string& name);

  std::vector<std::string> globs_;
  AttachFn attach_;
  LogFn log_;
  std::map<int, std::string> attached_;  // ifindex -> name
  std::map<int, std::string> failed_;    // ifindex -> last error logged
};

class PodInterfaceWatch {
 public:
  // `events` must have been opened before `pods` last scanned, so nothing falls in between.
  // Owns nothing of `pods` but the right to use it from now on: the caller must not touch it
  // until this is destroyed.
  static Result<std::unique_ptr<PodInterfaceWatch>> Start(PodInterfaces& pods,
                                                          LinkEventSocket events,
                                                          std::chrono::milliseconds rescan);
  ~PodInterfaceWatch();  // stops the thread and waits for it
  PodInterfaceWatch(const PodInterfaceWatch&) = delete;
  PodInterfaceWatch& operator=(const PodInterfaceWatch&) = delete;

 private:
  PodInterfaceWatch(PodInterfaces& pods, LinkEventSocket events, UniqueFd stop,
                    std::chrono::milliseconds rescan);
  void Run();

  PodInterfaces& pods_;
  LinkEventSocket events_;
  UniqueFd stop_;  // an eventfd: written once by the destructor
  std::chrono::milliseconds rescan_;
  std::thread thread_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_POD_INTERFACES_H
