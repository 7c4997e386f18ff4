#include "userspace/model/yaml_fields.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "util/read_file.h"
#include "util/text.h"

namespace xlb::yaml {
namespace {

int LineOf(const YAML::Node& node, int fallback) {
  if (!node.IsDefined()) {
    return fallback;
  }
  const YAML::Mark mark = node.Mark();
  // yaml-cpp gives null nodes the mark of whatever follows them; keep the parent's line.
  if (mark.is_null() || node.IsNull()) {
    return fallback;
  }
  return mark.line + 1;
}

bool IsQuoted(const YAML::Node& node) {
  return node.Tag() == "!";
}

std::string Join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (const std::string_view item : items) {
    if (!out.empty()) {
      out += ", ";
    }
    out += item;
  }
  return out;
}

bool IsSeparator(const std::string& l) {
  return l.rfind("---", 0) == 0 && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
}

// The 1-based document that a 1-based line is in: one more than the `---` separators before
// it, where a separator before any content opens document 1 rather than ending one.
int DocumentOfLine(const std::string& text, int line) {
  std::istringstream in(text);
  std::string l;
  int separators = 0;
  bool opened = false;   // a leading separator opened document 1
  bool content = false;  // content seen before the first separator
  for (int n = 1; n < line && std::getline(in, l); ++n) {
    if (IsSeparator(l)) {
      if (separators == 0 && !opened && !content) {
        opened = true;
      } else {
        ++separators;
      }
      continue;
    }
    const size_t first = l.find_first_not_of(" \t\r");
    if (first != std::string::npos && l[first] != '#' && l[first] != '%') {
      content = true;
    }
  }
  return separators + 1;
}

// yaml-cpp 0.7's LoadAll never returns on some inputs: when a document begins with a token
// that no node starts with (a ',' at block level: ",", "{a: b},", "---\n,"), the parser emits
// a null document without consuming that token and starts the next document at the same
// place, for ever, allocating a node each time. This walks the events without building nodes
// and throws where a document would start at the position the previous one started at; the
// parser being deterministic, that is exactly the case in which it would loop.
class DocumentProgress : public YAML::EventHandler {
 public:
  explicit DocumentProgress(const std::string& text) : text_(text) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (started_ && mark.pos == last_start_.pos) {
      const bool known = mark.pos >= 0 && static_cast<size_t>(mark.pos) < text_.size();
      throw YAML::ParserException(
          mark, known ? std::string("unexpected '") + text_[mark.pos] + "'" : "unexpected token");
    }
    started_ = true;
    last_start_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  const std::string& text_;
  bool started_ = false;
  YAML::Mark last_start_;
};

void CheckDocumentsEnd(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentProgress progress(text);
  while (parser.HandleNextDocument(progress)) {
  }
}

}  // namespace

void Document::Error(std::string field, std::string message, int line) const {
  errors_->push_back(ConfigError{file_, index_, std::move(field), std::move(message), line});
}

Field::Field(const Document& doc, const YAML::Node& node) : Field(&doc, node, "", 0) {
  line_ = LineOf(node_, 0);
}

Field::Field(const Document* doc, const YAML::Node& node, std::string path, int fallback_line)
    : doc_(doc), node_(node), path_(std::move(path)), line_(0) {
  line_ = LineOf(node_, fallback_line);
}

bool Field::present() const {
  return node_.IsDefined() && !node_.IsNull();
}

Field Field::operator[](std::string_view key) const {
  std::string path = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  YAML::Node child;  // undefined unless found
  if (node_.IsDefined() && node_.IsMap()) {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        child = it->second;
        break;
      }
    }
  }
  if (!child.IsDefined()) {
    return Field(doc_, YAML::Node(YAML::NodeType::Undefined), std::move(path), line_);
  }
  return Field(doc_, child, std::move(path), line_);
}

void Field::Fail(const std::string& message) const {
  doc_->Error(path_, message, line_);
}

std::string Field::Describe() const {
  if (!present()) {
    return "nothing";
  }
  switch (node_.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    default:
      break;
  }
  return "\"" + AbbreviateUtf8(node_.Scalar(), 64) + "\"";
}

std::string Field::DescribeScalar() const {
  std::string out = Describe();
  if (present() && node_.IsScalar() && IsQuoted(node_)) {
    out += " (a quoted string)";
  }
  return out;
}

bool Field::Required() const {
  if (present()) {
    return true;
  }
  Fail("required field is missing");
  return false;
}

bool Field::RequiredValue(std::string_view want) const {
  if (!Required()) {
    return false;
  }
  const std::optional<std::string> v = String();
  if (!v) {
    return false;
  }
  if (*v != want) {
    Fail("expected " + std::string(want) + ", got " + Describe());
    return false;
  }
  return true;
}

bool Field::IsMap() const {
  if (!Required()) {
    return false;
  }
  if (!node_.IsMap()) {
    Fail("expected a mapping, got " + Describe());
    return false;
  }
  return true;
}

bool Field::IsSeq() const {
  if (!Required()) {
    return false;
  }
  if (!node_.IsSequence()) {
    Fail("expected a sequence, got " + Describe());
    return false;
  }
  return true;
}

bool Field::OnlyFields(std::initializer_list<std::string_view> known) const {
  if (!present() || !node_.IsMap()) {
    return true;
  }
  bool ok = true;
  std::set<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const int line = LineOf(it->first, line_);
    if (!it->first.IsScalar()) {
      doc_->Error(path_, "a key that is no string", line);
      ok = false;
      continue;
    }
    const std::string& key = it->first.Scalar();
    const std::string path = path_.empty() ? key : path_ + "." + key;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      doc_->Error(path, "unknown field \"" + key + "\" (xlb reads: " + Join(known) + ")", line);
      ok = false;
    } else if (!seen.insert(key).second) {
      doc_->Error(path, "field given twice", line);
      ok = false;
    }
  }
  return ok;
}

std::vector<Field> Field::Items() const {
  std::vector<Field> out;
  if (!present()) {
    return out;
  }
  if (!node_.IsSequence()) {
    Fail("expected a sequence, got " + Describe());
    return out;
  }
  for (size_t i = 0; i < node_.size(); ++i) {
    out.push_back(Field(doc_, node_[i], path_ + "[" + std::to_string(i) + "]", line_));
  }
  return out;
}

std::vector<std::pair<std::string, Field>> Field::Entries() const {
  std::vector<std::pair<std::string, Field>> out;
  if (!present()) {
    return out;
  }
  if (!node_.IsMap()) {
    Fail("expected a mapping, got " + Describe());
    return out;
  }
  std::set<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    if (!it->first.IsScalar()) {
      doc_->Error(path_, "a key that is no string", LineOf(it->first, line_));
      continue;
    }
    const std::string& key = it->first.Scalar();
    const std::string path = path_.empty() ? key : path_ + "." + key;
    if (!seen.insert(key).second) {
      doc_->Error(path, "field given twice", LineOf(it->first, line_));
      continue;
    }
    out.emplace_back(key, Field(doc_, it->second, path, LineOf(it->first, line_)));
  }
  return out;
}

std::optional<std::string> Field::String() const {
  if (!present()) {
    return std::nullopt;
  }
  if (!node_.IsScalar()) {
    Fail("expected a string, got " + Describe());
    return std::nullopt;
  }
  return node_.Scalar();
}

std::optional<int64_t> Field::Integer() const {
  if (!present()) {
    return std::nullopt;
  }
  if (node_.IsScalar() && !IsQuoted(node_)) {
    const std::string& s = node_.Scalar();
    int64_t v = 0;
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    if (begin != end && *begin == '+') {
      ++begin;
    }
    const auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec == std::errc() && ptr == end && begin != end) {
      return v;
    }
    if (ec == std::errc::result_out_of_range) {
      Fail("integer " + s + " is out of range");
      return std::nullopt;
    }
  }
  Fail("expected an integer, got " + DescribeScalar());
  return std::nullopt;
}

std::optional<int64_t> Field::IntegerIn(int64_t min, int64_t max) const {
  if (!present()) {
    return std::nullopt;
  }
  const std::string expected =
      "expected integer " + std::to_string(min) + "-" + std::to_string(max) + ", got ";
  if (!node_.IsScalar() || IsQuoted(node_)) {
    Fail(expected + DescribeScalar());
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty() || v < min || v > max) {
    Fail(expected + DescribeScalar());
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Field::Bool() const {
  if (!present()) {
    return std::nullopt;
  }
  if (node_.IsScalar() && !IsQuoted(node_)) {
    const std::string& s = node_.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") {
      return true;
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      return false;
    }
  }
  Fail("expected true or false, got " + DescribeScalar());
  return std::nullopt;
}

std::optional<std::string> Field::OneOf(std::initializer_list<std::string_view> allowed) const {
  if (!present()) {
    return std::nullopt;
  }
  if (node_.IsScalar() &&
      std::find(allowed.begin(), allowed.end(), node_.Scalar()) != allowed.end()) {
    return node_.Scalar();
  }
  Fail("expected one of " + Join(allowed) + ", got " + Describe());
  return std::nullopt;
}

std::optional<std::vector<std::string>> Field::Strings() const {
  if (!present()) {
    return std::nullopt;
  }
  if (!node_.IsSequence()) {
    Fail("expected a sequence of strings, got " + Describe());
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const Field& item : Items()) {
    if (auto s = item.String()) {
      out.push_back(std::move(*s));
    } else {
      if (!item.present()) {
        item.Fail("expected a string, got nothing");
      }
      ok = false;
    }
  }
  if (!ok) {
    return std::nullopt;
  }
  return out;
}

ConfigResult<std::vector<LoadedDocument>> LoadDocuments(const std::string& file,
                                                        const std::string& text) {
  std::vector<YAML::Node> nodes;
  try {
    CheckDocumentsEnd(text);
    nodes = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    std::string message = "YAML syntax error: " + e.msg;
    if (!e.mark.is_null()) {
      message += " at column " + std::to_string(e.mark.column + 1);
    }
    return ConfigErrors{
        ConfigError{file, line > 0 ? DocumentOfLine(text, line) : 0, "", message, line}};
  } catch (const YAML::Exception& e) {
    return ConfigErrors{ConfigError{file, 0, "", std::string("YAML error: ") + e.what(), 0}};
  }
  std::vector<LoadedDocument> out;
  out.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    out.push_back(LoadedDocument{static_cast<int>(i) + 1, nodes[i]});
  }
  return out;
}

ConfigResult<LoadedDocument> LoadOneDocument(const std::string& file, const std::string& text) {
  XLB_ASSIGN_OR_RETURN(auto docs, LoadDocuments(file, text));
  std::vector<LoadedDocument*> present;
  for (LoadedDocument& d : docs) {
    if (!d.root.IsNull()) {
      present.push_back(&d);
    }
  }
  if (present.size() != 1) {
    return ConfigErrors{ConfigError{
        file, present.size() > 1 ? present[1]->index : 0, "",
        present.empty() ? "no document in the file"
                        : "expected one document, got " + std::to_string(present.size()),
        0}};
  }
  return std::move(*present[0]);
}

ConfigResult<std::string> ReadFile(const std::string& path) {
  std::string text, error;
  if (!ReadFileUpTo(path, kMaxFileBytes, text, error)) {
    return ConfigErrors{ConfigError{path, 0, "", error, 0}};
  }
  return text;
}

}  // namespace xlb::yaml
