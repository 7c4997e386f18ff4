#include "userspace/planner/maglev.h"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "maps/xlb_abi.h"

namespace xlb {
namespace {

// A backend's permutation of the table comes from two hashes of its key. The hash and its
// seeds are part of the contract between nodes: change them and every table reshuffles, and
// nodes running different versions disagree on the backend of a new flow. The golden test in
// tests/unit/maglev_test.cc pins them.
constexpr uint64_t kOffsetSeed = 0x6f66667365740000ULL;  // "offset"
constexpr uint64_t kSkipSeed = 0x736b697000000000ULL;    // "skip"

// 64-bit FNV-1a seeded through its offset basis, then MurmurHash3's fmix64 finalizer: FNV
// alone leaves the low bits weak for short keys that differ in one character
// ("c/10.0.0.1:80", "c/10.0.0.2:80"), and the low bits are what `% size` keeps.
uint64_t KeyHash(std::string_view key, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (const unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= key.size();
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// The canonical order of backends: what the table may depend on instead of input order.
bool CanonicalLess(const MaglevBackend& a, const MaglevBackend& b) {
  return std::tie(a.key, a.id, a.weight) < std::tie(b.key, b.id, b.weight);
}

Result<void> CheckTableSize(size_t size) {
  if (size > std::numeric_limits<uint32_t>::max() || !IsPrime(static_cast<uint32_t>(size))) {
    return Error{EINVAL, "Maglev table size " + std::to_string(size) + " is not a 32-bit prime"};
  }
  return {};
}

// size >= 2; size == 2 leaves a single possible skip, 1.
MaglevWalk Walk(std::string_view key, uint32_t size) {
  return {static_cast<uint32_t>(KeyHash(key, kOffsetSeed) % size),
          static_cast<uint32_t>(KeyHash(key, kSkipSeed) % (size - 1) + 1)};
}

// One backend's walk through its permutation: slot = (offset + j * skip) % size for j = 0,
// 1, ..., kept as a running position so that no step divides.
struct Lane {
  uint32_t pos;   // the next preferred slot
  uint32_t skip;  // 1..size-1; with size prime the walk visits every slot once per cycle
  uint32_t left;  // slots still to take to reach this backend's share
  uint32_t id;
  uint32_t row = 0;  // its row of EndGame's steps
};

inline void Advance(Lane& lane, uint32_t size) {
  // pos + skip may not fit in 32 bits for sizes near 2^32; compare against the distance left.
  lane.pos = lane.pos >= size - lane.skip ? lane.pos - (size - lane.skip) : lane.pos + lane.skip;
}

// a^-1 mod m, for m prime and 0 < a < m (extended Euclid).
uint32_t Inverse(uint32_t a, uint32_t m) {
  int64_t t = 0, next_t = 1, r = m, next_r = a;
  while (next_r != 0) {
    const int64_t q = r / next_r;
    t = std::exchange(next_t, t - q * next_t);
    r = std::exchange(next_r, r - q * next_r);
  }
  return static_cast<uint32_t>(t < 0 ? t + m : t);
}

// The end of the fill, from a round's start, while two lanes or more are under their share.
// A walk now meets mostly taken slots: with e slots empty a turn probes size / e of them on
// average (the last 64 of a 16381-slot table take ~50,000 probes). Instead each lane looks
// among the few empty slots for the one its walk reaches first: slot s is
// (s - pos) * skip^-1 mod size steps from pos. That is the slot its probes would stop at,
// so the table is the same. Measured: 2-3 % of a build (208 vs 212 µs at 16381 slots and
// 30 backends; a full sync's tables 1,586 vs 1,633 ms).
void EndGame(std::vector<Lane>& lanes, std::span<uint32_t> table) {
  const auto size = static_cast<uint32_t>(table.size());
  std::vector<uint32_t> empty;
  for (uint32_t s = 0; s < size; ++s) {
    if (table[s] == XLB_ID_NONE) {
      empty.push_back(s);
    }
  }
  const size_t count = empty.size();
  // steps[row * count + k]: steps from the lane's position to empty[k]; taken ones UINT32_MAX.
  std::vector<uint32_t> steps(lanes.size() * count);
  for (size_t row = 0; row < lanes.size(); ++row) {
    Lane& lane = lanes[row];
    lane.row = static_cast<uint32_t>(row);
    const uint64_t inverse = Inverse(lane.skip, size);
    for (size_t k = 0; k < count; ++k) {
      const uint64_t ahead =
          empty[k] >= lane.pos ? empty[k] - lane.pos : empty[k] + (size - lane.pos);
      steps[row * count + k] = static_cast<uint32_t>(ahead * inverse % size);
    }
  }
  const size_t rows = lanes.size();
  while (lanes.size() > 1) {
    bool reached = false;
    for (Lane& lane : lanes) {
      const uint32_t* mine = &steps[lane.row * count];
      const size_t first = static_cast<size_t>(std::min_element(mine, mine + count) - mine);
      table[empty[first]] = lane.id;
      for (size_t row = 0; row < rows; ++row) {
        steps[row * count + first] = std::numeric_limits<uint32_t>::max();
      }
      reached |= --lane.left == 0;
    }
    if (reached) {
      std::erase_if(lanes, [](const Lane& lane) { return lane.left == 0; });
    }
  }
}

}  // namespace

Result<MaglevWalk> MaglevPermutation(std::string_view key, uint32_t size) {
  XLB_TRY(CheckTableSize(size));
  return Walk(key, size);
}

std::vector<uint32_t> MaglevShares(std::span<const MaglevBackend> backends, uint32_t size) {
  std::vector<uint32_t> shares(backends.size(), 0);
  uint64_t total = 0;
  for (const MaglevBackend& b : backends) {
    total += b.weight;
  }
  if (total == 0) {
    return shares;
  }

  // size * weight < 2^64, so quotient and remainder are exact.
  std::vector<uint64_t> remainder(backends.size(), 0);
  std::vector<size_t> candidates;
  uint64_t assigned = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0) {
      continue;
    }
    const uint64_t scaled = static_cast<uint64_t>(size) * backends[i].weight;
    shares[i] = static_cast<uint32_t>(scaled / total);
    remainder[i] = scaled % total;
    assigned += shares[i];
    candidates.push_back(i);
  }
  // The remainders sum to (size - assigned) * total and each is below total, so there are at
  // least as many non-zero remainders as slots left over: a weight-0 backend never gets one.
  const uint64_t leftover = size - assigned;
  std::sort(candidates.begin(), candidates.end(), [&](size_t a, size_t b) {
    if (remainder[a] != remainder[b]) {
      return remainder[a] > remainder[b];
    }
    return CanonicalLess(backends[a], backends[b]);
  });
  for (uint64_t k = 0; k < leftover; ++k) {
    ++shares[candidates[k]];
  }
  return shares;
}

Result<void> BuildMaglevTable(std::span<const MaglevBackend> backends, std::span<uint32_t> table) {
  XLB_TRY(CheckTableSize(table.size()));
  const auto size = static_cast<uint32_t>(table.size());
  for (const MaglevBackend& b : backends) {
    if (b.id == XLB_ID_NONE) {
      return Error{EINVAL, "Maglev backend \"" + b.key + "\" has id 0 (XLB_ID_NONE)"};
    }
  }
  std::fill(table.begin(), table.end(), XLB_ID_NONE);

  const std::vector<uint32_t> shares = MaglevShares(backends, size);
  std::vector<size_t> order;
  order.reserve(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    if (shares[i] > 0) {
      order.push_back(i);
    }
  }
  if (order.empty()) {
    return {};
  }
  // Lanes take turns in canonical order, so the input order cannot change who gets a
  // contested slot.
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return CanonicalLess(backends[a], backends[b]); });

  std::vector<Lane> lanes;
  lanes.reserve(order.size());
  for (const size_t i : order) {
    const MaglevWalk walk = Walk(backends[i].key, size);
    lanes.push_back({walk.offset, walk.skip, shares[i], backends[i].id});
  }

  // Round robin: each backend still under its share takes its next preferred empty slot.
  // Shares sum to size, so the table is full when the last lane reaches its share, and a lane
  // under its share always finds an empty slot within one cycle of its walk. The last few
  // empty slots are found by EndGame (at most 4,096 steps to work out: it pays from there).
  constexpr size_t kEndGameSlots = 64, kEndGameSteps = 4096;
  size_t empty = size;
  while (lanes.size() > 1) {
    if (empty <= kEndGameSlots && empty * lanes.size() <= kEndGameSteps) {
      EndGame(lanes, table);
      break;
    }
    bool reached = false;
    for (Lane& lane : lanes) {
      while (table[lane.pos] != XLB_ID_NONE) {
        Advance(lane, size);
      }
      table[lane.pos] = lane.id;
      Advance(lane, size);
      reached |= --lane.left == 0;
    }
    empty -= lanes.size();
    if (reached) {
      std::erase_if(lanes, [](const Lane& lane) { return lane.left == 0; });
    }
  }
  // A lone backend left would take every empty slot in turn whatever its walk: skip the walk,
  // which near a full table costs about size / empty probes per slot.
  if (!lanes.empty()) {
    for (uint32_t& slot : table) {
      if (slot == XLB_ID_NONE) {
        slot = lanes.front().id;
      }
    }
  }
  return {};
}

Result<std::vector<uint32_t>> BuildMaglevTable(std::span<const MaglevBackend> backends,
                                               uint32_t size) {
  XLB_TRY(CheckTableSize(size));  // before allocating `size` slots
  std::vector<uint32_t> table(size);
  XLB_TRY(BuildMaglevTable(backends, std::span<uint32_t>(table)));
  return table;
}

bool IsPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  if (n % 2 == 0) {
    return n == 2;
  }
  if (n % 3 == 0) {
    return n == 3;
  }
  for (uint64_t d = 5; d * d <= n; d += 6) {
    if (n % d == 0 || n % (d + 2) == 0) {
      return false;
    }
  }
  return true;
}

Result<uint32_t> NextPrime(uint32_t n) {
  for (uint64_t c = n; c <= std::numeric_limits<uint32_t>::max(); ++c) {
    if (IsPrime(static_cast<uint32_t>(c))) {
      return static_cast<uint32_t>(c);
    }
  }
  return Error{ERANGE, "no 32-bit prime >= " + std::to_string(n)};
}

}  // namespace xlb
