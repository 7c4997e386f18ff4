// Weighted Maglev lookup tables (Eisenbud et al., NSDI 2016), built in userspace and written
// into xlb_maglev_v3 as one ARRAY of backend ids per service.
//
// A table depends only on the set of backends (key, id, weight) and its size: not on input
// order, not on the node, not on the process. Every node of every cluster builds the same
// table for the same service, so a flow that ECMP moves to another node lands on the same
// backend, and an agent restart rewrites identical tables.
//
// Errors: a table size that is not prime, or a backend id of XLB_ID_NONE, is a programmer or
// start-up configuration error (the size comes from xlb_config.maglev_size, validated once at
// start-up). Still the planner runs on the sync path, which does not throw: each is returned
// as an Error (EINVAL), and the sync that asked for the table fails and keeps the last good
// state. Nothing throws except std::bad_alloc.
#ifndef XLB_USERSPACE_PLANNER_MAGLEV_H
#define XLB_USERSPACE_PLANNER_MAGLEV_H

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace xlb {

struct MaglevBackend {
  // Written into the table's slots: the index of the backend in xlb_backends_v1. Never
  // XLB_ID_NONE (0), which marks an empty slot.
  uint32_t id;
  // The backend's stable identity, e.g. "cluster/10.1.2.3:8080". Its permutation of the
  // table is derived from this alone, so it must not depend on anything node- or
  // process-local (an id allocated at run time, a pointer, an index).
  std::string key;
  // Share of the table relative to the other backends' weights; 0 takes no slot.
  uint32_t weight;
};

// A backend's preference order over a table of `size` slots (prime): slot (offset + j * skip)
// % size is its j-th choice. Depends on the key alone. EINVAL if `size` is not prime.
struct MaglevWalk {
  uint32_t offset;  // 0..size-1
  uint32_t skip;    // 1..size-1
};
Result<MaglevWalk> MaglevPermutation(std::string_view key, uint32_t size);

// Slots each backend gets in a table of `size` slots, in input order: size * weight / total
// rounded by largest remainder, so the counts sum to exactly `size` (or are all 0 when no
// backend has weight). Equal remainders go to the backend whose (key, id) sorts first.
std::vector<uint32_t> MaglevShares(std::span<const MaglevBackend> backends, uint32_t size);

// Builds a table of `size` slots (prime). Every slot holds the id of a backend with weight >
// 0, each such backend holding exactly its MaglevShares() count; with no such backend every
// slot is XLB_ID_NONE. EINVAL if `size` is not prime or an id is 0.
Result<std::vector<uint32_t>> BuildMaglevTable(std::span<const MaglevBackend> backends,
                                               uint32_t size);

// The same, into a caller-owned buffer whose size() is the table size, so a planner that
// builds thousands of tables can reuse one buffer. On an error the buffer is left unchanged.
Result<void> BuildMaglevTable(std::span<const MaglevBackend> backends, std::span<uint32_t> table);

bool IsPrime(uint32_t n);

// The smallest prime >= n. ERANGE above 4294967291, the largest 32-bit prime.
Result<uint32_t> NextPrime(uint32_t n);

}  // namespace xlb

#endif  // XLB_USERSPACE_PLANNER_MAGLEV_H
