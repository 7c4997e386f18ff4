// RFC 3339 timestamps as Kubernetes writes them (metav1.Time, MicroTime): credentials'
// expirationTimestamp, EndpointSlices' last-change-trigger-time. Header-only: the Kubernetes
// client and the Kubernetes sources both read them, and neither depends on the other.
#ifndef XLB_UTIL_RFC3339_H
#define XLB_UTIL_RFC3339_H

#include <time.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace xlb {

// "2026-11-22T01:02:03Z", "...T01:02:03.123456Z", "...T01:02:03+02:00" → a time point.
// The offset is exactly Z or [+-]HH:MM. A time outside what system_clock holds (before 1677,
// after 2262) reads as its min() or max().
inline std::optional<std::chrono::system_clock::time_point> ParseRfc3339(const std::string& text) {
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) {
    return std::nullopt;
  }
  int64_t nanos = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 9) {
        nanos = nanos * 10 + (*rest - '0');
        ++digits;
      }
      ++rest;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    for (; digits < 9; ++digits) nanos *= 10;
  }
  int64_t offset_seconds = 0;
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    // Exactly [+-]HH:MM; each character is checked before the next is read, so a short offset
    // stops at the terminating NUL.
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    const char* o = rest + 1;
    if (!(digit(o[0]) && digit(o[1]) && o[2] == ':' && digit(o[3]) && digit(o[4]))) {
      return std::nullopt;
    }
    const int hh = (o[0] - '0') * 10 + (o[1] - '0');
    const int mm = (o[3] - '0') * 10 + (o[4] - '0');
    offset_seconds = (*rest == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    rest = o + 5;
  } else {
    return std::nullopt;
  }
  if (*rest != '\0') {
    return std::nullopt;
  }
  using Clock = std::chrono::system_clock;
  // system_clock counts nanoseconds in 64 bits (about 1677 to 2262); a time outside reads as
  // the bound rather than overflowing (an expiry in 9999 is "never").
  const int64_t seconds = static_cast<int64_t>(::timegm(&tm)) - offset_seconds;
  constexpr int64_t kMaxSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max()).count() - 1;
  constexpr int64_t kMinSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::min()).count() + 1;
  if (seconds > kMaxSeconds) {
    return Clock::time_point::max();
  }
  if (seconds < kMinSeconds) {
    return Clock::time_point::min();
  }
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
}

}  // namespace xlb

#endif  // XLB_UTIL_RFC3339_H
