// Text helpers every folder may use: values quoted in messages about bad input.
#ifndef XLB_UTIL_TEXT_H
#define XLB_UTIL_TEXT_H

#include <cstddef>
#include <string>
#include <string_view>

namespace xlb {

// `text` when it has at most `max_bytes` bytes; otherwise its longest prefix that ends on a
// UTF-8 character boundary and leaves room for "...", followed by "...". Messages quote values
// from objects and files; a cut inside a multi-byte character would make the message invalid
// UTF-8, which JSON encoders (the agent's status, nlohmann::json::dump) refuse.
inline std::string AbbreviateUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return std::string(text);
  }
  constexpr std::string_view kEllipsis = "...";
  size_t cut = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  // A continuation byte (10xxxxxx) is never where a character starts: step back to the byte
  // that starts it.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return std::string(text.substr(0, cut)) + std::string(kEllipsis);
}

// `text` without leading and trailing ASCII whitespace (Go's strings.TrimSpace on what
// Kubernetes objects hold).
inline std::string_view TrimAsciiSpace(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) {
    return {};
  }
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

}  // namespace xlb

#endif  // XLB_UTIL_TEXT_H
