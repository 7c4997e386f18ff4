// The policies in force. A new set of policy files replaces the old one as a whole or not at
// all: every file is parsed and resolved against the current model, and one error anywhere
// rejects the set, keeps the last good one in force and says what is wrong (file, document,
// field). An empty set is a valid set: every service then gets the default weights.
#ifndef XLB_USERSPACE_POLICY_POLICY_STORE_H
#define XLB_USERSPACE_POLICY_POLICY_STORE_H

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "userspace/model/config_error.h"
#include "userspace/model/model.h"
#include "userspace/policy/policy.h"
#include "userspace/policy/policy_parse.h"
#include "userspace/policy/routes.h"
#include "userspace/policy/weights.h"

namespace xlb {

class PolicyStore {
 public:
  explicit PolicyStore(PolicyOptions options = {}) : options_(std::move(options)) {}

  // Offers the complete new set `files`. Accepted: it is in force from now on. Rejected: the
  // previous set stays, and the errors are returned (and kept in last_errors()).
  ConfigResult<void> Replace(std::span<const PolicyFile> files, const Model& model);
  // The same, with the files of a policy file or directory (ReadPolicyPath()).
  ConfigResult<void> ReplaceFromPath(const std::string& path, const Model& model);

  const PolicySet& current() const { return current_; }
  const PolicyOptions& options() const { return options_; }
  uint64_t accepted() const { return accepted_; }                   // sets accepted so far
  uint64_t rejected() const { return rejected_; }                   // sets rejected so far
  const ConfigErrors& last_errors() const { return last_errors_; }  // empty after an accept

  // The routes of the set in force against `model`, which may have changed since the set was
  // accepted: a policy part that no longer resolves (its service is gone) is left out and
  // reported in `problems`.
  Routes RoutesFor(const Model& model, ConfigErrors& problems) const;

  // PlanBackends() of the set in force.
  std::vector<ServiceBackends> Plan(const Model& model, ConfigErrors& problems) const;

 private:
  ConfigResult<void> Reject(ConfigErrors errors);

  PolicyOptions options_;
  PolicySet current_;
  uint64_t accepted_ = 0;
  uint64_t rejected_ = 0;
  ConfigErrors last_errors_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_POLICY_POLICY_STORE_H
