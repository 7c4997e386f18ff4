// The benchmark wrapper (bpf/xlb_bench.bpf.c) from userspace: loads its skeleton, points its
// tail call at the program under test, and writes the frame it restores before every
// repetition of BPF_PROG_TEST_RUN.
#ifndef XLB_BENCH_BENCH_WRAPPER_H
#define XLB_BENCH_BENCH_WRAPPER_H

#include <cstdint>
#include <memory>
#include <span>

#include "util/result.h"

struct xlb_bench;  // generated skeleton (xlb_bench.skel.h)

namespace xlb::bench {

// Every benchmark frame is exactly this long: the wrapper copies a fixed-size template.
// 160 bytes: room for the longest tunnel frame the benchmark decapsulates (IPv6 outer, VXLAN,
// IPv6/TCP inner: 144 bytes of headers).
inline constexpr uint32_t kFrameLen = 160;

class BenchWrapper {
 public:
  static Result<std::unique_ptr<BenchWrapper>> Load();
  ~BenchWrapper();
  BenchWrapper(const BenchWrapper&) = delete;
  BenchWrapper& operator=(const BenchWrapper&) = delete;

  int prog_fd() const;

  // The program the wrapper tail-calls after restoring the frame.
  Result<void> SetTarget(int prog_fd);

  // The frame every repetition starts from, on every possible CPU. With stamp_off != 0,
  // each repetition also writes a per-CPU counter (host order) over the 4 bytes at stamp_off,
  // so no two repetitions carry the same bytes there. CPU c's counter starts at
  // c * StampsPerCpu(), so a run that migrates between CPUs (the kernel may reschedule
  // between batches of repetitions) never repeats a stamp as long as it has fewer than
  // StampsPerCpu() repetitions. Rewriting the frame restarts the counters.
  Result<void> SetFrame(std::span<const uint8_t> frame, uint32_t stamp_off);
  // 2^32 / possible CPUs: the distinct stamps each CPU has before it meets the next one's.
  static Result<uint32_t> StampsPerCpu();

 private:
  explicit BenchWrapper(::xlb_bench* skel) : skel_(skel) {}
  ::xlb_bench* skel_;
};

}  // namespace xlb::bench

#endif  // XLB_BENCH_BENCH_WRAPPER_H
