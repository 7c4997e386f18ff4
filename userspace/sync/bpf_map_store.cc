#include "userspace/sync/bpf_map_store.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <numeric>
#include <string>

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

Result<void> BpfMapStore::InstallTables(std::span<const TableWrite> tables, size_t& installed) {
  installed = 0;
  const uint32_t size = dp_.maglev_size();
  const uint32_t max_services = dp_.options().max_services;
  if (slot_keys_.size() != size) {
    slot_keys_.resize(size);
    std::iota(slot_keys_.begin(), slot_keys_.end(), 0u);
  }
  constexpr int kENOTSUPP = 524;  // the kernel's, not libc's
  std::vector<UniqueFd> inner;
  std::vector<uint32_t> ids;
  std::vector<int> fds;
  inner.reserve(tables.size());
  for (const TableWrite& t : tables) {
    const std::string ctx = "Maglev table of service " + std::to_string(t.service_id);
    if (t.service_id == XLB_ID_NONE || t.service_id >= max_services || t.slots.size() != size) {
      return Error{EINVAL, ctx + ": service id outside 1.." + std::to_string(max_services - 1) +
                               " or not " + std::to_string(size) + " slots"};
    }
    // The shape of XdpDatapath's inner-map template: the outer map accepts nothing else.
    const std::string name = "xlb_mag_" + std::to_string(t.service_id);
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name.c_str(), sizeof(uint32_t),
                                  sizeof(xlb_maglev_slot), size, nullptr);
    if (fd < 0) {
      return Error::FromRet(fd, ctx + ": bpf_map_create");
    }
    inner.emplace_back(fd);
    bpf_map_batch_opts batch{};
    InitLibbpfOpts(batch);
    batch.elem_flags = BPF_ANY;
    uint32_t count = size;
    int ret = bpf_map_update_batch(fd, slot_keys_.data(), t.slots.data(), &count, &batch);
    if (ret == -kENOTSUPP || ret == -EOPNOTSUPP) {
      for (uint32_t i = 0; i < size; ++i) {
        if (int r = bpf_map_update_elem(fd, &slot_keys_[i], &t.slots[i], BPF_ANY); r < 0) {
          return Error::FromRet(r, ctx + ": bpf_map_update_elem slot " + std::to_string(i));
        }
      }
    } else if (ret < 0 || count != size) {
      return Error::FromRet(ret < 0 ? ret : -EIO, ctx + ": bpf_map_update_batch wrote " +
                                                      std::to_string(count) + " of " +
                                                      std::to_string(size) + " slots");
    }
    ids.push_back(t.service_id);
    fds.push_back(fd);
  }
  if (ids.empty()) {
    return {};
  }

  // The swaps: each outer slot changes atomically (readers see the old table or the new);
  // the old tables go when their last reader is done, ours close with `inner`.
  bpf_map_batch_opts batch{};
  InitLibbpfOpts(batch);
  batch.elem_flags = BPF_ANY;
  uint32_t count = static_cast<uint32_t>(ids.size());
  int ret = bpf_map_update_batch(dp_.maglev_fd(), ids.data(), fds.data(), &count, &batch);
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
    auto table = dp_.ReadMaglevTable(id);
    if (!table.ok()) {
      if (table.error().NotFound()) {
        continue;
      }
      return std::move(table).take_error();
    }
    out.tables[id] = TableDigest::Of(*table);  // the slots go: only the digest is kept
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
