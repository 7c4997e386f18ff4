#include "loader/maglev_tables.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <optional>
#include <utility>

#include "loader/libbpf_opts.h"
#include "maps/typed_map.h"
#include "maps/xlb_abi.h"

namespace xlb {
namespace {

std::string Context(uint32_t service_id) {
  return "Maglev table of service " + std::to_string(service_id);
}

constexpr uint32_t kChunk = XLB_MAGLEV_CHUNK;
static_assert(sizeof(xlb_maglev_chunk) == kChunk * sizeof(uint32_t));

// The last element of a table of slots.size() slots: the slots of its last chunk, zeros, and
// the table's size in its last word.
xlb_maglev_chunk LastChunk(std::span<const uint32_t> slots) {
  const auto size = static_cast<uint32_t>(slots.size());
  xlb_maglev_chunk last{};
  const size_t first = size_t{XLB_MAGLEV_ELEMS(size) - 1} * kChunk;
  std::copy(slots.begin() + static_cast<std::ptrdiff_t>(first), slots.end(), last.id);
  last.id[kChunk - 1] = size;
  return last;
}

// A table's slots as mapped memory, unmapped when it goes. The mapping is the map's own
// memory (BPF_F_MMAPABLE): nothing is copied, and the pages leave this process's RSS with
// munmap. The elements are chunks of slots back to back (struct xlb_maglev_chunk, a multiple
// of the kernel's 8-byte array stride), so the mapping is the plain array of the table's
// slots.
class MappedTable {
 public:
  static Result<MappedTable> Map(int fd, uint32_t slots, int prot) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t bytes =
        (XLB_MAGLEV_ELEMS(size_t{slots}) * sizeof(xlb_maglev_chunk) + page - 1) / page * page;
    void* p = ::mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      return Error::FromErrno(err, "mmap of " + std::to_string(slots) + " slots");
    }
    return MappedTable(static_cast<unsigned char*>(p), bytes);
  }
  MappedTable(MappedTable&& o) noexcept
      : base_(std::exchange(o.base_, nullptr)), bytes_(o.bytes_) {}
  MappedTable& operator=(MappedTable&&) = delete;
  ~MappedTable() {
    if (base_ != nullptr) {
      ::munmap(base_, bytes_);
    }
  }

  // Only the slots that differ, each with one aligned 4-byte store: a packet that reads a
  // slot meanwhile reads its old backend id or its new one, never a torn value.
  void Update(std::span<const uint32_t> slots) const {
    for (size_t i = 0; i < slots.size(); ++i) {
      std::atomic_ref<uint32_t> slot(*reinterpret_cast<uint32_t*>(base_ + i * sizeof(uint32_t)));
      if (slot.load(std::memory_order_relaxed) != slots[i]) {
        slot.store(slots[i], std::memory_order_relaxed);
      }
    }
  }
  void Read(std::span<uint32_t> slots) const {
    std::memcpy(slots.data(), base_, slots.size_bytes());
  }

 private:
  MappedTable(unsigned char* base, size_t bytes) : base_(base), bytes_(bytes) {}
  unsigned char* base_;
  size_t bytes_;
};

// The `size` slots through one batch lookup of the table's elements (or a few: the kernel may
// stop early). nullopt when the kernel has no batch lookup for arrays.
Result<std::optional<std::vector<uint32_t>>> ReadBatch(int fd, uint32_t size,
                                                       const std::string& ctx) {
  const uint32_t elems = XLB_MAGLEV_ELEMS(size);
  std::vector<uint32_t> keys(elems);
  std::vector<xlb_maglev_chunk> values(elems);
  std::vector<uint32_t> table(size);
  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  uint32_t in_token = 0, out_token = 0, done = 0;
  while (done < elems) {
    uint32_t count = elems - done;
    const int ret = bpf_map_lookup_batch(fd, done == 0 ? nullptr : &in_token, &out_token,
                                         keys.data() + done, values.data() + done, &count, &batch);
    if (BatchUnsupported(ret)) {
      return std::optional<std::vector<uint32_t>>{};
    }
    if (ret < 0 && ret != -ENOENT) {
      return Error::FromRet(ret, ctx + ": bpf_map_lookup_batch");
    }
    done += count;
    if (ret == -ENOENT || count == 0) {  // the end of the map
      break;
    }
    in_token = out_token;
  }
  if (done != elems) {
    return Error{
        EIO, ctx + ": read " + std::to_string(done) + " of " + std::to_string(elems) + " elements"};
  }
  for (uint32_t i = 0; i < elems; ++i) {
    if (keys[i] >= elems) {
      return Error{EIO, ctx + ": element key " + std::to_string(keys[i]) + " out of range"};
    }
    for (uint32_t j = 0; j < kChunk && keys[i] * kChunk + j < size; ++j) {
      table[keys[i] * kChunk + j] = values[i].id[j];
    }
  }
  return std::optional<std::vector<uint32_t>>{std::move(table)};
}

}  // namespace

MaglevTables::MaglevTables(int outer_fd, uint32_t table_size, uint32_t max_services)
    : outer_fd_(outer_fd),
      table_size_(table_size),
      max_services_(max_services),
      elem_keys_(XLB_MAGLEV_ELEMS(table_size)) {
  std::iota(elem_keys_.begin(), elem_keys_.end(), 0U);
}

Result<uint32_t> MaglevTables::SizeOf(int fd) {
  auto info = MapView(fd, "xlb_mag").Info();
  if (!info.ok()) {
    return std::move(info).take_error();
  }
  return SizeOf(fd, *info);
}

Result<uint32_t> MaglevTables::SizeOf(int fd, const bpf_map_info& info) {
  if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(xlb_maglev_chunk) ||
      info.max_entries == 0) {
    return Error{EINVAL, "map " + std::to_string(info.id) + " is not a Maglev table of " +
                             std::to_string(kChunk) + "-slot elements"};
  }
  const uint32_t key = info.max_entries - 1;
  xlb_maglev_chunk last{};
  if (int ret = bpf_map_lookup_elem(fd, &key, &last); ret < 0) {
    return Error::FromRet(ret, "Maglev table " + std::to_string(info.id) + ": last element");
  }
  const uint32_t size = last.id[kChunk - 1];
  if (size == 0 || XLB_MAGLEV_ELEMS(size) != info.max_entries) {
    return Error{EIO, "Maglev table " + std::to_string(info.id) + " of " +
                          std::to_string(info.max_entries) + " elements says it has " +
                          std::to_string(size) + " slots"};
  }
  return size;
}

Result<UniqueFd> MaglevTables::Create(uint32_t size, const std::string& name, bool mmapable) {
  bpf_map_create_opts opts{};
  InitLibbpfOpts(opts);
  opts.map_flags = mmapable ? BPF_F_MMAPABLE : 0;
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), sizeof(uint32_t),
                                sizeof(xlb_maglev_chunk), XLB_MAGLEV_ELEMS(size), &opts);
  if (fd < 0) {
    return Error::FromRet(fd, "bpf_map_create(" + name + ", " + std::to_string(size) + " slots)");
  }
  return UniqueFd(fd);
}

Result<void> MaglevTables::Fill(int fd, std::span<const uint32_t> slots,
                                const std::string& ctx) const {
  // The whole chunks are laid out in `slots` as the table's elements; the last one, with the
  // size word, is made apart.
  const auto elems = static_cast<uint32_t>(elem_keys_.size());
  const xlb_maglev_chunk last = LastChunk(slots);
  if (access_ != Access::kElement) {
    bpf_map_batch_opts batch{};
    InitLibbpfOpts(batch);
    batch.elem_flags = BPF_ANY;
    uint32_t count = elems - 1;
    int ret = count == 0 ? 0
                         : bpf_map_update_batch(fd, elem_keys_.data(), slots.data(), &count, &batch);
    if (ret == 0 && count == elems - 1) {
      count = 1;
      ret = bpf_map_update_batch(fd, &elem_keys_[elems - 1], &last, &count, &batch);
      if (ret == 0 && count == 1) {
        return {};
      }
      count = elems - 1;  // wrote all but the last
    }
    if (!BatchUnsupported(ret) || access_ == Access::kBatch) {
      return Error::FromRet(ret < 0 ? ret : -EIO, ctx + ": bpf_map_update_batch wrote " +
                                                      std::to_string(count) + " of " +
                                                      std::to_string(elems) + " elements");
    }
  }
  for (uint32_t i = 0; i < elems; ++i) {
    const void* value = i + 1 < elems ? static_cast<const void*>(slots.data() + size_t{i} * kChunk)
                                      : static_cast<const void*>(&last);
    if (int ret = bpf_map_update_elem(fd, &elem_keys_[i], value, BPF_ANY); ret < 0) {
      return Error::FromRet(ret, ctx + ": bpf_map_update_elem element " + std::to_string(i));
    }
  }
  return {};
}

Result<UniqueFd> MaglevTables::NewTable(uint32_t service_id, std::span<const uint32_t> slots,
                                        bool mmapable) const {
  const std::string ctx = Context(service_id);
  auto table = Create(table_size_, "xlb_mag_" + std::to_string(service_id), mmapable);
  if (!table.ok()) {
    return std::move(table).take_error().Within(ctx);
  }
  // Filled before any reader can see it, by batch updates (a mapping of each new table cost
  // 2.5 times the CPU: mmap, munmap and the TLB shootdown that comes with it).
  XLB_TRY(Fill(table->get(), slots, ctx));
  return table;
}

Result<void> MaglevTables::CheckWrite(uint32_t service_id, std::span<const uint32_t> slots) const {
  if (service_id == XLB_ID_NONE || service_id >= max_services_) {
    return Error{EINVAL, Context(service_id) + ": service id outside 1.." +
                             std::to_string(max_services_ - 1)};
  }
  if (slots.size() != table_size_) {
    return Error{EINVAL, Context(service_id) + ": " + std::to_string(slots.size()) +
                             " slots, maglev_size is " + std::to_string(table_size_)};
  }
  return {};
}

Result<void> MaglevTables::Install(uint32_t service_id, std::span<const uint32_t> slots) {
  const Write one{service_id, slots};
  size_t installed = 0;
  return InstallMany(std::span<const Write>(&one, 1), installed);
}

Result<void> MaglevTables::InstallMany(std::span<const Write> tables, size_t& installed) {
  installed = 0;
  for (const Write& t : tables) {
    XLB_TRY(CheckWrite(t.service_id, t.slots));
  }
  // A service with a table has it rewritten where it is (no outer-map update, so no grace
  // period); the others get new tables, swapped in with one batch update at the end.
  std::vector<Write> fresh;
  std::vector<size_t> fresh_at;  // their indices in `tables`
  std::optional<Error> failed;
  size_t failed_at = tables.size();
  for (size_t i = 0; i < tables.size(); ++i) {
    auto rewritten = Rewrite(tables[i].service_id, tables[i].slots);
    if (!rewritten.ok()) {
      failed = std::move(rewritten).take_error();
      failed_at = i;
      break;
    }
    if (!*rewritten) {
      fresh.push_back(tables[i]);
      fresh_at.push_back(i);
    }
  }
  // The new tables before the failed rewrite still go in, so that `installed` counts a
  // prefix of `tables`.
  size_t swapped = 0;
  auto swap = InstallNew(fresh, swapped);
  installed = swapped < fresh.size() ? fresh_at[swapped] : failed_at;
  XLB_TRY(std::move(swap));
  if (failed) {
    return std::move(*failed);
  }
  return {};
}

Result<bool> MaglevTables::Rewrite(uint32_t service_id, std::span<const uint32_t> slots) {
  const std::string ctx = Context(service_id);
  auto inner = Open(service_id);
  if (!inner.ok()) {
    if (inner.error().NotFound()) {
      return false;
    }
    return std::move(inner).take_error();
  }
  auto info = MapView(inner->get(), "xlb_mag").Info();
  if (!info.ok()) {
    return std::move(info).take_error().Within(ctx);
  }
  // Another shape (an older agent's), another size (in as many elements or not), or no size
  // word: a new table replaces it.
  auto size = SizeOf(inner->get(), *info);
  if (!size.ok() || *size != table_size_) {
    return false;
  }
  if (access_ == Access::kAuto && (info->map_flags & BPF_F_MMAPABLE) != 0) {
    auto mapped = MappedTable::Map(inner->get(), table_size_, PROT_READ | PROT_WRITE);
    if (!mapped.ok()) {
      return std::move(mapped).take_error().Within(ctx);
    }
    mapped->Update(slots);
    return true;
  }
  // Batch or element updates: each element written whole by the kernel (a packet may see
  // some chunks old and others new, each slot whole).
  XLB_TRY(Fill(inner->get(), slots, ctx));
  return true;
}

Result<void> MaglevTables::InstallNew(std::span<const Write> tables, size_t& installed) {
  installed = 0;
  if (tables.empty()) {
    return {};
  }
  // One after the other: the syncer installs a batch while it builds the next one on the
  // node's other cores.
  const bool mmapable = mmapable_;
  std::vector<UniqueFd> inner;
  std::vector<uint32_t> ids;
  std::vector<int> fds;
  inner.reserve(tables.size());
  for (const Write& t : tables) {
    auto table = NewTable(t.service_id, t.slots, mmapable);
    if (!table.ok()) {
      return std::move(table).take_error();
    }
    inner.push_back(std::move(*table));
    ids.push_back(t.service_id);
    fds.push_back(inner.back().get());
  }

  // The swaps: each outer slot changes atomically; the old tables go when their last reader
  // is done, ours close with `inner` (the outer map holds them now).
  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  batch.elem_flags = BPF_ANY;
  uint32_t count = static_cast<uint32_t>(ids.size());
  const int ret = access_ == Access::kElement
                      ? -EOPNOTSUPP
                      : bpf_map_update_batch(outer_fd_, ids.data(), fds.data(), &count, &batch);
  if (ret == -EINVAL && count == 0 && mmapable) {
    // Either an outer map pinned by an older xlb, whose template is not mmapable and takes
    // only tables like it, or a table size the template does not have. Try the first.
    mmapable_ = false;
    auto retried = InstallNew(tables, installed);
    if (!retried.ok() && installed == 0) {
      mmapable_ = true;
    }
    return retried;
  }
  if (BatchUnsupported(ret)) {
    return SwapEach(ids, fds, installed);
  }
  if (ret < 0) {
    installed = count;  // the kernel processed `count` entries before the one that failed
    return Error::FromRet(
        ret, Context(ids[std::min<size_t>(count, ids.size() - 1)]) +
                 ": bpf_map_update_batch(" XLB_MAP_MAGLEV ")" +
                 (ret == -EINVAL ? " (table size differs from the outer map's template?)" : ""));
  }
  installed = ids.size();
  return {};
}

Result<void> MaglevTables::SwapEach(std::span<const uint32_t> ids, std::span<const int> fds,
                                    size_t& installed) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (int ret = bpf_map_update_elem(outer_fd_, &ids[i], &fds[i], BPF_ANY); ret < 0) {
      return Error::FromRet(
          ret, Context(ids[i]) + ": bpf_map_update_elem(" XLB_MAP_MAGLEV ")" +
                   (ret == -EINVAL ? " (table size differs from the outer map's template?)" : ""));
    }
    ++installed;
  }
  return {};
}

Result<uint32_t> MaglevTables::TableId(uint32_t service_id) const {
  uint32_t id = 0;
  if (int ret = bpf_map_lookup_elem(outer_fd_, &service_id, &id); ret < 0) {
    return Error::FromRet(ret, "no Maglev table for service " + std::to_string(service_id));
  }
  return id;
}

Result<UniqueFd> MaglevTables::Open(uint32_t service_id) const {
  // A concurrent install may free the table between the two calls: look again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto id = TableId(service_id);
    if (!id.ok()) {
      return std::move(id).take_error();
    }
    const int fd = bpf_map_get_fd_by_id(*id);
    if (fd >= 0) {
      return UniqueFd(fd);
    }
    if (fd != -ENOENT) {
      return Error::FromRet(fd, Context(service_id) + ": bpf_map_get_fd_by_id");
    }
  }
  return Error{EAGAIN, Context(service_id) + ": replaced while being read"};
}

Result<std::vector<uint32_t>> MaglevTables::Read(uint32_t service_id) const {
  const std::string ctx = Context(service_id);
  auto inner = Open(service_id);
  if (!inner.ok()) {
    return std::move(inner).take_error();
  }
  auto info = MapView(inner->get(), "xlb_mag").Info();
  if (!info.ok()) {
    return std::move(info).take_error().Within(ctx);
  }
  auto sized = SizeOf(inner->get(), *info);
  if (!sized.ok()) {
    return std::move(sized).take_error().Within(ctx);
  }
  const uint32_t size = *sized;
  if (access_ == Access::kAuto && (info->map_flags & BPF_F_MMAPABLE) != 0) {
    auto mapped = MappedTable::Map(inner->get(), size, PROT_READ);
    if (mapped.ok()) {
      std::vector<uint32_t> table(size);
      mapped->Read(table);
      return table;
    }
  }
  if (access_ != Access::kElement) {
    auto batch = ReadBatch(inner->get(), size, ctx);
    if (!batch.ok()) {
      return std::move(batch).take_error();
    }
    if (*batch) {
      return std::move(**batch);
    }
    if (access_ == Access::kBatch) {
      return Error{kENOTSUPP, ctx + ": bpf_map_lookup_batch"};
    }
  }
  std::vector<uint32_t> table(size);
  for (uint32_t k = 0; k < info->max_entries; ++k) {
    xlb_maglev_chunk chunk{};
    if (int ret = bpf_map_lookup_elem(inner->get(), &k, &chunk); ret < 0) {
      return Error::FromRet(ret, ctx + ": bpf_map_lookup_elem element " + std::to_string(k));
    }
    for (uint32_t j = 0; j < kChunk && k * kChunk + j < size; ++j) {
      table[k * kChunk + j] = chunk.id[j];
    }
  }
  return table;
}

Result<void> MaglevTables::Remove(uint32_t service_id) {
  if (int ret = bpf_map_delete_elem(outer_fd_, &service_id); ret < 0 && ret != -ENOENT) {
    return Error::FromRet(ret, "remove Maglev table of service " + std::to_string(service_id));
  }
  return {};
}

uint32_t MaglevTables::Count() const {
  auto info = MapView(outer_fd_, XLB_MAP_MAGLEV).Info();
  if (!info.ok()) {
    return 0;
  }
  uint32_t n = 0;
  for (uint32_t id = 0; id < info->max_entries; ++id) {
    uint32_t inner = 0;
    if (bpf_map_lookup_elem(outer_fd_, &id, &inner) == 0) {
      ++n;
    }
  }
  return n;
}

}  // namespace xlb
