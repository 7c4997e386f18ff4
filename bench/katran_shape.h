// The Katran-shaped program (bpf/xlb_katran_shape.bpf.c) from userspace: loads it with its
// connection table as large as the benchmark's conntrack, gives it one VIP whose Maglev ring
// spreads over `reals` backends, and reads its counters and flows. xlb-bench runs it through
// the same wrapper and floor subtraction as xlb_xdp: what Katran's per-packet work costs on
// this machine, beside xlb's.
#ifndef XLB_BENCH_KATRAN_SHAPE_H
#define XLB_BENCH_KATRAN_SHAPE_H

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "util/result.h"

struct xlb_katran_shape;  // generated skeleton (xlb_katran_shape.skel.h)

namespace xlb::bench {

class KatranShape {
 public:
  struct Counters {
    uint64_t new_flows = 0;  // LRU miss, ring lookup, one LRU insert
    uint64_t hits = 0;       // LRU hit
  };

  // `vip` (IPv4 text) and `port` are its one TCP VIP; reals get the addresses real_addr(1..n).
  static Result<std::unique_ptr<KatranShape>> Load(uint32_t lru_entries, const std::string& vip,
                                                   uint16_t port, uint32_t reals,
                                                   std::string (*real_addr)(uint32_t));
  ~KatranShape();
  KatranShape(const KatranShape&) = delete;
  KatranShape& operator=(const KatranShape&) = delete;

  int prog_fd() const;
  Result<Counters> ReadCounters() const;
  // How many flows the connection table holds.
  Result<uint64_t> Flows() const;
  // Empties the connection table; returns how many flows it held.
  Result<uint64_t> ClearFlows() const;
  const std::set<std::string>& real_addrs() const { return real_addrs_; }

 private:
  explicit KatranShape(::xlb_katran_shape* skel) : skel_(skel) {}
  ::xlb_katran_shape* skel_;
  std::set<std::string> real_addrs_;
};

}  // namespace xlb::bench

#endif  // XLB_BENCH_KATRAN_SHAPE_H
