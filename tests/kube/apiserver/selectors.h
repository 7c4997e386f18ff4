// Label and field selectors as the API server reads them from `labelSelector` and
// `fieldSelector`, for the test API server.
#ifndef XLB_TESTS_KUBE_APISERVER_SELECTORS_H
#define XLB_TESTS_KUBE_APISERVER_SELECTORS_H

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace xlb::testing {

// A label selector requirement: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`.
struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kExists, kNotExists, kIn, kNotIn } op;
  std::string key;
  std::set<std::string> values;
};

// Throws std::invalid_argument naming the requirement it cannot read.
std::vector<LabelRequirement> ParseLabelSelector(const std::string& selector);
bool LabelsMatch(const std::vector<LabelRequirement>& requirements, const nlohmann::json& obj);

// Field selectors: the two every resource supports, metadata.name and metadata.namespace.
struct FieldRequirement {
  std::string field;
  bool equals;
  std::string value;
};

// Throws std::invalid_argument naming the requirement or the unsupported field.
std::vector<FieldRequirement> ParseFieldSelector(const std::string& selector);
bool FieldsMatch(const std::vector<FieldRequirement>& requirements, const nlohmann::json& obj);

}  // namespace xlb::testing

#endif  // XLB_TESTS_KUBE_APISERVER_SELECTORS_H
