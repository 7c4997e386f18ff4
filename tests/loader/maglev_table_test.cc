// InstallMaglevTable / ReadMaglevTable / RemoveMaglevTable against the kernel. Needs root.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "loader/fd.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

std::vector<uint32_t> Pattern(uint32_t size, uint32_t salt) {
  std::vector<uint32_t> slots(size);
  for (uint32_t i = 0; i < size; ++i) {
    slots[i] = 1 + (i * 2654435761u + salt) % 1000;
  }
  return slots;
}

TEST(MaglevTable, InstallReadRoundTrip) {
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  const auto slots = Pattern(dp->maglev_size(), 1);
  auto r = dp->InstallMaglevTable(5, slots);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto got = dp->ReadMaglevTable(5);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, slots);
  // Other services have no table.
  auto none = dp->ReadMaglevTable(6);
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.error().NotFound()) << none.error().ToString();
}

TEST(MaglevTable, SecondInstallRewritesTheTableInPlace) {
  // Every access path: the mapping, batch updates, one update per slot.
  for (const auto access : {MaglevTables::Access::kAuto, MaglevTables::Access::kBatch,
                            MaglevTables::Access::kElement}) {
    auto dp = LoadHermetic();
    ASSERT_TRUE(dp);
    dp->maglev_tables().set_access(access);
    ASSERT_TRUE(dp->InstallMaglevTable(9, Pattern(dp->maglev_size(), 1)).ok());
    auto first_id = dp->MaglevTableId(9);
    ASSERT_TRUE(first_id.ok()) << first_id.error().ToString();

    const auto second = Pattern(dp->maglev_size(), 2);
    auto r = dp->InstallMaglevTable(9, second);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    auto second_id = dp->MaglevTableId(9);
    ASSERT_TRUE(second_id.ok());
    EXPECT_EQ(*first_id, *second_id) << "the installed table is rewritten, not replaced";
    auto got = dp->ReadMaglevTable(9);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(*got, second);
  }
}

TEST(MaglevTable, RemovedTableIsFreedAndTheNextInstallIsANewOne) {
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  ASSERT_TRUE(dp->InstallMaglevTable(9, Pattern(dp->maglev_size(), 1)).ok());
  auto first_id = dp->MaglevTableId(9);
  ASSERT_TRUE(first_id.ok()) << first_id.error().ToString();
  ASSERT_TRUE(dp->RemoveMaglevTable(9).ok());

  const auto second = Pattern(dp->maglev_size(), 2);
  ASSERT_TRUE(dp->InstallMaglevTable(9, second).ok());
  auto second_id = dp->MaglevTableId(9);
  ASSERT_TRUE(second_id.ok());
  EXPECT_NE(*first_id, *second_id);
  auto got = dp->ReadMaglevTable(9);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, second);

  // The loader kept no fd of its own: the removed table is freed once the kernel's readers
  // are done with it (after an RCU grace period and a deferred free, which a loaded machine
  // can stretch to seconds: wait for it with a generous deadline).
  bool freed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!freed && std::chrono::steady_clock::now() < deadline) {
    int fd = bpf_map_get_fd_by_id(*first_id);
    if (fd == -ENOENT) {
      freed = true;
    } else {
      if (fd >= 0) {
        ::close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(freed) << "removed table (map id " << *first_id << ") still exists";
}

TEST(MaglevTable, NonDefaultSize) {
  auto dp = LoadHermetic(251);
  ASSERT_TRUE(dp);
  EXPECT_EQ(dp->maglev_size(), 251u);
  const auto slots = Pattern(251, 3);
  auto r = dp->InstallMaglevTable(1, slots);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto got = dp->ReadMaglevTable(1);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, slots);

  auto id = dp->MaglevTableId(1);
  ASSERT_TRUE(id.ok());
  UniqueFd inner(bpf_map_get_fd_by_id(*id));
  ASSERT_TRUE(inner.valid());
  auto info = MapView(inner.get(), "inner").Info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->max_entries, 1u);  // one chunk of 512 slots: the 251 slots and the size word
  EXPECT_EQ(info->value_size, sizeof(xlb_maglev_chunk));
  EXPECT_EQ(info->type, BPF_MAP_TYPE_ARRAY);
  // The size word, and zeros between the slots and it.
  xlb_maglev_chunk chunk{};
  const uint32_t key = 0;
  ASSERT_EQ(bpf_map_lookup_elem(inner.get(), &key, &chunk), 0);
  EXPECT_EQ(chunk.id[XLB_MAGLEV_CHUNK - 1], 251u);
  EXPECT_EQ(chunk.id[250], slots[250]);
  for (uint32_t j = 251; j + 1 < XLB_MAGLEV_CHUNK; ++j) {
    ASSERT_EQ(chunk.id[j], 0u) << j;
  }
  auto size = MaglevTables::SizeOf(inner.get());
  ASSERT_TRUE(size.ok()) << size.error().ToString();
  EXPECT_EQ(*size, 251u);

  // A table of the default size does not fit this datapath.
  auto wrong = dp->InstallMaglevTable(2, Pattern(XLB_MAGLEV_DEFAULT_SIZE, 0));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().err, EINVAL);
}

TEST(MaglevTable, LargestSize) {
  auto dp = LoadHermetic(XLB_MAGLEV_MAX_SIZE);
  ASSERT_TRUE(dp);
  const auto slots = Pattern(XLB_MAGLEV_MAX_SIZE, 4);
  ASSERT_TRUE(dp->InstallMaglevTable(1, slots).ok());
  auto got = dp->ReadMaglevTable(1);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, slots);
}

TEST(MaglevTable, KernelRefusesATableOfAnotherSize) {
  // The outer map checks every inner map against its template: the guarantee that the
  // datapath's `hash % maglev_size` always indexes inside the table.
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  UniqueFd small(bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_mag_bad", 4, 4, 251, nullptr));
  ASSERT_TRUE(small.valid());
  uint32_t id = 1;
  int fd = small.get();
  EXPECT_EQ(bpf_map_update_elem(dp->maglev_fd(), &id, &fd, BPF_ANY), -EINVAL);
}

TEST(MaglevTable, RemoveTable) {
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  ASSERT_TRUE(dp->InstallMaglevTable(4, Pattern(dp->maglev_size(), 5)).ok());
  ASSERT_TRUE(dp->RemoveMaglevTable(4).ok());
  auto got = dp->ReadMaglevTable(4);
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.error().NotFound());
  EXPECT_TRUE(dp->RemoveMaglevTable(4).ok()) << "removing twice is fine";
}

TEST(MaglevTable, RejectsBadServiceIdAndSlotCount) {
  auto dp = LoadHermetic();
  ASSERT_TRUE(dp);
  const auto slots = Pattern(dp->maglev_size(), 6);
  EXPECT_EQ(dp->InstallMaglevTable(0, slots).error().err, EINVAL);
  EXPECT_EQ(dp->InstallMaglevTable(XLB_MAX_SERVICES, slots).error().err, EINVAL);
  std::vector<uint32_t> short_table(slots.begin(), slots.end() - 1);
  auto r = dp->InstallMaglevTable(1, short_table);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_NE(r.error().what.find("16380 slots"), std::string::npos) << r.error().what;
}

}  // namespace
}  // namespace xlb::testing
