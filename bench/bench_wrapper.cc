#include "bench_wrapper.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "xlb_bench.skel.h"

namespace xlb::bench {
namespace {

// Mirror of struct xlb_bench_tmpl in bpf/xlb_bench.bpf.c; Load() checks the map's value size.
struct BenchTemplate {
  alignas(8) uint8_t frame[kFrameLen];
  uint32_t stamp_off;
  uint32_t counter;
};
static_assert(sizeof(BenchTemplate) == kFrameLen + 8, "xlb_bench_tmpl layout");
static_assert(sizeof(BenchTemplate) % 8 == 0, "per-CPU values are laid out at 8-byte strides");

}  // namespace

Result<std::unique_ptr<BenchWrapper>> BenchWrapper::Load() {
  ::xlb_bench* skel = xlb_bench__open_and_load();
  if (skel == nullptr) {
    return Error::FromErrno(errno, "xlb_bench__open_and_load");
  }
  std::unique_ptr<BenchWrapper> wrapper(new BenchWrapper(skel));
  const uint32_t value_size = bpf_map__value_size(skel->maps.xlb_bench_tmpl);
  if (value_size != sizeof(BenchTemplate)) {
    return Error{EINVAL, "xlb_bench_tmpl: value size " + std::to_string(value_size) +
                             ", bench/bench_wrapper.cc expects " +
                             std::to_string(sizeof(BenchTemplate))};
  }
  return wrapper;
}

BenchWrapper::~BenchWrapper() {
  xlb_bench__destroy(skel_);
}

int BenchWrapper::prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_bench);
}

Result<void> BenchWrapper::SetTarget(int prog_fd) {
  const uint32_t key = 0;
  int ret = bpf_map_update_elem(bpf_map__fd(skel_->maps.xlb_bench_target), &key, &prog_fd, BPF_ANY);
  return CheckRet(ret, "bpf_map_update_elem(xlb_bench_target)");
}

Result<uint32_t> BenchWrapper::StampsPerCpu() {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) {
    return Error::FromRet(ncpu, "libbpf_num_possible_cpus");
  }
  const uint64_t stride = (uint64_t{1} << 32) / static_cast<uint64_t>(ncpu);
  return static_cast<uint32_t>(std::min<uint64_t>(stride, UINT32_MAX));
}

Result<void> BenchWrapper::SetFrame(std::span<const uint8_t> frame, uint32_t stamp_off) {
  if (frame.size() != kFrameLen) {
    return Error{EINVAL, "benchmark frame of " + std::to_string(frame.size()) +
                             " bytes; the wrapper restores exactly " + std::to_string(kFrameLen)};
  }
  if (stamp_off != 0 && stamp_off > kFrameLen - 4) {
    return Error{EINVAL, "stamp offset " + std::to_string(stamp_off) + " beyond the frame"};
  }
  XLB_ASSIGN_OR_RETURN(auto stride, StampsPerCpu());
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<BenchTemplate> per_cpu(static_cast<size_t>(ncpu));
  for (int cpu = 0; cpu < ncpu; ++cpu) {
    BenchTemplate& t = per_cpu[static_cast<size_t>(cpu)];
    std::memcpy(t.frame, frame.data(), kFrameLen);
    t.stamp_off = stamp_off;
    t.counter = static_cast<uint32_t>(cpu) * stride;
  }
  const uint32_t key = 0;
  int ret =
      bpf_map_update_elem(bpf_map__fd(skel_->maps.xlb_bench_tmpl), &key, per_cpu.data(), BPF_ANY);
  return CheckRet(ret, "bpf_map_update_elem(xlb_bench_tmpl)");
}

}  // namespace xlb::bench
