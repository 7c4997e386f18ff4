#include "userspace/sync/bpf_map_store.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>

#include "loader/fd.h"
#include "loader/libbpf_opts.h"

namespace xlb {

StoreLimits BpfMapStore::limits() const {
  return StoreLimits{dp_.maglev_size(), dp_.options().max_services, dp_.options().max_backends};
}

Result<void> BpfMapStore::PutBackend(uint32_t id, const xlb_backend& backend) {
  return dp_.backends().Update(id, backend);
}

Result<void> BpfMapStore::InstallTable(uint32_t service_id, std::span<const uint32_t> slots) {
  return dp_.InstallMaglevTable(service_id, slots);
}

namespace {

constexpr int kENOTSUPP = 524;  // the kernel's, not libc's

// A table's slots as mapped memory, unmapped when it goes. The mapping is the map's own
// memory (BPF_F_MMAPABLE): nothing is copied, and the pages leave this process's RSS with
// munmap. An ARRAY map lays its values out 8 bytes apart (the kernel rounds value_size up
// to 8), so slot i is the first 4 bytes of the i-th 8-byte element.
class MappedTable {
 public:
  static constexpr size_t kStride = (sizeof(xlb_maglev_slot) + 7) / 8 * 8;

  static Result<MappedTable> Map(int fd, uint32_t slots, int prot) {
    const size_t bytes = RoundToPage(slots * kStride);
    void* p = ::mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      return Error::FromErrno(err, "mmap of " + std::to_string(slots) + " slots");
    }
    return MappedTable(static_cast<unsigned char*>(p), bytes);
  }
  MappedTable(MappedTable&& o) noexcept : base_(o.base_), bytes_(o.bytes_) { o.base_ = nullptr; }
  MappedTable& operator=(MappedTable&& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~MappedTable() {
    if (base_ != nullptr) {
      ::munmap(base_, bytes_);
    }
  }

  void Write(std::span<const uint32_t> slots) const {
    for (size_t i = 0; i < slots.size(); ++i) {
      std::memcpy(base_ + i * kStride, &slots[i], sizeof(uint32_t));
    }
  }
  void Read(std::span<uint32_t> slots) const {
    for (size_t i = 0; i < slots.size(); ++i) {
      std::memcpy(&slots[i], base_ + i * kStride, sizeof(uint32_t));
    }
  }

 private:
  MappedTable(unsigned char* base, size_t bytes) : base_(base), bytes_(bytes) {}
  static size_t RoundToPage(size_t n) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
  }
  unsigned char* base_;
  size_t bytes_;
};

}  // namespace

Result<UniqueFd> BpfMapStore::NewTable(uint32_t service_id, std::span<const uint32_t> slots) {
  const uint32_t size = dp_.maglev_size();
  const std::string ctx = "Maglev table of service " + std::to_string(service_id);
  // The shape of XdpDatapath's inner-map template: the outer map accepts nothing else.
  const std::string name = "xlb_mag_" + std::to_string(service_id);
  bpf_map_create_opts opts{};
  InitLibbpfOpts(opts);
  opts.map_flags = mmapable_ ? BPF_F_MMAPABLE : 0;
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), sizeof(uint32_t),
                                sizeof(xlb_maglev_slot), size, &opts);
  if (fd < 0) {
    return Error::FromRet(fd, ctx + ": bpf_map_create");
  }
  UniqueFd table(fd);
  if (mmapable_) {
    // A new map is not in the outer map yet: no reader sees it half written.
    auto mapped = MappedTable::Map(fd, size, PROT_READ | PROT_WRITE);
    if (!mapped.ok()) {
      return std::move(mapped).take_error().Within(ctx);
    }
    mapped->Write(slots);
    return table;
  }
  if (slot_keys_.size() != size) {
    slot_keys_.resize(size);
    std::iota(slot_keys_.begin(), slot_keys_.end(), 0u);
  }
  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  batch.elem_flags = BPF_ANY;
  uint32_t count = size;
  int ret = bpf_map_update_batch(fd, slot_keys_.data(), slots.data(), &count, &batch);
  if (ret == -kENOTSUPP || ret == -EOPNOTSUPP) {
    for (uint32_t i = 0; i < size; ++i) {
      if (int r = bpf_map_update_elem(fd, &slot_keys_[i], &slots[i], BPF_ANY); r < 0) {
        return Error::FromRet(r, ctx + ": bpf_map_update_elem slot " + std::to_string(i));
      }
    }
  } else if (ret < 0 || count != size) {
    return Error::FromRet(ret < 0 ? ret : -EIO, ctx + ": bpf_map_update_batch wrote " +
                                                    std::to_string(count) + " of " +
                                                    std::to_string(size) + " slots");
  }
  return table;
}

Result<void> BpfMapStore::InstallTables(std::span<const TableWrite> tables, size_t& installed) {
  installed = 0;
  const uint32_t size = dp_.maglev_size();
  const uint32_t max_services = dp_.options().max_services;
  std::vector<UniqueFd> inner;
  std::vector<uint32_t> ids;
  std::vector<int> fds;
  for (const TableWrite& t : tables) {
    if (t.service_id == XLB_ID_NONE || t.service_id >= max_services || t.slots.size() != size) {
      return Error{EINVAL, "Maglev table of service " + std::to_string(t.service_id) +
                               ": service id outside 1.." + std::to_string(max_services - 1) +
                               " or not " + std::to_string(size) + " slots"};
    }
  }
  if (tables.empty()) {
    return {};
  }
  // New maps, created and filled on two threads when they are mmapable (the kernel zeroes
  // every new map's pages: half the kernel's share of a full sync); nothing shared but the
  // datapath's fds, which only the outer update below uses.
  std::vector<std::optional<Error>> errors(tables.size());
  inner.resize(tables.size());
  auto create = [&](size_t first, size_t step) {
    for (size_t i = first; i < tables.size(); i += step) {
      auto table = NewTable(tables[i].service_id, tables[i].slots);
      if (table.ok()) {
        inner[i] = std::move(*table);
      } else {
        errors[i] = std::move(table).take_error();
      }
    }
  };
  if (mmapable_ && tables.size() >= 4) {
    std::thread other(create, 1, 2);
    create(0, 2);
    other.join();
  } else {
    create(0, 1);
  }
  for (size_t i = 0; i < tables.size(); ++i) {
    if (errors[i]) {
      return std::move(*errors[i]);
    }
    ids.push_back(tables[i].service_id);
    fds.push_back(inner[i].get());
  }

  // The swaps: each outer slot changes atomically (readers see the old table or the new);
  // the old tables go when their last reader is done, ours close with `inner`.
  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  batch.elem_flags = BPF_ANY;
  uint32_t count = static_cast<uint32_t>(ids.size());
  int ret = bpf_map_update_batch(dp_.maglev_fd(), ids.data(), fds.data(), &count, &batch);
  if (ret == -EINVAL && count == 0 && mmapable_) {
    // An outer map pinned by an older xlb, whose template is not mmapable: it takes only
    // tables like it. Fill them slot by slot from now on.
    mmapable_ = false;
    return InstallTables(tables, installed);
  }
  if (ret == -kENOTSUPP || ret == -EOPNOTSUPP) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (int r = bpf_map_update_elem(dp_.maglev_fd(), &ids[i], &fds[i], BPF_ANY); r < 0) {
        return Error::FromRet(r, "Maglev table of service " + std::to_string(ids[i]) +
                                     ": bpf_map_update_elem(" XLB_MAP_MAGLEV ")");
      }
      ++installed;
    }
    return {};
  }
  if (ret < 0) {
    // The kernel processed `count` entries before the one that failed.
    installed = count;
    return Error::FromRet(ret, "Maglev table of service " +
                                   std::to_string(ids[std::min<size_t>(count, ids.size() - 1)]) +
                                   ": bpf_map_update_batch(" XLB_MAP_MAGLEV ")");
  }
  installed = ids.size();
  return {};
}

Result<std::optional<TableDigest>> BpfMapStore::ReadTableDigest(uint32_t service_id) const {
  // A mmapable table is read through a read-only mapping (no copy); an older one slot by
  // slot through the loader.
  uint32_t inner_id = 0;
  if (int ret = bpf_map_lookup_elem(dp_.maglev_fd(), &service_id, &inner_id); ret < 0) {
    if (ret == -ENOENT) {
      return std::optional<TableDigest>{};
    }
    return Error::FromRet(ret, "Maglev table of service " + std::to_string(service_id));
  }
  UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
  if (inner.valid()) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(inner.get(), &info, &len) == 0 &&
        (info.map_flags & BPF_F_MMAPABLE) != 0) {
      auto mapped = MappedTable::Map(inner.get(), info.max_entries, PROT_READ);
      if (mapped.ok()) {
        std::vector<uint32_t> slots(info.max_entries);
        mapped->Read(slots);
        return std::optional<TableDigest>{TableDigest::Of(slots)};
      }
    }
  }
  auto table = dp_.ReadMaglevTable(service_id);
  if (!table.ok()) {
    if (table.error().NotFound()) {
      return std::optional<TableDigest>{};
    }
    return std::move(table).take_error();
  }
  return std::optional<TableDigest>{TableDigest::Of(*table)};
}

Result<void> BpfMapStore::RemoveTable(uint32_t service_id) {
  return dp_.RemoveMaglevTable(service_id);
}

Result<void> BpfMapStore::PutService(const xlb_service_key& key, const xlb_service& service) {
  return dp_.services().Update(key, service);
}

Result<void> BpfMapStore::EraseService(const xlb_service_key& key) {
  auto erased = dp_.services().Erase(key);
  if (!erased.ok() && erased.error().NotFound()) {
    return {};
  }
  return erased;
}

Result<void> BpfMapStore::PutVipFilterWord(uint32_t word, uint64_t bits) {
  return dp_.vip_filter().Update(word, bits);
}

Result<MapContents> BpfMapStore::ReadAll() const {
  MapContents out;
  XLB_TRY(dp_.services().ForEach(
      [&](const xlb_service_key& key, const xlb_service& value) { out.services[key] = value; }));

  const auto backends = dp_.backends();
  const xlb_backend empty{};
  for (uint32_t id = 1; id < dp_.options().max_backends; ++id) {
    auto backend = backends.Lookup(id);
    if (!backend.ok()) {
      return std::move(backend).take_error();
    }
    if (!AbiEqual(*backend, empty)) {
      out.backends[id] = *backend;
    }
  }

  for (uint32_t id = 1; id < dp_.options().max_services; ++id) {
    auto digest = ReadTableDigest(id);
    if (!digest.ok()) {
      return std::move(digest).take_error();
    }
    if (*digest) {
      out.tables[id] = **digest;  // the slots go: only the digest is kept
    }
  }

  const auto filter = dp_.vip_filter();
  for (uint32_t word = 0; word < XLB_VIP_FILTER_WORDS; ++word) {
    auto bits = filter.Lookup(word);
    if (!bits.ok()) {
      return std::move(bits).take_error();
    }
    if (*bits != 0) {
      out.vip_filter[word] = *bits;
    }
  }
  return out;
}

}  // namespace xlb
