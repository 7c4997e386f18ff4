// TypedMap and PerCpuMap over maps the test creates itself. Needs root.
#include "maps/typed_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "loader/fd.h"

namespace xlb::testing {
namespace {

struct Key {
  uint32_t a;
  uint32_t b;
};

UniqueFd Create(bpf_map_type type, uint32_t key_size, uint32_t value_size, uint32_t entries) {
  int fd = bpf_map_create(type, "xlb_test", key_size, value_size, entries, nullptr);
  EXPECT_GE(fd, 0) << "bpf_map_create: " << -fd;
  return UniqueFd(fd);
}

TEST(TypedMap, UpdateLookupEraseKeys) {
  UniqueFd fd = Create(BPF_MAP_TYPE_HASH, sizeof(Key), sizeof(uint64_t), 16);
  ASSERT_TRUE(fd.valid());
  auto map = TypedMap<Key, uint64_t>::FromFd(fd.get());
  ASSERT_TRUE(map.ok()) << map.error().ToString();
  EXPECT_STREQ(map->name(), "xlb_test");

  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(map->Update({i, i * 10}, uint64_t{i} * 100).ok());
  }
  auto v = map->Lookup({3, 30});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 300u);

  auto missing = map->Lookup({3, 31});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.error().NotFound());
  EXPECT_NE(missing.error().what.find("xlb_test"), std::string::npos) << missing.error().what;

  // BPF_NOEXIST on an existing key.
  auto exists = map->Update({3, 30}, 1, BPF_NOEXIST);
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.error().err, EEXIST);

  ASSERT_TRUE(map->Erase({2, 20}).ok());
  EXPECT_TRUE(map->Erase({2, 20}).error().NotFound());

  auto keys = map->Keys();
  ASSERT_TRUE(keys.ok());
  std::vector<uint32_t> as;
  for (const Key& k : *keys) {
    as.push_back(k.a);
  }
  std::sort(as.begin(), as.end());
  EXPECT_EQ(as, (std::vector<uint32_t>{0, 1, 3, 4}));

  uint64_t sum = 0;
  ASSERT_TRUE(map->ForEach([&](const Key& k, uint64_t value) {
                   EXPECT_EQ(value, k.a * 100u);
                   sum += value;
                 })
                  .ok());
  EXPECT_EQ(sum, 800u);
}

TEST(TypedMap, EmptyMapHasNoKeys) {
  UniqueFd fd = Create(BPF_MAP_TYPE_HASH, 4, 4, 4);
  ASSERT_TRUE(fd.valid());
  TypedMap<uint32_t, uint32_t> map(fd.get(), "empty");
  auto keys = map.Keys();
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
}

TEST(TypedMap, FromFdRefusesAnotherShape) {
  UniqueFd fd = Create(BPF_MAP_TYPE_HASH, 8, 16, 4);
  ASSERT_TRUE(fd.valid());
  auto map = TypedMap<uint32_t, uint64_t>::FromFd(fd.get());
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.error().err, EINVAL);
  EXPECT_NE(map.error().what.find("8/16"), std::string::npos) << map.error().what;
}

TEST(PerCpuMap, LookupIsPerPossibleCpuAndSums) {
  UniqueFd fd = Create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(xlb_flow_counter), 4);
  ASSERT_TRUE(fd.valid());
  auto map = PerCpuMap<xlb_flow_counter>::FromFd(fd.get());
  ASSERT_TRUE(map.ok()) << map.error().ToString();

  const int ncpu = libbpf_num_possible_cpus();
  ASSERT_GT(ncpu, 0);
  std::vector<xlb_flow_counter> values(static_cast<size_t>(ncpu));
  xlb_flow_counter want{};
  for (int c = 0; c < ncpu; ++c) {
    values[c] = {static_cast<uint64_t>(c + 1), uint64_t{100} * (c + 1), static_cast<uint64_t>(c)};
    want.packets += values[c].packets;
    want.bytes += values[c].bytes;
    want.new_flows += values[c].new_flows;
  }
  ASSERT_TRUE(map->Update(2, values).ok());

  auto per_cpu = map->Lookup(2);
  ASSERT_TRUE(per_cpu.ok());
  ASSERT_EQ(per_cpu->size(), static_cast<size_t>(ncpu));
  EXPECT_EQ((*per_cpu)[ncpu - 1].bytes, 100u * ncpu);

  auto sum = map->LookupSum(2);
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->packets, want.packets);
  EXPECT_EQ(sum->bytes, want.bytes);
  EXPECT_EQ(sum->new_flows, want.new_flows);

  ASSERT_TRUE(map->Fill(2, {}).ok());
  auto zero = map->LookupSum(2);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->packets + zero->bytes + zero->new_flows, 0u);

  // Wrong number of values, and a key past the end.
  if (ncpu > 1) {
    auto r = map->Update(2, std::span<const xlb_flow_counter>(values.data(), 1));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err, EINVAL);
  }
  EXPECT_TRUE(map->Lookup(4).error().NotFound());
}

TEST(PerCpuMap, SumCpusOfCounters) {
  const xlb_counter c[] = {{1, 10}, {2, 20}, {3, 30}};
  const xlb_counter s = SumCpus(std::span<const xlb_counter>(c));
  EXPECT_EQ(s.packets, 6u);
  EXPECT_EQ(s.bytes, 60u);
}

}  // namespace
}  // namespace xlb::testing
