#include "userspace/agent/pod_interfaces.h"

#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace xlb {

PodInterfaces::PodInterfaces(std::vector<std::string> globs, AttachFn attach, LogFn log)
    : globs_(std::move(globs)), attach_(std::move(attach)), log_(std::move(log)) {}

bool PodInterfaces::Attach(int ifindex, const std::string& name) {
  auto prog = attach_(ifindex);
  if (!prog.ok()) {
    const std::string why = prog.error().ToString();
    if (failed_[ifindex] != why) {
      failed_[ifindex] = why;
      log_(LogLevel::kWarn, "attach xlb_tc to " + name + ": " + why + "; retrying");
    }
    return false;
  }
  failed_.erase(ifindex);
  log_(LogLevel::kInfo,
       "attached xlb_tc (program " + std::to_string(*prog) + ") to " + name + " (TC ingress)");
  attached_[ifindex] = name;
  return true;
}

bool PodInterfaces::Scan() {
  std::map<int, std::string> present;
  if (struct if_nameindex* names = ::if_nameindex()) {
    for (struct if_nameindex* i = names; i->if_index != 0; ++i) {
      if (MatchesAny(globs_, i->if_name)) {
        present.emplace(static_cast<int>(i->if_index), i->if_name);
      }
    }
    ::if_freenameindex(names);
  }
  std::erase_if(attached_, [&](const auto& a) { return present.count(a.first) == 0; });
  std::erase_if(failed_, [&](const auto& f) { return present.count(f.first) == 0; });
  bool ok = true;
  for (const auto& [ifindex, name] : present) {
    if (attached_.count(ifindex) == 0) {
      ok = Attach(ifindex, name) && ok;
    }
  }
  return ok;
}

void PodInterfaces::OnLinkEvent(const LinkEvent& event) {
  if (event.removed) {
    attached_.erase(event.ifindex);
    failed_.erase(event.ifindex);
    return;
  }
  if (event.name.empty() || !MatchesAny(globs_, event.name)) {
    // Renamed away from the globs: no longer ours to look after (the filter stays, as it would
    // for an interface that a rescan no longer matches).
    attached_.erase(event.ifindex);
    return;
  }
  auto it = attached_.find(event.ifindex);
  if (it == attached_.end()) {
    Attach(event.ifindex, event.name);
  } else {
    it->second = event.name;  // a flag change or a rename within the globs: still attached
  }
}

Result<std::unique_ptr<PodInterfaceWatch>> PodInterfaceWatch::Start(
    PodInterfaces& pods, LinkEventSocket events, std::chrono::milliseconds rescan) {
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop) {
    return Error::FromErrno(errno, "eventfd");
  }
  return std::unique_ptr<PodInterfaceWatch>(
      new PodInterfaceWatch(pods, std::move(events), std::move(stop), rescan));
}

PodInterfaceWatch::PodInterfaceWatch(PodInterfaces& pods, LinkEventSocket events, UniqueFd stop,
                                     std::chrono::milliseconds rescan)
    : pods_(pods), events_(std::move(events)), stop_(std::move(stop)), rescan_(rescan) {
  thread_ = std::thread([this] { Run(); });
}

PodInterfaceWatch::~PodInterfaceWatch() {
  const uint64_t one = 1;
  if (::write(stop_.get(), &one, sizeof(one)) != sizeof(one)) {
    // An eventfd write fails only when its counter would overflow: it is stopping already.
  }
  thread_.join();
}

void PodInterfaceWatch::Run() {
  using Clock = std::chrono::steady_clock;
  auto next_scan = Clock::now() + rescan_;
  bool events_live = true;
  for (;;) {
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_scan - Clock::now());
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {events_.fd(), POLLIN, 0}};
    const int n =
        ::poll(fds, events_live ? 2 : 1, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
    if (n < 0 && errno != EINTR) {
      pods_.log()(LogLevel::kWarn, std::string("poll(link events): ") + std::strerror(errno));
    }
    if (fds[0].revents != 0) {
      return;
    }
    bool rescan = Clock::now() >= next_scan;
    if (events_live && fds[1].revents != 0) {
      auto batch = events_.Read();
      if (!batch.ok()) {
        // Not ENOBUFS (Read() takes that in its stride): the socket is broken, and polling it
        // would spin. The rescan alone keeps pods covered, a rescan interval late.
        pods_.log()(LogLevel::kWarn,
                    batch.error().ToString() + "; link events off, pod interfaces only rescanned");
        events_live = false;
        rescan = true;
      } else {
        for (const LinkEvent& e : batch->events) {
          pods_.OnLinkEvent(e);
        }
        if (batch->overflowed) {
          pods_.log()(LogLevel::kInfo, "link events were lost (ENOBUFS); rescanning");
          rescan = true;
        }
      }
    }
    if (rescan) {
      pods_.Scan();
      next_scan = Clock::now() + rescan_;
    }
  }
}

}  // namespace xlb
