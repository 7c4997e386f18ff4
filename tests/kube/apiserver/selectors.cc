#include "tests/kube/apiserver/selectors.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>

namespace xlb::testing {

using json = nlohmann::json;

namespace {

std::string Trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string MetadataString(const json& obj, const char* field) {
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  const json& m = obj["metadata"];
  if (!m.contains(field) || !m[field].is_string()) return "";
  return m[field].get<std::string>();
}

}  // namespace

std::vector<LabelRequirement> ParseLabelSelector(const std::string& selector) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  for (char c : selector) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  std::vector<LabelRequirement> out;
  for (std::string part : parts) {
    part = Trim(part);
    if (part.empty()) continue;
    LabelRequirement req;
    auto bad = [&] {
      return std::invalid_argument("unable to parse requirement: \"" + part + "\"");
    };
    size_t paren = part.find('(');
    if (paren != std::string::npos) {
      std::string head = Trim(part.substr(0, paren));
      if (part.back() != ')') throw bad();
      size_t sp = head.find_last_of(' ');
      if (sp == std::string::npos) throw bad();
      std::string op = head.substr(sp + 1);
      req.key = Trim(head.substr(0, sp));
      if (op == "in")
        req.op = LabelRequirement::Op::kIn;
      else if (op == "notin")
        req.op = LabelRequirement::Op::kNotIn;
      else
        throw bad();
      for (auto& v : Split(part.substr(paren + 1, part.size() - paren - 2), ',')) {
        req.values.insert(Trim(v));
      }
    } else if (auto pos = part.find("!="); pos != std::string::npos) {
      req = {LabelRequirement::Op::kNotEquals,
             Trim(part.substr(0, pos)),
             {Trim(part.substr(pos + 2))}};
    } else if (auto pos2 = part.find("=="); pos2 != std::string::npos) {
      req = {
          LabelRequirement::Op::kEquals, Trim(part.substr(0, pos2)), {Trim(part.substr(pos2 + 2))}};
    } else if (auto pos3 = part.find('='); pos3 != std::string::npos) {
      req = {
          LabelRequirement::Op::kEquals, Trim(part.substr(0, pos3)), {Trim(part.substr(pos3 + 1))}};
    } else if (part[0] == '!') {
      req = {LabelRequirement::Op::kNotExists, Trim(part.substr(1)), {}};
    } else {
      req = {LabelRequirement::Op::kExists, part, {}};
    }
    auto valid = [](const std::string& s) {
      return std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '/';
      });
    };
    if (req.key.empty() || !valid(req.key)) throw bad();
    for (const auto& v : req.values) {
      if (!valid(v)) throw bad();
    }
    out.push_back(std::move(req));
  }
  return out;
}

bool LabelsMatch(const std::vector<LabelRequirement>& reqs, const json& obj) {
  const json* labels = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("labels") &&
      obj["metadata"]["labels"].is_object()) {
    labels = &obj["metadata"]["labels"];
  }
  for (const auto& r : reqs) {
    std::optional<std::string> value;
    if (labels != nullptr && labels->contains(r.key) && (*labels)[r.key].is_string()) {
      value = (*labels)[r.key].get<std::string>();
    }
    using Op = LabelRequirement::Op;
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!value || !r.values.contains(*value)) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (value && r.values.contains(*value)) return false;
        break;
      case Op::kExists:
        if (!value) return false;
        break;
      case Op::kNotExists:
        if (value) return false;
        break;
    }
  }
  return true;
}

std::vector<FieldRequirement> ParseFieldSelector(const std::string& selector) {
  std::vector<FieldRequirement> out;
  for (std::string part : Split(selector, ',')) {
    part = Trim(part);
    if (part.empty()) continue;
    FieldRequirement req;
    size_t pos;
    if ((pos = part.find("!=")) != std::string::npos) {
      req = {Trim(part.substr(0, pos)), false, Trim(part.substr(pos + 2))};
    } else if ((pos = part.find("==")) != std::string::npos) {
      req = {Trim(part.substr(0, pos)), true, Trim(part.substr(pos + 2))};
    } else if ((pos = part.find('=')) != std::string::npos) {
      req = {Trim(part.substr(0, pos)), true, Trim(part.substr(pos + 1))};
    } else {
      throw std::invalid_argument("invalid field selector: \"" + part + "\"");
    }
    if (req.field != "metadata.name" && req.field != "metadata.namespace") {
      throw std::invalid_argument(
          "field label not supported: " + req.field +
          " (the test apiserver supports metadata.name and metadata.namespace)");
    }
    out.push_back(std::move(req));
  }
  return out;
}

bool FieldsMatch(const std::vector<FieldRequirement>& reqs, const json& obj) {
  for (const auto& r : reqs) {
    std::string v = MetadataString(obj, r.field == "metadata.name" ? "name" : "namespace");
    if ((v == r.value) != r.equals) return false;
  }
  return true;
}

}  // namespace xlb::testing
