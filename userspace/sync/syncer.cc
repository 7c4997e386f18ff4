#include "userspace/sync/syncer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace xlb {
namespace {

std::string ServiceKeyText(const xlb_service_key& key, uint32_t id) {
  return "service " + std::to_string(id) + " entry (port " + std::to_string(ntohs(key.port)) +
         ", proto " + std::to_string(key.proto) + ")";
}

// The entry of `id` in `map` (ordered by id), for ids asked in ascending order: `at` (begin()
// before the first) is where the previous search ended, so a dense run of ids, a full sync's
// 300,000 backends, costs a step or two each instead of a lookup; a sparse one (an endpoint
// change) falls back to lower_bound. Entries added behind `at` (ids already asked) are fine.
template <typename Map, typename Iterator>
Iterator FindAscending(Map& map, Iterator& at, uint32_t id) {
  for (int step = 0; step < 8 && at != map.end() && at->first < id; ++step) {
    ++at;
  }
  if (at != map.end() && at->first < id) {
    at = map.lower_bound(id);
  }
  return at != map.end() && at->first == id ? at : map.end();
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
  tracker_.reset();
  unsynced_ = {};
  adopted_ = true;
  return {};
}

Result<DesiredState> Syncer::Plan(const Model& model,
                                  std::span<const ServiceBackends> plans) const {
  return BuildDesiredState(model, plans, held_, pending_ ? &*pending_ : nullptr, store_.limits());
}

SyncResult Syncer::Sync(const DesiredState& desired) {
  const auto start = std::chrono::steady_clock::now();
  SyncResult result;
  if (!adopted_) {
    result.error = Error{EINVAL, "sync before Adopt(): the store's contents are unknown"};
  } else {
    tracker_.reset();
    unsynced_ = {};
    TouchedEntries all;
    all.AddAll(held_);
    all.AddAll(desired.maps);
    auto done = SyncSteps(desired.maps, all, result.writes);
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

Result<void> Syncer::PlanChanges(const Model& model, const std::set<NamespacedName>& services,
                                 const ServicePlanner& plan_of) {
  if (!adopted_) {
    return Error{EINVAL, "plan before Adopt(): the store's contents are unknown"};
  }
  const bool fresh = !tracker_;
  if (fresh) {
    // A new tracker starts from nothing: the first sync must also drop what the maps hold
    // and nothing wants any more.
    tracker_.emplace(held_, store_.limits());
    unsynced_ = {};
    unsynced_.AddAll(held_);
  }
  auto touched = tracker_->Update(model, services, plan_of);
  if (!touched.ok()) {
    tracker_.reset();  // half updated: the next plan starts again from the maps
    unsynced_ = {};
    return std::move(touched).take_error();
  }
  unsynced_.Merge(*touched);
  if (fresh) {
    PlanNodes(model);
  }
  return {};
}

void Syncer::PlanNodes(const Model& model) {
  if (tracker_) {
    unsynced_.Merge(tracker_->UpdateNodePeers(model));
  }
}

SyncResult Syncer::SyncChanges() {
  const auto start = std::chrono::steady_clock::now();
  SyncResult result;
  if (!tracker_) {
    result.error = Error{EINVAL, "sync before PlanChanges(): nothing is tracked"};
  } else {
    auto done = SyncSteps(tracker_->maps(), unsynced_, result.writes);
    if (!done.ok()) {
      result.error = std::move(done).take_error();
    } else {
      unsynced_ = {};
      tracker_->Commit();
    }
  }
  result.duration = std::chrono::steady_clock::now() - start;
  return result;
}

Result<void> Syncer::BuildTables(std::span<const TableRecipe* const> recipes,
                                 std::span<MaglevSlots> out, std::span<TableDigest> digests) {
  // Two builders at most (the agent shares the node), each taking the next table not yet
  // taken: the store installs the previous batch on a third thread, and whichever builder
  // shares its core with it takes fewer tables instead of keeping the other waiting (a fixed
  // half each left a core idle ~15 ms a batch). Each table is built into its own buffer and
  // digested there, so the result does not depend on the threads. A builder stops at its
  // first failure (a size not prime, an id 0: a programmer error), the other at its next
  // table; the error reported is the first table's that failed, which does not depend on the
  // threads either (every table before it was taken, and finished, before it).
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex failed_mu;
  size_t failed_at = recipes.size();
  std::optional<Error> failed;
  auto build = [&] {
    for (size_t i;
         !stop.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < recipes.size();) {
      out[i].resize(recipes[i]->size);
      if (auto built = recipes[i]->Build(out[i]); !built.ok()) {
        stop = true;
        const std::lock_guard lock(failed_mu);
        if (i < failed_at) {
          failed_at = i;
          failed = std::move(built).take_error();
        }
        return;
      }
      digests[i] = TableDigest::Of(out[i]);
    }
  };
  if (recipes.size() < 4) {
    build();
  } else {
    std::thread other(build);
    build();
    other.join();
  }
  if (failed) {
    return std::move(*failed);
  }
  return {};
}

Result<void> Syncer::SyncTables(const DesiredMaps& want, const TouchedEntries& touched,
                                WriteCounts& writes) {
  struct Staged {
    uint32_t id;
    uint64_t fingerprint;
    TableDigest digest;
    size_t buffer;
  };
  // Tables per batch: table_batch_bytes_ of slots (by default 16 MB: 256 tables of 16381
  // slots, 4096 of 1021).
  const size_t per_batch = std::clamp<size_t>(
      table_batch_bytes_ / (sizeof(uint32_t) * std::max(store_.limits().maglev_size, 1U)), 1,
      kMaxTableBatch);
  if (buffers_.size() < 2 * per_batch) {
    // Empty vectors: a buffer grows when a table is built in it. Batch k builds into half
    // k % 2 while the store installs the other half.
    buffers_.resize(2 * per_batch);
  }
  // The batch the store is installing, on `installer`. Joined before anything else touches
  // held_ or the store, and before this function returns, also on an error.
  std::vector<Staged> installing;
  Result<void> install_result;
  size_t install_done = 0;
  std::thread installer;
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) {
        t.join();
      }
    }
  } joiner{installer};
  auto finish_install = [&]() -> Result<void> {
    if (!installer.joinable()) {
      return {};
    }
    installer.join();
    for (size_t i = 0; i < install_done && i < installing.size(); ++i) {
      held_.tables[installing[i].id] = installing[i].digest;
      recipe_of_[installing[i].id] = installing[i].fingerprint;
      ++writes[WriteKind::kTable];
    }
    const uint32_t failed = install_done < installing.size() ? installing[install_done].id : 0;
    installing.clear();
    if (!install_result.ok()) {
      return std::move(install_result)
          .take_error()
          .Within("table of service " + std::to_string(failed));
    }
    return {};
  };
  auto start_install = [&](std::vector<Staged>& staged) {
    installing = std::move(staged);
    staged.clear();
    std::vector<MapStore::TableWrite> batch;
    batch.reserve(installing.size());
    for (const Staged& s : installing) {
      batch.push_back({s.id, buffers_[s.buffer]});
    }
    install_done = 0;
    installer = std::thread([this, &install_result, &install_done, batch = std::move(batch)] {
      install_result = store_.InstallTables(batch, install_done);
    });
  };

  // The tables to build, a batch at a time: built (on two threads) into one half of the
  // buffers, each compared with what is installed and staged when it differs, then handed
  // to the store once the previous batch is in.
  std::vector<std::pair<uint32_t, const TableRecipe*>> todo;
  std::vector<TableDigest> digests(per_batch);
  size_t batches = 0;
  auto build_batch = [&]() -> Result<void> {
    const size_t half = (batches++ % 2) * per_batch;
    std::vector<const TableRecipe*> recipes;
    recipes.reserve(todo.size());
    for (const auto& [id, recipe] : todo) {
      recipes.push_back(recipe);
    }
    XLB_TRY(BuildTables(recipes, std::span(buffers_).subspan(half, todo.size()), digests));
    tables_built_ += todo.size();
    XLB_TRY(finish_install());  // held_.tables of this batch's ids are not touched by it
    std::vector<Staged> staged;
    for (size_t i = 0; i < todo.size(); ++i) {
      const auto [id, recipe] = todo[i];
      auto it = held_.tables.find(id);
      if (it != held_.tables.end() && it->second == digests[i]) {
        recipe_of_[id] = recipe->fingerprint;
        continue;
      }
      // Forget the recipe first: if the install fails, what is installed is unknown.
      recipe_of_.erase(id);
      staged.push_back({id, recipe->fingerprint, digests[i], half + i});
    }
    todo.clear();
    if (!staged.empty()) {
      start_install(staged);
    }
    return {};
  };
  for (const uint32_t id : touched.tables) {
    auto wanted = want.tables.find(id);
    if (wanted == want.tables.end()) {
      continue;
    }
    const TableRecipe& recipe = wanted->second;
    if (held_.tables.count(id) != 0) {
      auto known = recipe_of_.find(id);
      if (known != recipe_of_.end() && known->second == recipe.fingerprint) {
        continue;
      }
    }
    todo.emplace_back(id, &recipe);
    if (todo.size() == per_batch) {
      XLB_TRY(build_batch());
    }
  }
  if (!todo.empty()) {
    XLB_TRY(build_batch());
  }
  XLB_TRY(finish_install());
  if (buffers_.size() > 8) {
    // A full sync's batch buffers (up to 32 MB) go; an endpoint change needs one.
    buffers_.resize(8);
  }
  return {};
}

Result<void> Syncer::SyncSteps(const DesiredMaps& want, const TouchedEntries& touched,
                               WriteCounts& writes) {
  // 0. New tunnel peers: a node is a peer before anything is tunnelled to it.
  for (const xlb_peer_key& key : touched.peers) {
    auto wanted = want.peers.find(key);
    if (wanted == want.peers.end()) {
      continue;
    }
    auto it = held_.peers.find(key);
    if (it != held_.peers.end() && AbiEqual(it->second, wanted->second)) {
      continue;
    }
    XLB_TRY(store_.PutPeer(key, wanted->second));
    held_.peers[key] = wanted->second;
    ++writes[WriteKind::kPeer];
  }
  // New source ranges before a service key asks for them (XLB_SVC_F_SOURCE_RANGES), new
  // affinity matches before the tables that hold their backends.
  for (const xlb_src_range_key& key : touched.source_ranges) {
    if (want.source_ranges.count(key) != 0 && held_.source_ranges.count(key) == 0) {
      XLB_TRY(store_.PutSourceRange(key));
      held_.source_ranges.insert(key);
      ++writes[WriteKind::kSourceRange];
    }
  }
  for (const xlb_affinity_match_key& key : touched.affinity_match) {
    if (want.affinity_match.count(key) != 0 && held_.affinity_match.count(key) == 0) {
      XLB_TRY(store_.PutAffinityMatch(key));
      held_.affinity_match.insert(key);
      ++writes[WriteKind::kAffinityMatch];
    }
  }

  // 1. New and changed backends, 4096 a call (batch updates).
  std::vector<MapStore::BackendWrite> backends;
  auto put_backends = [&]() -> Result<void> {
    size_t written = 0;
    auto put = store_.PutBackends(backends, written);
    for (size_t i = 0; i < written && i < backends.size(); ++i) {
      // Ascending ids: a full sync appends each at the end (the hint), in constant time.
      held_.backends.insert_or_assign(held_.backends.end(), backends[i].id, backends[i].backend);
      ++writes[WriteKind::kBackend];
    }
    backends.clear();
    return put;
  };
  auto want_at = want.backends.begin();
  auto held_at = held_.backends.begin();
  for (const uint32_t id : touched.backends) {
    auto wanted = FindAscending(want.backends, want_at, id);
    if (wanted == want.backends.end()) {
      continue;
    }
    const xlb_backend& backend = wanted->second;
    auto it = FindAscending(held_.backends, held_at, id);
    if (it != held_.backends.end() && AbiEqual(it->second, backend)) {
      continue;
    }
    backends.push_back({id, backend});
    if (backends.size() == 4096) {
      XLB_TRY(put_backends());
    }
  }
  XLB_TRY(put_backends());

  // 2. New and changed tables. A table whose recipe is the one it was built from is not
  // built again; one whose recipe is new is built, and written only when its slots differ
  // from what is installed (after a restart: the same, no write). Built tables go to the
  // store a batch (16 MB of slots) at a time (BpfMapStore rewrites installed ones in place and
  // swaps the new ones in with one outer-map update: one RCU grace period per batch). A batch is
  // handed to the store on a thread of its own while the next one is built, so the kernel's
  // work (new inner maps, the grace period) overlaps the builds: two batches of tables are in
  // memory at once at most.
  XLB_TRY(SyncTables(want, touched, writes));

  // 3. VIP filter bits of new addresses, then the service entries.
  for (const uint32_t word : touched.vip_words) {
    auto wanted = want.vip_filter.find(word);
    if (wanted == want.vip_filter.end()) {
      continue;
    }
    const uint64_t bits = wanted->second;
    auto it = held_.vip_filter.find(word);
    const uint64_t now = it != held_.vip_filter.end() ? it->second : 0;
    if ((bits & ~now) == 0) {
      continue;
    }
    XLB_TRY(store_.PutVipFilterWord(word, now | bits));
    held_.vip_filter[word] = now | bits;
    ++writes[WriteKind::kVipFilterWord];
  }
  for (const xlb_service_key& key : touched.services) {
    auto wanted = want.services.find(key);
    if (wanted == want.services.end()) {
      continue;
    }
    const xlb_service& service = wanted->second;
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
  for (const xlb_service_key& key : touched.services) {
    if (want.services.count(key) == 0 && held_.services.count(key) != 0) {
      gone_keys.push_back(key);
    }
  }
  for (const xlb_service_key& key : gone_keys) {
    XLB_TRY(store_.EraseService(key));
    held_.services.erase(key);
    ++writes[WriteKind::kServiceRemoval];
  }

  std::vector<std::pair<uint32_t, uint64_t>> words;
  for (const uint32_t word : touched.vip_words) {
    auto held = held_.vip_filter.find(word);
    if (held == held_.vip_filter.end()) {
      continue;
    }
    const uint64_t bits = held->second;
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
  for (const uint32_t id : touched.tables) {
    if (want.tables.count(id) == 0 && held_.tables.count(id) != 0) {
      gone_tables.push_back(id);
    }
  }
  for (const uint32_t id : gone_tables) {
    XLB_TRY(store_.RemoveTable(id));
    held_.tables.erase(id);
    recipe_of_.erase(id);
    ++writes[WriteKind::kTableRemoval];
  }

  held_at = held_.backends.begin();
  want_at = want.backends.begin();
  for (const uint32_t id : touched.backends) {
    auto held = FindAscending(held_.backends, held_at, id);
    if (held == held_.backends.end()) {
      continue;
    }
    xlb_backend& backend = held->second;
    if ((backend.flags & XLB_BE_F_VALID) == 0 ||
        FindAscending(want.backends, want_at, id) != want.backends.end()) {
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

  // 5. Tunnel peers no endpoint names any more, last.
  std::vector<xlb_peer_key> gone_peers;
  for (const xlb_peer_key& key : touched.peers) {
    if (want.peers.count(key) == 0 && held_.peers.count(key) != 0) {
      gone_peers.push_back(key);
    }
  }
  for (const xlb_peer_key& key : gone_peers) {
    XLB_TRY(store_.ErasePeer(key));
    held_.peers.erase(key);
    ++writes[WriteKind::kPeerRemoval];
  }
  // Source ranges and affinity matches nothing asks for any more: a service key that still
  // carried XLB_SVC_F_SOURCE_RANGES has been rewritten or erased above.
  for (const xlb_src_range_key& key : touched.source_ranges) {
    if (want.source_ranges.count(key) == 0 && held_.source_ranges.count(key) != 0) {
      XLB_TRY(store_.EraseSourceRange(key));
      held_.source_ranges.erase(key);
      ++writes[WriteKind::kSourceRangeRemoval];
    }
  }
  for (const xlb_affinity_match_key& key : touched.affinity_match) {
    if (want.affinity_match.count(key) == 0 && held_.affinity_match.count(key) != 0) {
      XLB_TRY(store_.EraseAffinityMatch(key));
      held_.affinity_match.erase(key);
      ++writes[WriteKind::kAffinityMatchRemoval];
    }
  }
  return {};
}

}  // namespace xlb
