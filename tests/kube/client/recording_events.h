// A ResourceEvents that records what the client reported: the state the calls add up to
// (keyed "namespace/name"), the counts, and a log to print when a test fails.
#ifndef XLB_TESTS_KUBE_CLIENT_RECORDING_EVENTS_H
#define XLB_TESTS_KUBE_CLIENT_RECORDING_EVENTS_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "userspace/kube/resource_events.h"

namespace xlb::kube {

inline std::string Key(const nlohmann::json& object) {
  const auto& meta = object.at("metadata");
  return meta.value("namespace", "") + "/" + meta.value("name", "");
}

class RecordingEvents : public ResourceEvents {
 public:
  void Replace(std::vector<nlohmann::json> items) override {
    std::lock_guard lock(mu_);
    state_.clear();
    for (auto& item : items) {
      std::string key = Key(item);  // before the move below
      state_[key] = std::move(item);
    }
    ++replaces_;
    log_.push_back("replace " + std::to_string(state_.size()));
    cv_.notify_all();
  }
  void Upsert(const nlohmann::json& object) override {
    std::lock_guard lock(mu_);
    state_[Key(object)] = object;
    ++upserts_;
    log_.push_back("upsert " + Key(object));
    cv_.notify_all();
  }
  void Delete(const nlohmann::json& object) override {
    std::lock_guard lock(mu_);
    state_.erase(Key(object));
    ++deletes_;
    log_.push_back("delete " + Key(object));
    cv_.notify_all();
  }
  void Unreachable(const std::string& why) override {
    std::lock_guard lock(mu_);
    unreachable_.push_back(why);
    log_.push_back("unreachable " + why);
    cv_.notify_all();
  }

  // Waits until `done` holds over this recorder (called under its lock).
  bool WaitFor(const std::function<bool(const RecordingEvents&)>& done,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done(*this); });
  }

  // state() and unreachable() only inside WaitFor predicates (they run under the lock); the
  // counts anywhere; the copies below from the test body.
  const std::map<std::string, nlohmann::json>& state() const { return state_; }
  int replaces() const { return replaces_; }
  int upserts() const { return upserts_; }
  int deletes() const { return deletes_; }
  const std::vector<std::string>& unreachable() const { return unreachable_; }

  std::vector<std::string> UnreachableCopy() {
    std::lock_guard lock(mu_);
    return unreachable_;
  }
  int Replaces() {
    std::lock_guard lock(mu_);
    return replaces_;
  }
  std::string Log() {
    std::lock_guard lock(mu_);
    std::string text;
    for (const auto& line : log_) text += line + "\n";
    return text;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, nlohmann::json> state_;
  std::atomic<int> replaces_{0}, upserts_{0}, deletes_{0};  // also read without the lock
  std::vector<std::string> unreachable_;
  std::vector<std::string> log_;
};

// Polls `done` until it holds or `timeout` passes (for conditions no event signals).
inline bool Eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

inline bool HasExactly(const RecordingEvents& r, size_t n) {
  return r.state().size() == n;
}

}  // namespace xlb::kube

#endif  // XLB_TESTS_KUBE_CLIENT_RECORDING_EVENTS_H
