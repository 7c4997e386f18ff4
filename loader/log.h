// The loader's few log lines (fallbacks, map reuse, libbpf warnings). Plain stderr by
// default; the agent or a test can take them over with SetLogSink.
#ifndef XLB_LOADER_LOG_H
#define XLB_LOADER_LOG_H

#include <functional>
#include <string_view>

namespace xlb {

enum class LogLevel { kDebug, kInfo, kWarn };

using LogSink = std::function<void(LogLevel, std::string_view)>;

// Replaces the sink; an empty function restores stderr. Returns the previous sink.
LogSink SetLogSink(LogSink sink);
// Lines below this level are dropped (default kInfo). XLB_LOG=debug in the environment
// lowers it, and also lets libbpf's debug lines through.
void SetLogLevel(LogLevel level);
void Log(LogLevel level, std::string_view message);

// Routes libbpf's own messages (verifier logs included) through Log. Idempotent; Load()
// calls it.
void RouteLibbpfLogs();

}  // namespace xlb

#endif  // XLB_LOADER_LOG_H
