// The weighted Maglev table builder: fill, shares, order independence, disruption, and
// agreement with the textbook algorithm.
#include "userspace/planner/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "maps/xlb_abi.h"

namespace {

using xlb::BuildMaglevTable;
using xlb::MaglevBackend;

constexpr uint32_t kDefaultSize = XLB_MAGLEV_DEFAULT_SIZE;  // 16381

std::string Key(const std::string& cluster, uint32_t i) {
  return cluster + "/198.18." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080";
}

// n backends of one cluster, ids first_id.., all of weight `weight`.
std::vector<MaglevBackend> Cluster(const std::string& cluster, uint32_t n, uint32_t weight,
                                   uint32_t first_id = 1) {
  std::vector<MaglevBackend> out;
  for (uint32_t i = 0; i < n; ++i) {
    out.push_back({first_id + i, Key(cluster, i), weight});
  }
  return out;
}

// The table, or an empty one and a test failure.
std::vector<uint32_t> Built(std::span<const MaglevBackend> backends, uint32_t size) {
  auto table = BuildMaglevTable(backends, size);
  EXPECT_TRUE(table.ok()) << table.error().ToString();
  return table.ok() ? std::move(table).value() : std::vector<uint32_t>{};
}

// A key's walk, or {0, 0} and a test failure.
xlb::MaglevWalk Walk(std::string_view key, uint32_t size) {
  auto walk = xlb::MaglevPermutation(key, size);
  EXPECT_TRUE(walk.ok()) << walk.error().ToString();
  return walk.ok() ? *walk : xlb::MaglevWalk{0, 0};
}

std::map<uint32_t, uint32_t> SlotCounts(const std::vector<uint32_t>& table) {
  std::map<uint32_t, uint32_t> counts;
  for (const uint32_t id : table) {
    ++counts[id];
  }
  return counts;
}

size_t ChangedSlots(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  size_t changed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    changed += a[i] != b[i];
  }
  return changed;
}

// Largest remainder, worked out here rather than taken from the planner: every count is
// floor(size * w / W) or one more, they sum to size, and a backend got the extra slot only if
// its remainder beats (or, key first, ties) that of every backend that did not.
void ExpectLargestRemainder(const std::vector<MaglevBackend>& backends,
                            const std::vector<uint32_t>& counts, uint32_t size) {
  ASSERT_EQ(counts.size(), backends.size());
  uint64_t total = 0;
  for (const MaglevBackend& b : backends) {
    total += b.weight;
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    sum += counts[i];
    if (total == 0 || backends[i].weight == 0) {
      EXPECT_EQ(counts[i], 0u) << backends[i].key;
      continue;
    }
    const uint64_t floor = uint64_t{size} * backends[i].weight / total;
    EXPECT_TRUE(counts[i] == floor || counts[i] == floor + 1) << backends[i].key;
  }
  EXPECT_EQ(sum, total == 0 ? 0 : size);
  if (total == 0) {
    return;
  }
  for (size_t i = 0; i < backends.size(); ++i) {
    const uint64_t ri = uint64_t{size} * backends[i].weight % total;
    const bool bumped_i = counts[i] > uint64_t{size} * backends[i].weight / total;
    if (!bumped_i) {
      continue;
    }
    for (size_t j = 0; j < backends.size(); ++j) {
      if (backends[j].weight == 0) {
        continue;
      }
      const uint64_t rj = uint64_t{size} * backends[j].weight % total;
      const bool bumped_j = counts[j] > uint64_t{size} * backends[j].weight / total;
      if (bumped_j) {
        continue;
      }
      EXPECT_TRUE(ri > rj || (ri == rj && backends[i].key < backends[j].key))
          << backends[i].key << " got the extra slot over " << backends[j].key;
    }
  }
}

// Builds the table and checks it against the shares: every slot taken, each backend holding
// exactly its largest-remainder count.
std::vector<uint32_t> BuildAndCheck(const std::vector<MaglevBackend>& backends, uint32_t size) {
  std::vector<uint32_t> table = Built(backends, size);
  EXPECT_EQ(table.size(), size);
  const std::vector<uint32_t> shares = xlb::MaglevShares(backends, size);
  ExpectLargestRemainder(backends, shares, size);
  const std::map<uint32_t, uint32_t> counts = SlotCounts(table);
  for (size_t i = 0; i < backends.size(); ++i) {
    const auto it = counts.find(backends[i].id);
    EXPECT_EQ(it == counts.end() ? 0 : it->second, shares[i]) << backends[i].key;
  }
  return table;
}

// Maglev as the paper writes it (Eisenbud et al. 2016, pseudocode 1), with the one weighted
// change that a backend takes a turn only while under its share: a permutation array per
// backend, `next` indices, modulo arithmetic, backends in key order.
std::vector<uint32_t> TextbookMaglev(std::vector<MaglevBackend> backends, uint32_t size) {
  std::sort(backends.begin(), backends.end(), [](const MaglevBackend& a, const MaglevBackend& b) {
    return std::tie(a.key, a.id, a.weight) < std::tie(b.key, b.id, b.weight);
  });
  const std::vector<uint32_t> shares = xlb::MaglevShares(backends, size);
  const size_t n = backends.size();
  std::vector<std::vector<uint32_t>> permutation(n, std::vector<uint32_t>(size));
  for (size_t i = 0; i < n; ++i) {
    const xlb::MaglevWalk walk = Walk(backends[i].key, size);
    for (uint32_t j = 0; j < size; ++j) {
      permutation[i][j] = static_cast<uint32_t>((walk.offset + uint64_t{j} * walk.skip) % size);
    }
  }
  std::vector<uint32_t> next(n, 0), taken(n, 0);
  std::vector<int64_t> entry(size, -1);
  uint64_t filled = 0, target = 0;
  for (const uint32_t s : shares) {
    target += s;
  }
  while (filled < target) {
    for (size_t i = 0; i < n && filled < target; ++i) {
      if (taken[i] == shares[i]) {
        continue;
      }
      uint32_t c = permutation[i][next[i]];
      while (entry[c] >= 0) {
        c = permutation[i][++next[i]];
      }
      entry[c] = static_cast<int64_t>(i);
      ++next[i];
      ++taken[i];
      ++filled;
    }
  }
  std::vector<uint32_t> table(size, XLB_ID_NONE);
  for (uint32_t s = 0; s < size; ++s) {
    if (entry[s] >= 0) {
      table[s] = backends[entry[s]].id;
    }
  }
  return table;
}

uint64_t Fingerprint(const std::vector<uint32_t>& table) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const uint32_t id : table) {
    for (int i = 0; i < 4; ++i) {
      h ^= (id >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  }
  return h;
}

TEST(Maglev, FillsEverySlot) {
  std::mt19937 rng(11);
  std::vector<std::vector<MaglevBackend>> sets = {
      Cluster("a", 1, 1),
      Cluster("a", 2, 1),
      Cluster("a", 30, 100),
      {{1, "a/x", 1}, {2, "a/y", 1000000000}},
      {{1, "a/x", 0}, {2, "a/y", 0}, {3, "a/z", 5}},
  };
  std::vector<MaglevBackend> random = Cluster("r", 40, 1);
  for (MaglevBackend& b : random) {
    b.weight = static_cast<uint32_t>(rng() % 1000);
  }
  sets.push_back(random);
  for (const uint32_t size : {2u, 3u, 251u, kDefaultSize}) {
    for (const auto& backends : sets) {
      SCOPED_TRACE(testing::Message() << "size " << size << ", " << backends.size() << " backends");
      std::set<uint32_t> ids;
      for (const MaglevBackend& b : backends) {
        if (b.weight > 0) {
          ids.insert(b.id);
        }
      }
      for (const uint32_t id : BuildAndCheck(backends, size)) {
        ASSERT_TRUE(ids.count(id)) << id;
      }
    }
  }
}

TEST(Maglev, SharesAreLargestRemainder) {
  std::mt19937 rng(12);
  for (int round = 0; round < 200; ++round) {
    const uint32_t n = 1 + rng() % 60;
    std::vector<MaglevBackend> backends = Cluster("c", n, 0);
    // Small weights tie often, which exercises the tie-break; large ones test overflow.
    for (MaglevBackend& b : backends) {
      b.weight = static_cast<uint32_t>(round % 2 ? rng() % 5 : rng());
    }
    const uint32_t size = round % 3 ? kDefaultSize : 65537;
    SCOPED_TRACE(testing::Message() << "round " << round);
    BuildAndCheck(backends, size);
  }
}

TEST(Maglev, SharesNearUint32Limits) {
  const std::vector<MaglevBackend> backends = {{1, "a", std::numeric_limits<uint32_t>::max()},
                                               {2, "b", std::numeric_limits<uint32_t>::max()},
                                               {3, "c", 1}};
  EXPECT_EQ(xlb::MaglevShares(backends, 65537), (std::vector<uint32_t>{32769, 32768, 0}));
  BuildAndCheck(backends, 65537);
}

TEST(Maglev, SevenToThreeOverTwoBackends) {
  const std::vector<MaglevBackend> backends = {{1, "local/198.18.0.1:80", 7},
                                               {2, "remote/198.19.0.1:80", 3}};
  // 16381 * 0.7 = 11466.7, 16381 * 0.3 = 4914.3; 65537 * 0.7 = 45875.9, 65537 * 0.3 = 19661.1.
  auto counts = SlotCounts(BuildAndCheck(backends, kDefaultSize));
  EXPECT_EQ(counts[1], 11467u);
  EXPECT_EQ(counts[2], 4914u);
  counts = SlotCounts(BuildAndCheck(backends, 65537));
  EXPECT_EQ(counts[1], 45876u);
  EXPECT_EQ(counts[2], 19661u);
}

TEST(Maglev, SevenToThreeOverFivePlusFiveBackends) {
  // Cluster weights 70 and 30, each split over five ready endpoints: 14 and 6 apiece.
  std::vector<MaglevBackend> backends = Cluster("local", 5, 14, 1);
  for (const MaglevBackend& b : Cluster("remote", 5, 6, 100)) {
    backends.push_back(b);
  }
  const auto counts = SlotCounts(BuildAndCheck(backends, kDefaultSize));
  // 16381 * 0.14 = 2293.34 and 16381 * 0.06 = 982.86: the six slots left after flooring go
  // to the five remote backends (remainder .86) and the first local one by key (.34).
  uint32_t local = 0, remote = 0;
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(counts.at(1 + i), i == 0 ? 2294u : 2293u) << i;
    EXPECT_EQ(counts.at(100 + i), 983u) << i;
    local += counts.at(1 + i);
    remote += counts.at(100 + i);
  }
  EXPECT_EQ(local, 11466u);
  EXPECT_EQ(remote, 4915u);
}

TEST(Maglev, ZeroWeightGetsNothing) {
  std::vector<MaglevBackend> backends = Cluster("a", 4, 3);
  backends[1].weight = 0;
  backends[3].weight = 0;
  const auto counts = SlotCounts(BuildAndCheck(backends, kDefaultSize));
  EXPECT_EQ(counts.count(backends[1].id), 0u);
  EXPECT_EQ(counts.count(backends[3].id), 0u);
  EXPECT_EQ(counts.count(XLB_ID_NONE), 0u);

  const std::vector<uint32_t> empty(kDefaultSize, XLB_ID_NONE);
  EXPECT_EQ(Built(Cluster("a", 4, 0), kDefaultSize), empty);
  EXPECT_EQ(Built({}, kDefaultSize), empty);
}

TEST(Maglev, IndependentOfInputOrder) {
  std::mt19937 rng(13);
  std::vector<MaglevBackend> backends = Cluster("local", 20, 5, 1);
  for (const MaglevBackend& b : Cluster("remote", 10, 0, 50)) {
    backends.push_back(b);
  }
  // Two entries for one endpoint (it can sit in two EndpointSlices for a moment) share a walk;
  // the id still orders them.
  backends.push_back({77, Key("local", 3), 5});
  // Equal weights give equal remainders, so the tie-break decides some shares too.
  for (size_t i = 20; i < backends.size(); ++i) {
    backends[i].weight = 1 + rng() % 3;
  }
  for (const uint32_t size : {251u, kDefaultSize}) {
    const std::vector<uint32_t> reference = Built(backends, size);
    std::vector<MaglevBackend> shuffled = backends;
    for (int round = 0; round < 20; ++round) {
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      ASSERT_EQ(Built(shuffled, size), reference) << "size " << size;
    }
  }
}

TEST(Maglev, MatchesTextbookAlgorithm) {
  std::mt19937 rng(14);
  for (int round = 0; round < 30; ++round) {
    const uint32_t n = 1 + rng() % 40;
    std::vector<MaglevBackend> backends = Cluster("c", n, 0);
    for (MaglevBackend& b : backends) {
      b.weight = rng() % 4 ? 1 + rng() % 100 : 0;
    }
    const uint32_t size = round % 2 ? 251 : kDefaultSize;
    ASSERT_EQ(Built(backends, size), TextbookMaglev(backends, size)) << "round " << round;
  }
}

// The last empty slots are found by working out each walk's distance to them (EndGame)
// rather than by probing: the same slots, whatever the number of lanes left, the table size
// (61 to 16381) and the weights (equal ones end with many lanes at the last round, skewed
// ones with few).
TEST(Maglev, EndGameMatchesTextbookAlgorithm) {
  std::mt19937 rng(15);
  const uint32_t sizes[] = {61, 251, 1021, kDefaultSize};
  const uint32_t counts[] = {2, 3, 5, 8, 30, 64, 100, 300};
  for (int round = 0; round < 64; ++round) {
    const uint32_t size = sizes[round % 4];
    const uint32_t n = counts[(round / 4) % 8];
    std::vector<MaglevBackend> backends = Cluster("r" + std::to_string(round), n, 1);
    for (MaglevBackend& b : backends) {
      b.weight = round % 2 ? 1 : (rng() % 5 ? 1 + rng() % 1000 : 0);
    }
    ASSERT_EQ(Built(backends, size), TextbookMaglev(backends, size))
        << "round " << round << ": " << n << " backends, " << size << " slots";
  }
}

TEST(Maglev, RemovingOneOfNMovesFewSlots) {
  for (const uint32_t size : {kDefaultSize, 65537u}) {
    for (uint32_t n = 2; n <= 50; ++n) {
      const std::vector<MaglevBackend> all = Cluster("c", n, 1);
      const std::vector<uint32_t> before = Built(all, size);
      for (const uint32_t gone : {0u, n / 2, n - 1}) {
        std::vector<MaglevBackend> rest = all;
        rest.erase(rest.begin() + gone);
        const size_t changed = ChangedSlots(before, Built(rest, size));
        EXPECT_LE(changed, (1.0 / n + 0.02) * size)
            << "size " << size << ", removed " << gone << " of " << n;
      }
    }
  }
}

TEST(Maglev, AddingOneToNMovesFewSlots) {
  for (const uint32_t size : {kDefaultSize, 65537u}) {
    for (uint32_t n = 1; n < 50; ++n) {
      std::vector<MaglevBackend> backends = Cluster("c", n, 1);
      const std::vector<uint32_t> before = Built(backends, size);
      backends.push_back({1000, Key("new", n), 1});
      const size_t changed = ChangedSlots(before, Built(backends, size));
      EXPECT_LE(changed, (1.0 / (n + 1) + 0.02) * size) << "size " << size << ", added to " << n;
    }
  }
}

TEST(Maglev, SpanOverloadOverwritesTheBuffer) {
  const std::vector<MaglevBackend> backends = Cluster("a", 3, 2);
  std::vector<uint32_t> buffer(251, 0xdeadbeef);
  ASSERT_TRUE(BuildMaglevTable(backends, std::span<uint32_t>(buffer)).ok());
  EXPECT_EQ(buffer, Built(backends, 251));
  ASSERT_TRUE(BuildMaglevTable({}, std::span<uint32_t>(buffer)).ok());
  EXPECT_EQ(buffer, std::vector<uint32_t>(251, XLB_ID_NONE));
}

TEST(Maglev, RejectsNonPrimeSize) {
  const std::vector<MaglevBackend> backends = Cluster("a", 2, 1);
  for (const uint32_t size : {0u, 1u, 4u, 9u, 16380u, 16383u, 65535u, 65536u, 4294967295u}) {
    const auto table = BuildMaglevTable(backends, size);
    ASSERT_FALSE(table.ok()) << size;
    EXPECT_EQ(table.error().err, EINVAL);
    EXPECT_EQ(table.error().what,
              "Maglev table size " + std::to_string(size) + " is not a 32-bit prime");
    EXPECT_FALSE(BuildMaglevTable({}, size).ok()) << size;
    EXPECT_FALSE(xlb::MaglevPermutation("a", size).ok()) << size;
  }
  // A failed build leaves the caller's buffer as it was.
  std::vector<uint32_t> buffer(16380, 7);
  EXPECT_FALSE(BuildMaglevTable(backends, std::span<uint32_t>(buffer)).ok());
  EXPECT_EQ(buffer, std::vector<uint32_t>(16380, 7));
  EXPECT_TRUE(BuildMaglevTable(backends, 2).ok());
  EXPECT_TRUE(BuildMaglevTable(backends, 3).ok());
}

TEST(Maglev, RejectsIdNone) {
  std::vector<MaglevBackend> backends = Cluster("a", 3, 1);
  backends[2].id = XLB_ID_NONE;
  const auto table = BuildMaglevTable(backends, 251);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().ToString(), "Maglev backend \"" + backends[2].key +
                                          "\" has id 0 (XLB_ID_NONE): Invalid argument (errno 22)");
  backends[2].weight = 0;
  EXPECT_FALSE(BuildMaglevTable(backends, 251).ok());
}

TEST(Maglev, PermutationIsAFullCycle) {
  for (const uint32_t size : {2u, 3u, 251u, kDefaultSize}) {
    for (uint32_t i = 0; i < 50; ++i) {
      const xlb::MaglevWalk walk = Walk(Key("c", i), size);
      EXPECT_LT(walk.offset, size);
      EXPECT_GE(walk.skip, 1u);
      EXPECT_LT(walk.skip, size);
    }
  }
}

// Every node builds the same table for the same backends, across versions too: a change to
// the key hash, its seeds, the tie-break or the fill order changes these numbers. Such a
// change moves flows between backends when nodes run different versions; make it only on
// purpose, and update the numbers with it.
TEST(Maglev, GoldenTables) {
  std::vector<MaglevBackend> backends = Cluster("local", 3, 7, 1);
  for (const MaglevBackend& b : Cluster("remote", 2, 3, 10)) {
    backends.push_back(b);
  }
  EXPECT_EQ(Built(backends, 31),
            (std::vector<uint32_t>{1, 1, 10, 2,  1, 1, 11, 1, 3, 2,  2, 3, 3, 1, 10, 11,
                                   2, 3, 10, 11, 2, 3, 2,  3, 1, 10, 2, 2, 3, 1, 3}));
  EXPECT_EQ(Fingerprint(Built(backends, kDefaultSize)), 8683121777091881237u);
  // Worked out by hand from the key hash (FNV-1a 64 seeded, fmix64) for the first key.
  const xlb::MaglevWalk walk = Walk("local/198.18.0.1:8080", kDefaultSize);
  EXPECT_EQ(walk.offset, 14895u);
  EXPECT_EQ(walk.skip, 8496u);
}

TEST(Primes, IsPrimeMatchesSieve) {
  constexpr uint32_t kLimit = 200000;
  std::vector<bool> composite(kLimit, false);
  composite[0] = composite[1] = true;
  for (uint32_t i = 2; i * i < kLimit; ++i) {
    if (composite[i]) {
      continue;
    }
    for (uint32_t j = i * i; j < kLimit; j += i) {
      composite[j] = true;
    }
  }
  for (uint32_t n = 0; n < kLimit; ++n) {
    ASSERT_EQ(xlb::IsPrime(n), !composite[n]) << n;
  }
}

TEST(Primes, LargeNumbers) {
  EXPECT_TRUE(xlb::IsPrime(XLB_MAGLEV_DEFAULT_SIZE));
  EXPECT_TRUE(xlb::IsPrime(XLB_MAGLEV_MAX_SIZE));
  EXPECT_TRUE(xlb::IsPrime(2147483647u));  // 2^31 - 1
  EXPECT_TRUE(xlb::IsPrime(4294967291u));  // largest 32-bit prime
  EXPECT_FALSE(xlb::IsPrime(4294967295u));
  EXPECT_TRUE(xlb::IsPrime(4294967279u));       // the one below it
  EXPECT_FALSE(xlb::IsPrime(65521u * 65519u));  // the two largest 16-bit primes
  EXPECT_FALSE(xlb::IsPrime(65521u * 65521u));  // and the square of the largest
}

TEST(Primes, NextPrime) {
  EXPECT_EQ(*xlb::NextPrime(0), 2u);
  EXPECT_EQ(*xlb::NextPrime(2), 2u);
  EXPECT_EQ(*xlb::NextPrime(4), 5u);
  EXPECT_EQ(*xlb::NextPrime(16380), 16381u);
  EXPECT_EQ(*xlb::NextPrime(16381), 16381u);
  EXPECT_EQ(*xlb::NextPrime(16382), 16411u);
  EXPECT_EQ(*xlb::NextPrime(65536), 65537u);
  EXPECT_EQ(*xlb::NextPrime(4294967280u), 4294967291u);
  const auto none = xlb::NextPrime(4294967292u);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().err, ERANGE);
}

}  // namespace
