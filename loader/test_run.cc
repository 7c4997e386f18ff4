#include "loader/test_run.h"

#include <bpf/bpf.h>

#include <string>

#include "loader/libbpf_opts.h"

namespace xlb {

Result<TestRunResult> TestRunXdp(int prog_fd, std::span<const uint8_t> in, uint32_t repeat) {
  // The kernel's own limit (bpf_test_init), said here because its EINVAL does not say it.
  if (in.size() < kMinTestRunFrame) {
    return Error{EINVAL, "BPF_PROG_TEST_RUN of XDP needs at least " +
                             std::to_string(kMinTestRunFrame) + " bytes (ETH_HLEN), got " +
                             std::to_string(in.size())};
  }
  TestRunResult result;
  // Room for encapsulation: a program may grow the frame with bpf_xdp_adjust_head/tail.
  result.out.resize(in.size() + 256);
  bpf_test_run_opts opts{};
  InitLibbpfOpts(opts);
  opts.data_in = in.data();
  opts.data_size_in = static_cast<uint32_t>(in.size());
  opts.data_out = result.out.data();
  opts.data_size_out = static_cast<uint32_t>(result.out.size());
  opts.repeat = static_cast<int>(repeat);
  int ret = bpf_prog_test_run_opts(prog_fd, &opts);
  if (ret < 0) {
    return Error::FromRet(ret, "bpf_prog_test_run_opts(" + std::to_string(in.size()) +
                                   " bytes, repeat " + std::to_string(repeat) + ")");
  }
  result.out.resize(opts.data_size_out);
  result.retval = opts.retval;
  result.duration_ns = opts.duration;
  return result;
}

}  // namespace xlb
