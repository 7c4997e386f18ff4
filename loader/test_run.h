// BPF_PROG_TEST_RUN for XDP programs: one frame in, verdict and frame out. Golden-packet
// tests and the benchmark run the datapath through this.
#ifndef XLB_LOADER_TEST_RUN_H
#define XLB_LOADER_TEST_RUN_H

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "util/result.h"

namespace xlb {

struct TestRunResult {
  uint32_t retval = 0;       // the XDP verdict (XDP_PASS, XDP_DROP, XDP_TX, ...)
  std::vector<uint8_t> out;  // the frame as the program left it
  uint32_t duration_ns = 0;  // per repetition, as the kernel averages it over `repeat`
};

// The kernel refuses shorter XDP test input (EINVAL): a frame shorter than an Ethernet
// header cannot be run through BPF_PROG_TEST_RUN, only shrunk inside a program
// (bpf_xdp_adjust_tail) after it starts.
inline constexpr size_t kMinTestRunFrame = 14;

// Runs prog_fd on a copy of `in`, `repeat` times (the kernel reuses one buffer, so later
// repetitions see what earlier ones wrote). The output may grow by up to 256 bytes.
Result<TestRunResult> TestRunXdp(int prog_fd, std::span<const uint8_t> in, uint32_t repeat = 1);

// The same, as if the frame arrived on ifindex (xdp_md.ingress_ifindex): bpf_fib_lookup and
// XDP_TX decisions then see that interface of the caller's network namespace.
Result<TestRunResult> TestRunXdpOn(int prog_fd, std::span<const uint8_t> in, int ifindex,
                                   uint32_t repeat = 1);

// A TC (sched_cls) program on one Ethernet frame; retval is the TC verdict (TC_ACT_OK,
// TC_ACT_SHOT, TC_ACT_REDIRECT: the kernel does not carry out a redirect in a test run).
// With ifindex > 0 the skb arrives on that interface of the caller's network namespace
// (__sk_buff.ifindex), otherwise on loopback. The kernel runs every repetition on the same
// skb, so later ones see what earlier ones wrote.
Result<TestRunResult> TestRunTc(int prog_fd, std::span<const uint8_t> in, int ifindex = 0,
                                uint32_t repeat = 1);

}  // namespace xlb

#endif  // XLB_LOADER_TEST_RUN_H
