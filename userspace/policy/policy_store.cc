#include "userspace/policy/policy_store.h"

#include <utility>

namespace xlb {

ConfigResult<void> PolicyStore::Reject(ConfigErrors errors) {
  ++rejected_;
  last_errors_ = errors;
  return errors;
}

ConfigResult<void> PolicyStore::Replace(std::span<const PolicyFile> files, const Model& model) {
  auto parsed = ParsePolicies(files);
  if (!parsed.ok()) {
    return Reject(std::move(parsed).take_error());
  }
  ConfigErrors errors;
  (void)ResolveRoutes(*parsed, model, options_, errors);
  if (!errors.empty()) {
    return Reject(std::move(errors));
  }
  current_ = std::move(*parsed);
  ++accepted_;
  last_errors_.clear();
  return {};
}

ConfigResult<void> PolicyStore::ReplaceFromPath(const std::string& path, const Model& model) {
  auto files = ReadPolicyPath(path);
  if (!files.ok()) {
    return Reject(std::move(files).take_error());
  }
  return Replace(*files, model);
}

Routes PolicyStore::RoutesFor(const Model& model, ConfigErrors& problems) const {
  return ResolveRoutes(current_, model, options_, problems);
}

std::vector<ServiceBackends> PolicyStore::Plan(const Model& model, ConfigErrors& problems) const {
  return PlanBackends(model, RoutesFor(model, problems));
}

}  // namespace xlb
