// Strict reading of YAML configuration with errors that name the file, the document, the
// field path and the line. Shared by the embedded default source (config_source.h) and the
// weight policies (userspace/policy/).
//
// A Field is a node together with its path from the document root ("spec.http[0].route");
// its typed reads report a ConfigError into the document's error list and return nullopt when
// the value has the wrong type, so that a parser can carry on and report every problem in one
// pass. YAML null (`~`, or a key with no value) reads as absent, as in Kubernetes.
#ifndef XLB_USERSPACE_MODEL_YAML_FIELDS_H
#define XLB_USERSPACE_MODEL_YAML_FIELDS_H

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/model/config_error.h"

namespace xlb::yaml {

// The error sink of one document of one file.
class Document {
 public:
  Document(std::string file, int index, ConfigErrors& errors)
      : file_(std::move(file)), index_(index), errors_(&errors) {}

  void Error(std::string field, std::string message, int line) const;
  const std::string& file() const { return file_; }
  int index() const { return index_; }

 private:
  std::string file_;
  int index_;
  ConfigErrors* errors_;
};

class Field {
 public:
  // The root of a document.
  Field(const Document& doc, const YAML::Node& node);

  const std::string& path() const { return path_; }
  int line() const { return line_; }  // 1-based; an absent field has its parent's line
  const YAML::Node& node() const { return node_; }

  // Defined and not null.
  bool present() const;

  // A child of a mapping; absent when this is no mapping or has no such key.
  Field operator[](std::string_view key) const;

  // Reports `message` at this field.
  void Fail(const std::string& message) const;

  // Shape checks: true if present and of the kind, otherwise report ("expected a mapping, got
  // a sequence") and return false. An absent field reports "required field is missing".
  bool IsMap() const;
  bool IsSeq() const;
  // Reports "required field is missing" if absent; true if present.
  bool Required() const;
  // A required string that must be exactly `want` (a header's apiVersion or kind): reports
  // "required field is missing", an ill-typed value, or "expected WANT, got ..."; true when
  // it is `want`.
  bool RequiredValue(std::string_view want) const;

  // Reports each key not among `known` ("unknown field \"foo\" (xlb reads: a, b)"), each key
  // that appears twice, and each key that is no string. Returns false if it reported any.
  bool OnlyFields(std::initializer_list<std::string_view> known) const;

  // The items of a sequence / the entries of a mapping, as fields. Empty when absent; when
  // present but of another kind, reports and returns empty.
  std::vector<Field> Items() const;
  std::vector<std::pair<std::string, Field>> Entries() const;

  // Typed scalar reads. nullopt when absent (no report) or ill-typed (reported).
  std::optional<std::string> String() const;
  // Any integer that fits int64; "expected an integer, got \"70.5\"".
  std::optional<int64_t> Integer() const;
  // "expected integer 1-65535, got \"http\"".
  std::optional<int64_t> IntegerIn(int64_t min, int64_t max) const;
  std::optional<bool> Bool() const;
  // A string that is one of `allowed` ("expected one of TCP, UDP, SCTP, got \"tcp\"").
  std::optional<std::string> OneOf(std::initializer_list<std::string_view> allowed) const;
  // A list of strings.
  std::optional<std::vector<std::string>> Strings() const;

  // How the value reads in a message: "\"http\"", "a mapping", "a sequence"; a scalar longer
  // than 64 bytes is cut (between UTF-8 characters) and ends in "...".
  std::string Describe() const;
  // The same, saying when a scalar was quoted (where a number or boolean was expected):
  // "\"70\" (a quoted string)".
  std::string DescribeScalar() const;

 private:
  Field(const Document* doc, const YAML::Node& node, std::string path, int fallback_line);

  const Document* doc_;
  YAML::Node node_;
  std::string path_;
  int line_;
};

// One YAML document of a file.
struct LoadedDocument {
  int index;  // 1-based
  YAML::Node root;
};

// Every document of `text` (empty documents included, so that indexes match the file's `---`
// separators). A syntax error is reported with its line and the document it is in; so is input
// on which yaml-cpp 0.7 would loop for ever (a stray ',' where a document starts).
ConfigResult<std::vector<LoadedDocument>> LoadDocuments(const std::string& file,
                                                        const std::string& text);

// The one document of a file that must hold exactly one (empty documents, such as after a
// trailing `---`, do not count): "no document in the file", or "expected one document, got N"
// at the second.
ConfigResult<LoadedDocument> LoadOneDocument(const std::string& file, const std::string& text);

// Configs and policies beyond this are an error, not all of the node's memory (a path that
// names /dev/zero): 10,000 services with 30 endpoints each are about 20 MiB of YAML.
inline constexpr size_t kMaxFileBytes = 256 << 20;
// The whole of a file, or a ConfigError naming it.
ConfigResult<std::string> ReadFile(const std::string& path);

}  // namespace xlb::yaml

#endif  // XLB_USERSPACE_MODEL_YAML_FIELDS_H
