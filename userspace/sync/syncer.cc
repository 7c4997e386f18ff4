#include "userspace/sync/syncer.h"

#include <arpa/inet.h>

#include <cerrno>
#include <string>
#include <vector>

namespace xlb {
namespace {

std::string ServiceKeyText(const xlb_service_key& key, uint32_t id) {
  return "service " + std::to_string(id) + " entry (port " + std::to_string(ntohs(key.port)) +
         ", proto " + std::to_string(key.proto) + ")";
}

}  // namespace

Result<void> Syncer::Adopt() {
  auto contents = store_.ReadAll();
  if (!contents.ok()) {
    return std::move(contents).take_error().Within("adopting the maps");
  }
  held_ = std::move(*contents);
  recipe_of_.clear();
  pending_.reset();
  adopted_ = true;
  return {};
}

IdAllocator Syncer::Ids() const {
  return IdAllocator(held_, pending_ ? &*pending_ : nullptr, store_.limits());
}

Result<DesiredState> Syncer::Plan(const Model& model,
                                  std::span<const ServiceBackends> plans) const {
  IdAllocator ids = Ids();
  return BuildDesiredState(model, plans, ids, store_.limits().maglev_size);
}

SyncResult Syncer::Sync(const DesiredState& desired) {
  const auto start = std::chrono::steady_clock::now();
  SyncResult result;
  if (!adopted_) {
    result.error = Error{EINVAL, "sync before Adopt(): the store's contents are unknown"};
  } else {
    auto done = SyncSteps(desired.maps, result.writes);
    if (!done.ok()) {
      result.error = std::move(done).take_error();
      pending_ = desired.maps;
    } else {
      pending_.reset();
    }
  }
  result.duration = std::chrono::steady_clock::now() - start;
  return result;
}

Result<void> Syncer::SyncSteps(const DesiredMaps& want, WriteCounts& writes) {
  // 1. New and changed backends.
  for (const auto& [id, backend] : want.backends) {
    auto it = held_.backends.find(id);
    if (it != held_.backends.end() && AbiEqual(it->second, backend)) {
      continue;
    }
    XLB_TRY(store_.PutBackend(id, backend));
    held_.backends[id] = backend;
    ++writes[WriteKind::kBackend];
  }

  // 2. New and changed tables, one swap each. A table whose recipe is the one it was built
  // from is not built again; one whose recipe is new is built, and written only when its
  // slots differ from what is installed (after a restart: the same, no write). Built tables
  // go to the store kTableBatch at a time (BpfMapStore swaps a batch in with one outer-map
  // update: one RCU grace period instead of one per table), so at most that many are in
  // memory at once.
  struct Staged {
    uint32_t id;
    uint64_t fingerprint;
    TableDigest digest;
  };
  std::vector<Staged> staged;
  if (buffers_.size() < kTableBatch) {
    buffers_.resize(kTableBatch);
  }
  auto flush = [&]() -> Result<void> {
    std::vector<MapStore::TableWrite> batch;
    batch.reserve(staged.size());
    for (size_t i = 0; i < staged.size(); ++i) {
      batch.push_back({staged[i].id, buffers_[i]});
    }
    size_t installed = 0;
    auto r = store_.InstallTables(batch, installed);
    for (size_t i = 0; i < installed && i < staged.size(); ++i) {
      held_.tables[staged[i].id] = staged[i].digest;
      recipe_of_[staged[i].id] = staged[i].fingerprint;
      ++writes[WriteKind::kTable];
    }
    const uint32_t failed = installed < staged.size() ? staged[installed].id : 0;
    staged.clear();
    if (!r.ok()) {
      return std::move(r).take_error().Within("table of service " + std::to_string(failed));
    }
    return {};
  };
  for (const auto& [id, recipe] : want.tables) {
    auto it = held_.tables.find(id);
    if (it != held_.tables.end()) {
      auto known = recipe_of_.find(id);
      if (known != recipe_of_.end() && known->second == recipe.fingerprint) {
        continue;
      }
    }
    MaglevSlots& slots = buffers_[staged.size()];
    slots.resize(recipe.size);
    recipe.Build(slots);
    ++tables_built_;
    const TableDigest digest = TableDigest::Of(slots);
    if (it != held_.tables.end() && it->second == digest) {
      recipe_of_[id] = recipe.fingerprint;
      continue;
    }
    // Forget the recipe first: if the install fails, what is installed is unknown.
    recipe_of_.erase(id);
    staged.push_back({id, recipe.fingerprint, digest});
    if (staged.size() == kTableBatch) {
      XLB_TRY(flush());
    }
  }
  if (!staged.empty()) {
    XLB_TRY(flush());
  }

  // 3. VIP filter bits of new addresses, then the service entries.
  for (const auto& [word, bits] : want.vip_filter) {
    auto it = held_.vip_filter.find(word);
    const uint64_t now = it != held_.vip_filter.end() ? it->second : 0;
    if ((bits & ~now) == 0) {
      continue;
    }
    XLB_TRY(store_.PutVipFilterWord(word, now | bits));
    held_.vip_filter[word] = now | bits;
    ++writes[WriteKind::kVipFilterWord];
  }
  for (const auto& [key, service] : want.services) {
    auto it = held_.services.find(key);
    if (it != held_.services.end() && AbiEqual(it->second, service)) {
      continue;
    }
    auto put = store_.PutService(key, service);
    if (!put.ok()) {
      return std::move(put).take_error().Within(ServiceKeyText(key, service.id));
    }
    held_.services[key] = service;
    ++writes[WriteKind::kService];
  }

  // 4. Removals: service entries, VIP filter words, tables, backends.
  std::vector<xlb_service_key> gone_keys;
  for (const auto& [key, service] : held_.services) {
    if (want.services.count(key) == 0) {
      gone_keys.push_back(key);
    }
  }
  for (const xlb_service_key& key : gone_keys) {
    XLB_TRY(store_.EraseService(key));
    held_.services.erase(key);
    ++writes[WriteKind::kServiceRemoval];
  }

  std::vector<std::pair<uint32_t, uint64_t>> words;
  for (const auto& [word, bits] : held_.vip_filter) {
    auto it = want.vip_filter.find(word);
    const uint64_t target = it != want.vip_filter.end() ? it->second : 0;
    if (target != bits) {
      words.emplace_back(word, target);
    }
  }
  for (const auto& [word, bits] : words) {
    XLB_TRY(store_.PutVipFilterWord(word, bits));
    if (bits == 0) {
      held_.vip_filter.erase(word);
    } else {
      held_.vip_filter[word] = bits;
    }
    ++writes[WriteKind::kVipFilterWord];
  }

  std::vector<uint32_t> gone_tables;
  for (const auto& [id, digest] : held_.tables) {
    if (want.tables.count(id) == 0) {
      gone_tables.push_back(id);
    }
  }
  for (const uint32_t id : gone_tables) {
    XLB_TRY(store_.RemoveTable(id));
    held_.tables.erase(id);
    recipe_of_.erase(id);
    ++writes[WriteKind::kTableRemoval];
  }

  for (auto& [id, backend] : held_.backends) {
    if ((backend.flags & XLB_BE_F_VALID) == 0 || want.backends.count(id) != 0) {
      continue;
    }
    // Kept whole but invalid: conntrack entries that name it reselect, and the same endpoint
    // can take its own id back if it returns.
    xlb_backend invalid = backend;
    invalid.flags &= static_cast<uint16_t>(~XLB_BE_F_VALID);
    XLB_TRY(store_.PutBackend(id, invalid));
    backend = invalid;
    ++writes[WriteKind::kBackend];
  }
  return {};
}

}  // namespace xlb
