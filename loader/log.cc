#include "loader/log.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace xlb {
namespace {

std::mutex g_mu;
LogSink g_sink;
LogLevel g_level = [] {
  const char* env = std::getenv("XLB_LOG");
  return env != nullptr && std::string_view(env) == "debug" ? LogLevel::kDebug : LogLevel::kInfo;
}();

int LibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  LogLevel ours = level == LIBBPF_WARN   ? LogLevel::kWarn
                  : level == LIBBPF_INFO ? LogLevel::kInfo
                                         : LogLevel::kDebug;
  // Verifier logs arrive as one long message, so size the buffer to it.
  va_list copy;
  va_copy(copy, args);
  int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n < 0) {
    return n;
  }
  std::string text(static_cast<std::size_t>(n) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(n));
  std::string_view line(text);
  while (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
  }
  Log(ours,
      line.starts_with("libbpf: ") ? std::string(line) : std::string("libbpf: ").append(line));
  return n;
}

}  // namespace

LogSink SetLogSink(LogSink sink) {
  std::lock_guard lock(g_mu);
  return std::exchange(g_sink, std::move(sink));
}

void SetLogLevel(LogLevel level) {
  std::lock_guard lock(g_mu);
  g_level = level;
}

void Log(LogLevel level, std::string_view message) {
  LogSink sink;
  {
    std::lock_guard lock(g_mu);
    if (level < g_level) {
      return;
    }
    sink = g_sink;
  }
  if (sink) {
    sink(level, message);
    return;
  }
  const char* tag = level == LogLevel::kWarn ? "warn" : level == LogLevel::kInfo ? "info" : "debug";
  std::fprintf(stderr, "xlb %s: %.*s\n", tag, static_cast<int>(message.size()), message.data());
}

void RouteLibbpfLogs() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

}  // namespace xlb
