// Reading weight policies from YAML files: a file or a directory of files, each with one or
// more documents (`---`). See policy.h for the kinds and their meaning.
//
// Parsing checks everything that needs no Model: kinds and API versions, field names and
// types, weights (integers >= 0, not all 0), ports, the spill-over mode. Checks against the
// clusterset (a host that names no service, a subset or cluster that does not exist, two
// policies for one service) are routes.h's.
#ifndef XLB_USERSPACE_POLICY_POLICY_PARSE_H
#define XLB_USERSPACE_POLICY_POLICY_PARSE_H

#include <span>
#include <string>
#include <vector>

#include "userspace/model/config_error.h"
#include "userspace/policy/policy.h"

namespace xlb {

struct PolicyFile {
  std::string name;  // how errors name it: the path it was read from
  std::string text;
};

// `path` is a file, or a directory whose regular files ending in .yaml, .yml or .json are read
// in name order (not recursively; names starting with '.' are skipped, which also skips the
// `..data` links of a mounted ConfigMap).
ConfigResult<std::vector<PolicyFile>> ReadPolicyPath(const std::string& path);

// Every policy of `files`, or every error in them.
ConfigResult<PolicySet> ParsePolicies(std::span<const PolicyFile> files);

}  // namespace xlb

#endif  // XLB_USERSPACE_POLICY_POLICY_PARSE_H
