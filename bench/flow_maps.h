// xlb's flow maps (conntrack, replies, SNAT: hash maps of xlb_ct_key; half-open flows) emptied
// between benchmark runs, so that every run starts from the state it claims (xlb-bench, xlb-perf).
#ifndef XLB_BENCH_FLOW_MAPS_H
#define XLB_BENCH_FLOW_MAPS_H

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "loader/libbpf_opts.h"
#include "maps/xlb_abi.h"
#include "util/result.h"

namespace xlb {

// Empties one hash map of Key keys (xlb_ct_key unless said) and returns how many entries it
// held; their keys are appended to `keys_out` if given.
template <typename Value, typename Key = xlb_ct_key>
Result<uint64_t> ClearFlowMap(int fd, const char* name, std::vector<Key>* keys_out = nullptr) {
  constexpr uint32_t kChunk = 16384;
  std::vector<Key> keys(kChunk);
  std::vector<Value> values(kChunk);
  uint64_t total = 0;
  uint32_t in_batch = 0, out_batch = 0;
  bool first = true;
  for (;;) {
    bpf_map_batch_opts opts{};
    InitLibbpfOpts(opts);
    uint32_t count = kChunk;
    int ret = bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &in_batch, &out_batch,
                                              keys.data(), values.data(), &count, &opts);
    if (ret < 0 && ret != -ENOENT) {
      return Error::FromRet(ret, std::string("bpf_map_lookup_and_delete_batch(") + name + ")");
    }
    total += count;
    if (keys_out != nullptr) {
      keys_out->insert(keys_out->end(), keys.begin(), keys.begin() + count);
    }
    if (ret == -ENOENT) {
      return total;
    }
    in_batch = out_batch;
    first = false;
  }
}

}  // namespace xlb

#endif  // XLB_BENCH_FLOW_MAPS_H
