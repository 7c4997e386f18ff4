// Real TCP through a mode's node: a client in the generator namespace, a server on every
// backend address in the sink namespace (the sink's XDP program passes TCP).
#ifndef XLB_BENCH_PERF_PERF_TCP_H
#define XLB_BENCH_PERF_PERF_TCP_H

#include <cstdint>

#include "perf_topology.h"

namespace xlb::perf {

struct TcpFigures {
  uint64_t connections = 0;  // completed: connect, 64-byte request, 64-byte answer, close
  double seconds = 0;
  double cps() const { return seconds > 0 ? connections / seconds : 0; }
  double connect_p50_us = 0, connect_p99_us = 0;  // connect() to the answer, new connection
  double connect_max_us = 0;  // a retransmitted SYN shows here (1 s) before anywhere else
  uint64_t requests = 0;      // on one kept connection
  double request_p50_us = 0, request_p99_us = 0;  // request to answer, established
};

// One connection at a time for `seconds`, then `seconds` of requests on one connection.
// Throws on a failed connection (the path is broken, not slow).
TcpFigures RunTcp(const ModeNet& net, double seconds);

}  // namespace xlb::perf

#endif  // XLB_BENCH_PERF_PERF_TCP_H
