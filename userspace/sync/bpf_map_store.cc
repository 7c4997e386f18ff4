#include "userspace/sync/bpf_map_store.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "loader/libbpf_opts.h"
#include "maps/xlb_abi.h"

namespace xlb {
namespace {

template <typename Map, typename Key>
Result<void> EraseAbsentOk(const Map& map, const Key& key) {
  auto erased = map.Erase(key);
  if (!erased.ok() && erased.error().NotFound()) {
    return {};
  }
  return erased;
}

}  // namespace

StoreLimits BpfMapStore::limits() const {
  return StoreLimits{dp_.maglev_size(), dp_.options().max_services, dp_.options().max_backends};
}

Result<void> BpfMapStore::PutBackend(uint32_t id, const xlb_backend& backend) {
  return dp_.backends().Update(id, backend);
}

Result<void> BpfMapStore::PutBackends(std::span<const BackendWrite> backends, size_t& written) {
  written = 0;
  constexpr size_t kChunk = 4096;  // bounds the key and value copies (the syncer's calls fit)
  std::vector<uint32_t> ids;
  std::vector<xlb_backend> values;
  while (written < backends.size()) {
    const size_t n = std::min(kChunk, backends.size() - written);
    ids.clear();
    values.clear();
    for (size_t i = written; i < written + n; ++i) {
      ids.push_back(backends[i].id);
      values.push_back(backends[i].backend);
    }
    bpf_map_batch_opts opts{};
    InitLibbpfOpts(opts);
    opts.elem_flags = BPF_ANY;
    auto count = static_cast<uint32_t>(n);
    const int ret =
        bpf_map_update_batch(dp_.backends().fd(), ids.data(), values.data(), &count, &opts);
    if (BatchUnsupported(ret)) {
      // An older kernel: the rest one by one.
      size_t rest = 0;
      auto r = MapStore::PutBackends(backends.subspan(written), rest);
      written += rest;
      return r;
    }
    if (ret < 0) {
      written += count;  // the kernel wrote `count` entries before the one that failed
      return Error::FromRet(ret, "backend " + std::to_string(backends[written].id) +
                                     ": bpf_map_update_batch(" XLB_MAP_BACKENDS ")");
    }
    written += n;
  }
  return {};
}

Result<void> BpfMapStore::InstallTable(uint32_t service_id, std::span<const uint32_t> slots) {
  return dp_.maglev_tables().Install(service_id, slots);
}

Result<void> BpfMapStore::InstallTables(std::span<const TableWrite> tables, size_t& installed) {
  std::vector<MaglevTables::Write> writes;
  writes.reserve(tables.size());
  for (const TableWrite& t : tables) {
    writes.push_back({t.service_id, t.slots});
  }
  return dp_.maglev_tables().InstallMany(writes, installed);
}

Result<std::optional<TableDigest>> BpfMapStore::ReadTableDigest(uint32_t service_id) const {
  auto table = dp_.maglev_tables().Read(service_id);
  if (!table.ok()) {
    if (table.error().NotFound()) {
      return std::optional<TableDigest>{};
    }
    return std::move(table).take_error();
  }
  return std::optional<TableDigest>{TableDigest::Of(*table)};
}

Result<void> BpfMapStore::RemoveTable(uint32_t service_id) {
  return dp_.maglev_tables().Remove(service_id);
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

Result<void> BpfMapStore::PutPeer(const xlb_peer_key& key, const xlb_peer& peer) {
  return dp_.peers().Update(key, peer);
}

Result<void> BpfMapStore::ErasePeer(const xlb_peer_key& key) {
  return EraseAbsentOk(dp_.peers(), key);
}

Result<void> BpfMapStore::PutAffinityMatch(const xlb_affinity_match_key& key) {
  return dp_.affinity_match().Update(key, 0);
}

Result<void> BpfMapStore::EraseAffinityMatch(const xlb_affinity_match_key& key) {
  return EraseAbsentOk(dp_.affinity_match(), key);
}

Result<void> BpfMapStore::PutSourceRange(const xlb_src_range_key& key) {
  return dp_.source_ranges().Update(key, 0);
}

Result<void> BpfMapStore::EraseSourceRange(const xlb_src_range_key& key) {
  return EraseAbsentOk(dp_.source_ranges(), key);
}

Result<MapContents> BpfMapStore::ReadAll() const {
  MapContents out;
  XLB_TRY(dp_.affinity_match().ForEach(
      [&](const xlb_affinity_match_key& key, uint8_t) { out.affinity_match.insert(key); }));
  XLB_TRY(dp_.source_ranges().ForEach(
      [&](const xlb_src_range_key& key, uint8_t) { out.source_ranges.insert(key); }));
  XLB_TRY(dp_.services().ForEach(
      [&](const xlb_service_key& key, const xlb_service& value) { out.services[key] = value; }));
  XLB_TRY(dp_.peers().ForEach(
      [&](const xlb_peer_key& key, const xlb_peer& value) { out.peers[key] = value; }));

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
