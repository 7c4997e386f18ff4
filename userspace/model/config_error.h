// Errors in configuration files (the embedded default source, weight policies): where the
// problem is (file, YAML document, field path, line) and what it is, so that an operator can
// go straight to it. Configuration is read in full and every problem is reported, not only the
// first, and nothing of a file with a problem is applied.
#ifndef XLB_USERSPACE_MODEL_CONFIG_ERROR_H
#define XLB_USERSPACE_MODEL_CONFIG_ERROR_H

#include <string>
#include <vector>

#include "util/result.h"

namespace xlb {

struct ConfigError {
  std::string file;     // as the caller named it ("policies/api.yaml")
  int document = 0;     // 1-based YAML document in the file; 0 when not known
  std::string field;    // path from the document root: "spec.http[0].route[1].weight"; may be ""
  std::string message;  // what is wrong: "expected an integer, got \"70%\""
  int line = 0;         // 1-based line in the file; 0 when not known

  // "api.yaml: document 2: spec.http[0].route[1].weight: expected ... (line 14)"
  std::string ToString() const;
};

using ConfigErrors = std::vector<ConfigError>;

// One line per error.
std::string ToString(const ConfigErrors& errors);

// A value or every error found while producing it (util/result.h). A function that finds one
// problem returns `ConfigErrors{ConfigError{...}}`; most collect them as they go.
template <typename T>
using ConfigResult = Result<T, ConfigErrors>;

inline std::string ConfigError::ToString() const {
  std::string out = file.empty() ? std::string("<input>") : file;
  if (document > 0) {
    out += ": document " + std::to_string(document);
  }
  if (!field.empty()) {
    out += ": " + field;
  }
  out += ": " + message;
  if (line > 0) {
    out += " (line " + std::to_string(line) + ")";
  }
  return out;
}

inline std::string ToString(const ConfigErrors& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    if (!out.empty()) {
      out += '\n';
    }
    out += e.ToString();
  }
  return out;
}

}  // namespace xlb

#endif  // XLB_USERSPACE_MODEL_CONFIG_ERROR_H
