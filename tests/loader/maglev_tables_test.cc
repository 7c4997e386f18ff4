// MaglevTables on outer maps of its own (no program loaded): every fill and read path, batched
// swaps, rewrites in place under a concurrent reader, removal, and the fallback for an outer
// map whose template is not mmapable (an outer map pinned by an older xlb). Needs root.
#include "loader/maglev_tables.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <thread>
#include <vector>

#include "loader/libbpf_opts.h"
#include "maps/typed_map.h"

namespace xlb::testing {
namespace {

constexpr uint32_t kSize = 1031;  // three elements: two whole chunks and the size word's
constexpr uint32_t kServices = 32;

std::vector<uint32_t> Pattern(uint32_t salt) {
  std::vector<uint32_t> slots(kSize);
  for (uint32_t i = 0; i < kSize; ++i) {
    slots[i] = 1 + (i * 2654435761u + salt) % 1000;
  }
  return slots;
}

// An xlb_maglev_v3 of kServices entries whose template is a table of kSize slots.
UniqueFd OuterMap(bool mmapable_template) {
  auto tmpl = MaglevTables::Create(kSize, "xlb_t_tmpl", mmapable_template);
  EXPECT_TRUE(tmpl.ok()) << tmpl.error().ToString();
  if (!tmpl.ok()) {
    return UniqueFd();
  }
  bpf_map_create_opts opts{};
  InitLibbpfOpts(opts);
  opts.inner_map_fd = static_cast<uint32_t>(tmpl->get());
  UniqueFd outer(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "xlb_t_outer", sizeof(uint32_t),
                                sizeof(uint32_t), kServices, &opts));
  EXPECT_TRUE(outer.valid()) << "bpf_map_create(ARRAY_OF_MAPS): " << outer.get();
  return outer;
}

uint32_t Flags(const MaglevTables& tables, uint32_t service_id) {
  auto id = tables.TableId(service_id);
  EXPECT_TRUE(id.ok());
  UniqueFd inner(bpf_map_get_fd_by_id(id.ok() ? *id : 0));
  auto info = MapView(inner.get(), "inner").Info();
  EXPECT_TRUE(info.ok());
  return info.ok() ? info->map_flags : 0;
}

using Access = MaglevTables::Access;

// Written one way, read back every way: the mapping (chunks of slots back to back), the batch
// layout and the per-element calls all mean the same slot.
TEST(MaglevTables, EveryFillPathReadsBackThroughEveryReadPath) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  uint32_t service = 1;
  for (Access fill : {Access::kAuto, Access::kBatch, Access::kElement}) {
    const auto slots = Pattern(service);
    tables.set_access(fill);
    auto r = tables.Install(service, slots);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_NE(Flags(tables, service) & BPF_F_MMAPABLE, 0u);
    for (Access read : {Access::kAuto, Access::kBatch, Access::kElement}) {
      tables.set_access(read);
      auto got = tables.Read(service);
      ASSERT_TRUE(got.ok()) << got.error().ToString();
      EXPECT_EQ(*got, slots) << "fill " << static_cast<int>(fill) << " read "
                             << static_cast<int>(read);
    }
    ++service;
  }
  EXPECT_EQ(tables.Count(), 3u);
}

TEST(MaglevTables, InstallManySwapsEveryTableAndCountsThem) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  std::vector<std::vector<uint32_t>> contents;
  std::vector<MaglevTables::Write> writes;
  for (uint32_t id = 1; id <= 10; ++id) {  // enough for the two filling threads
    contents.push_back(Pattern(id * 7));
  }
  for (uint32_t id = 1; id <= 10; ++id) {
    writes.push_back({id, contents[id - 1]});
  }
  size_t installed = 0;
  auto r = tables.InstallMany(writes, installed);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(installed, 10u);
  EXPECT_EQ(tables.Count(), 10u);
  const auto first = tables.TableId(4);
  ASSERT_TRUE(first.ok());
  for (uint32_t id = 1; id <= 10; ++id) {
    auto got = tables.Read(id);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(*got, contents[id - 1]) << "service " << id;
  }

  // A second install of one of them: rewritten in the same inner map, the others untouched.
  const auto replaced = Pattern(99);
  ASSERT_TRUE(tables.Install(4, replaced).ok());
  const auto second = tables.TableId(4);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(*tables.Read(4), replaced);
  EXPECT_EQ(*tables.Read(5), contents[4]);

  // Installed and new ones in one call: the installed ones keep their inner maps.
  std::vector<uint32_t> ids_before;
  for (uint32_t id = 1; id <= 10; ++id) {
    ids_before.push_back(*tables.TableId(id));
  }
  writes.clear();
  for (uint32_t id = 1; id <= 12; ++id) {
    contents.resize(12);
    contents[id - 1] = Pattern(id * 13);
  }
  for (uint32_t id = 1; id <= 12; ++id) {
    writes.push_back({id, contents[id - 1]});
  }
  r = tables.InstallMany(writes, installed);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(installed, 12u);
  for (uint32_t id = 1; id <= 12; ++id) {
    EXPECT_EQ(*tables.Read(id), contents[id - 1]) << "service " << id;
    if (id <= 10) {
      EXPECT_EQ(*tables.TableId(id), ids_before[id - 1]) << "service " << id;
    }
  }
  EXPECT_EQ(tables.Count(), 12u);

  ASSERT_TRUE(tables.Remove(4).ok());
  auto gone = tables.Read(4);
  ASSERT_FALSE(gone.ok());
  EXPECT_TRUE(gone.error().NotFound()) << gone.error().ToString();
  EXPECT_TRUE(tables.Remove(4).ok()) << "removing twice is fine";
  EXPECT_EQ(tables.Count(), 11u);
}

// A reader of a table being rewritten reads, in every slot, the backend of the table before
// or the one after: never an empty or torn slot. Two tables that differ in every slot, written
// in turn while another thread reads the installed table through its own mapping.
TEST(MaglevTables, ReadersOfATableBeingRewrittenSeeTheOldOrTheNewSlot) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  std::vector<uint32_t> a(kSize), b(kSize);
  for (uint32_t i = 0; i < kSize; ++i) {
    a[i] = 1 + i;
    b[i] = 1001 + i;
  }
  ASSERT_TRUE(tables.Install(1, a).ok());
  auto id = tables.TableId(1);
  ASSERT_TRUE(id.ok());
  UniqueFd inner(bpf_map_get_fd_by_id(*id));
  ASSERT_TRUE(inner.valid());
  // Chunks of slots back to back: the mapping is the array of slots.
  const size_t bytes = (XLB_MAGLEV_ELEMS(kSize) * sizeof(xlb_maglev_chunk) + 4095) / 4096 * 4096;
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, inner.get(), 0);
  ASSERT_NE(p, MAP_FAILED);
  const auto* base = static_cast<const uint32_t*>(p);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      for (uint32_t i = 0; i < kSize; ++i) {
        const uint32_t v = std::atomic_ref<const uint32_t>(base[i]).load();
        if (v != a[i] && v != b[i]) {
          bad.fetch_add(1);
        }
      }
      reads.fetch_add(kSize);
    }
  });
  for (int round = 0; round < 2000; ++round) {
    auto r = tables.Install(1, round % 2 == 0 ? b : a);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  stop = true;
  reader.join();
  ::munmap(p, bytes);
  EXPECT_EQ(bad.load(), 0u) << "of " << reads.load() << " slot reads";
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(*tables.TableId(1), *id);
  EXPECT_EQ(*tables.Read(1), a);
}

TEST(MaglevTables, RejectsBadWritesBeforeCreatingAnything) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  const auto slots = Pattern(1);
  const std::vector<uint32_t> short_table(slots.begin(), slots.end() - 1);
  const MaglevTables::Write writes[] = {{1, slots}, {kServices, slots}};
  size_t installed = 7;
  auto r = tables.InstallMany(writes, installed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_EQ(installed, 0u);
  EXPECT_EQ(tables.Count(), 0u) << "the valid first table was not installed either";
  EXPECT_EQ(tables.Install(0, slots).error().err, EINVAL);
  EXPECT_EQ(tables.Install(2, short_table).error().err, EINVAL);
}

// An outer map created by an xlb from before BPF_F_MMAPABLE takes only tables without the
// flag: the first swap is refused, the tables are made again without it and filled by batch,
// and later installs make them that way from the start.
TEST(MaglevTables, OuterMapWithAnOlderTemplateGetsTablesItTakes) {
  UniqueFd outer = OuterMap(false);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  ASSERT_TRUE(tables.mmapable());
  const auto slots = Pattern(3);
  auto r = tables.Install(1, slots);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(tables.mmapable());
  EXPECT_EQ(Flags(tables, 1) & BPF_F_MMAPABLE, 0u);
  auto got = tables.Read(1);  // no mapping to read through: the batch path
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, slots);
  // A second install rewrites it where it is, by batch update.
  const auto id = tables.TableId(1);
  const auto again = Pattern(4);
  ASSERT_TRUE(tables.Install(1, again).ok());
  EXPECT_EQ(*tables.TableId(1), *id);
  EXPECT_EQ(*tables.Read(1), again);

  std::vector<std::vector<uint32_t>> contents;
  std::vector<MaglevTables::Write> writes;
  for (uint32_t id = 2; id <= 6; ++id) {
    contents.push_back(Pattern(id));
  }
  for (uint32_t id = 2; id <= 6; ++id) {
    writes.push_back({id, contents[id - 2]});
  }
  size_t installed = 0;
  ASSERT_TRUE(tables.InstallMany(writes, installed).ok());
  EXPECT_EQ(installed, 5u);
  for (uint32_t id = 2; id <= 6; ++id) {
    EXPECT_EQ(*tables.Read(id), contents[id - 2]) << "service " << id;
  }
}

// Another size in as many elements (1033 and 1031 slots both take three chunks) is taken by
// the kernel, but the installed table is not rewritten in place: its size word says it was
// built for another size, so a new table replaces it, and it reads back at its own size.
TEST(MaglevTables, AnotherSizeInAsManyElementsIsReplacedNotRewritten) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), kSize, kServices);
  ASSERT_TRUE(tables.Install(1, Pattern(1)).ok());
  const auto before = tables.TableId(1);
  ASSERT_TRUE(before.ok());
  static_assert(XLB_MAGLEV_ELEMS(1033) == XLB_MAGLEV_ELEMS(kSize));
  MaglevTables bigger(outer.get(), 1033, kServices);
  std::vector<uint32_t> slots(1033);
  for (uint32_t i = 0; i < slots.size(); ++i) {
    slots[i] = 7 + i % 5;
  }
  auto r = bigger.Install(1, slots);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_NE(*bigger.TableId(1), *before);
  EXPECT_EQ(*bigger.Read(1), slots);
  EXPECT_EQ(*tables.Read(1), slots);  // a reader takes each table's own size
  UniqueFd inner(bpf_map_get_fd_by_id(*bigger.TableId(1)));
  EXPECT_EQ(*MaglevTables::SizeOf(inner.get()), 1033u);
}

// A table size the outer map's template does not have is refused by the kernel, and the
// retry without BPF_F_MMAPABLE does not leave the class believing the template is old.
TEST(MaglevTables, WrongTableSizeIsRefusedAndLeavesMmapOn) {
  UniqueFd outer = OuterMap(true);
  ASSERT_TRUE(outer.valid());
  MaglevTables tables(outer.get(), 257, kServices);
  std::vector<uint32_t> slots(257, 1);
  auto r = tables.Install(1, slots);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, EINVAL);
  EXPECT_NE(r.error().what.find("template"), std::string::npos) << r.error().what;
  EXPECT_TRUE(tables.mmapable());
}

}  // namespace
}  // namespace xlb::testing
