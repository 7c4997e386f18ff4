// Errors in configuration files (the embedded default source, weight policies): where the
// problem is (file, YAML document, field path, line) and what it is, so that an operator can
// go straight to it. Configuration is read in full and every problem is reported, not only the
// first, and nothing of a file with a problem is applied.
#ifndef XLB_USERSPACE_MODEL_CONFIG_ERROR_H
#define XLB_USERSPACE_MODEL_CONFIG_ERROR_H

#include <string>
#include <utility>
#include <variant>
#include <vector>

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

// A value or every error found while producing it; the shape of loader/result.h's Result,
// with configuration errors in place of errno.
template <typename T>
class [[nodiscard]] ConfigResult {
 public:
  ConfigResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  ConfigResult(ConfigErrors errors)                                        // NOLINT: implicit
      : v_(std::in_place_index<1>, std::move(errors)) {}
  ConfigResult(ConfigError error)  // NOLINT: implicit
      : v_(std::in_place_index<1>, ConfigErrors{std::move(error)}) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const ConfigErrors& errors() const { return std::get<1>(v_); }
  ConfigErrors&& take_errors() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, ConfigErrors> v_;
};

// No value, only success or the errors.
template <>
class [[nodiscard]] ConfigResult<void> {
 public:
  ConfigResult() = default;
  ConfigResult(ConfigErrors errors) : errors_(std::move(errors)) {}  // NOLINT: implicit

  bool ok() const { return errors_.empty(); }
  explicit operator bool() const { return ok(); }
  const ConfigErrors& errors() const { return errors_; }

 private:
  ConfigErrors errors_;
};

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
