#include "loader/test_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <string>

#include "loader/libbpf_opts.h"

namespace xlb {

namespace {

Result<TestRunResult> Run(int prog_fd, std::span<const uint8_t> in, uint32_t repeat, void* ctx,
                          size_t ctx_size, const char* kind) {
  // The kernel's own limit (bpf_test_init), said here because its EINVAL does not say it.
  if (in.size() < kMinTestRunFrame) {
    return Error{EINVAL, std::string("BPF_PROG_TEST_RUN of ") + kind + " needs at least " +
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
  opts.ctx_in = ctx;
  opts.ctx_size_in = static_cast<uint32_t>(ctx_size);
  opts.repeat = static_cast<int>(repeat);
  int ret = bpf_prog_test_run_opts(prog_fd, &opts);
  if (ret < 0) {
    return Error::FromRet(ret, std::string("bpf_prog_test_run_opts(") + kind + ", " +
                                   std::to_string(in.size()) + " bytes, repeat " +
                                   std::to_string(repeat) + ")");
  }
  result.out.resize(opts.data_size_out);
  result.retval = opts.retval;
  result.duration_ns = opts.duration;
  return result;
}

}  // namespace

Result<TestRunResult> TestRunXdpOn(int prog_fd, std::span<const uint8_t> in, int ifindex,
                                   uint32_t repeat) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(in.size());
  ctx.ingress_ifindex = static_cast<uint32_t>(ifindex);
  return Run(prog_fd, in, repeat, &ctx, sizeof(ctx), "XDP");
}

Result<TestRunResult> TestRunTc(int prog_fd, std::span<const uint8_t> in, int ifindex,
                                uint32_t repeat) {
  __sk_buff ctx{};
  ctx.ifindex = static_cast<uint32_t>(ifindex);
  return Run(prog_fd, in, repeat, ifindex > 0 ? &ctx : nullptr, ifindex > 0 ? sizeof(ctx) : 0,
             "TC");
}

Result<TestRunResult> TestRunXdp(int prog_fd, std::span<const uint8_t> in, uint32_t repeat) {
  return Run(prog_fd, in, repeat, nullptr, 0, "XDP");
}

}  // namespace xlb
