// The syncer: makes the datapath's maps hold a DesiredState, writing only what differs.
//
// Design
//
// What it knows. The syncer keeps a mirror of what the store holds: read back once by
// Adopt() (agent start, and after a restart the pinned maps still hold the last agent's
// state), then updated after every write that succeeded. Sync() diffs the desired state
// against the mirror, so an unchanged model costs no syscall, and the same desired state
// after a restart costs none either: ids are derived from the maps (IdAllocator in
// id_allocator.h), tables are deterministic (planner/maglev.h), so the state the new agent
// computes is byte for byte the one the old agent wrote.
//
// Ids. Service and backend ids are indices the kernel side holds on to (conntrack entries
// name both), so they are kept, not recomputed: a backend keeps the id its (cluster, address,
// port) has in the maps, a service port the id its VIP keys have, and only new things get
// new ids, the lowest free ones. Everything needed is in the maps themselves, so a restarted
// agent that adopts them derives the same ids without a state file. An id freed by a sync
// (a backend invalidated, a service removed) stays taken until a later sync, so a flow that
// conntrack still pins to it is never handed to a different backend by the same update.
//
// Order. A packet may arrive between any two writes; each step only adds what the next one
// will point at, or removes what nothing points at any more:
//   1. backends that are new or changed (an unreferenced entry is harmless);
//   2. Maglev tables that are new or changed: a changed one rewritten in place, a new one
//      swapped in (below);
//   3. VIP filter bits of new addresses (a set bit only costs a hash lookup), then the
//      service entries that are new or changed: the first packet to a new VIP finds its
//      table and backends in place;
//   4. removals: service entries, then the VIP filter words recomputed from what remains,
//      then tables nothing points at, then backends nothing selects any more, written with
//      XLB_BE_F_VALID cleared rather than erased (an ARRAY cannot erase; conntrack entries
//      that still name it reselect). A cleared id is not reused by the same sync: only a
//      later one may hand it to another backend (IdAllocator).
// Tunnel peers (xlb_peers_v1: the node of every endpoint, the outer sources decapsulation
// accepts) go around all of it: new ones before step 1, gone ones after step 4. The agent
// syncs before it attaches XDP, and the map is pinned like the others, so neither a first
// start nor a restart has a moment where a known node's tunnel packets are dropped.
// Terminating endpoints are in the desired state with weight 0: no slot, so no new flow, but
// a valid entry, so their established flows continue.
//
// Memory. The mirror keeps a digest of each table (TableDigest), never its slots, and the
// desired state a recipe (TableRecipe: members and size). A table is built only in step 2,
// only when its recipe differs from the one the installed table was last built from (or
// checked against), installed and dropped: at most one batch of tables at a time. After Adopt() the
// recipes of the adopted tables are unknown, so the first sync builds every table once and
// compares digests (a restart still writes nothing); later syncs build only what changed.
//
// Incremental. An agent keeps its desired state in the syncer (PlanChanges/SyncChanges,
// DesiredStateTracker): a change re-plans only the services whose inputs changed (and those
// whose VIP claims depend on theirs), and the sync walks only the entries those updates
// touched (TouchedEntries), in the same four steps. One endpoint change at 10,000 services
// costs about 1 ms of CPU instead of a rebuild of 300,000 backends. The whole-state Plan()/
// Sync() stay for tools and tests; a full Sync() drops the tracked state. Tables are built on
// two threads when a batch has several (each table by one thread into its own buffer: the
// result does not depend on the threads), and while a batch is built the one before it is
// handed to the store on a third thread, so the kernel's part (new inner maps, the grace
// period of the outer batch update) overlaps the builds. The mirror is updated from the
// syncer's thread only, after that install is joined, and a batch's tables are installed in
// order, so a failure still leaves a prefix installed and known.
//
// Atomic per slot. A service's first table is built in a new inner map and swapped in with
// one outer-map update (BpfMapStore::InstallTables: each new inner map filled through a
// mapping of it, BPF_F_MMAPABLE, a batch swapped in with one batch update, one RCU grace
// period per batch). A changed table is rewritten where it is (MaglevTables): only the slots
// that change, each one aligned 4-byte store. A packet reads one slot, so it picks the old
// table's backend or the new one's, and the backends of both are valid until step 4; no grace
// period is waited for (it cost 10-16 ms per change here). A packet that read its slot before
// the rewrite and looks its backend up only after step 4 has invalidated it (nanoseconds
// against the tens of microseconds between the two writes) drops with XLB_DROP_NO_BACKEND;
// the client's retransmission takes the new slot.
// The service as a whole is not switched atomically: a packet between steps 2 and 3 may see
// the new table with the old backend_count, which only matters when it goes to or from 0, and
// both states are consistent by themselves (every slot names a valid backend).
//
// Failure. Sync() stops at the first failed write and returns it with the counts so far; the
// mirror holds only what was written, so the next Sync() (of the same or a newer state)
// retries exactly the rest. A failed new table leaves the previous state in force; a rewrite
// that failed part way (batch updates, an older pinned template) leaves each slot naming its
// old or its new backend, all still valid since step 4 has not run, and the next sync writes
// the table again (its recipe is forgotten).
#ifndef XLB_USERSPACE_SYNC_SYNCER_H
#define XLB_USERSPACE_SYNC_SYNCER_H

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "userspace/model/model.h"
#include "userspace/policy/weights.h"
#include "userspace/sync/desired_state.h"
#include "userspace/sync/desired_state_tracker.h"
#include "userspace/sync/map_store.h"
#include "util/result.h"

namespace xlb {

struct SyncResult {
  WriteCounts writes;  // writes that succeeded, by kind
  std::chrono::nanoseconds duration{0};
  std::optional<Error> error;  // the write that failed; the sync stopped there

  bool ok() const { return !error.has_value(); }
};

class Syncer {
 public:
  // `store` must outlive the syncer.
  explicit Syncer(MapStore& store) : store_(store) {}
  // The tracked state refers to held_: a syncer stays where it was made.
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  // Reads everything the store holds and takes it as the starting point. Needed once before
  // the first Plan()/Sync(), also on an empty store.
  Result<void> Adopt();
  bool adopted() const { return adopted_; }

  // BuildDesiredState() over what the store holds (and the last state synced, if that failed),
  // with the store's limits: the ids of what the store holds are kept.
  Result<DesiredState> Plan(const Model& model, std::span<const ServiceBackends> plans) const;

  // `desired` must come from this syncer's Plan(), so its ids agree with the store.
  // Diffs the whole state; drops the tracked state (below), whose ids it may have moved.
  SyncResult Sync(const DesiredState& desired);

  // Incremental planning and sync, for an agent that keeps running: the desired state stays
  // in the syncer (DesiredStateTracker) and is re-planned service by service, and a sync
  // looks only at the entries the updates since the last successful sync touched (plus, the
  // first time, everything the maps held).
  //   PlanChanges(model, services, plan_of) re-plans `services` (with plan_of(name), the
  //   plans of one service of `model`; none for a service gone from it); the first call after
  //   Adopt(), after Sync() or after a failed PlanChanges() must name every service of the
  //   model (tracking() is false then).
  //   SyncChanges() writes what those updates changed; a failure is retried by the next
  //   SyncChanges(), also after more PlanChanges().
  bool tracking() const { return tracker_.has_value(); }
  Result<void> PlanChanges(const Model& model, const std::set<NamespacedName>& services,
                           const ServicePlanner& plan_of);
  // PlanNodes(model) re-reads the model's node addresses (tunnel peers besides the nodes of
  //   endpoints) when they changed (ModelChanges::nodes); PlanChanges() reads them when it
  //   starts tracking. Nothing when not tracking.
  void PlanNodes(const Model& model);
  SyncResult SyncChanges();
  // The tracked desired state (nullptr when not tracking).
  const DesiredStateTracker* tracked() const { return tracker_ ? &*tracker_ : nullptr; }
  // Entries touched and not synced yet (what the next SyncChanges() looks at).
  const TouchedEntries& unsynced() const { return unsynced_; }

  // What the store holds, as far as this syncer knows.
  const MapContents& held() const { return held_; }
  // Tables built by Sync() so far (each built table is one ~1 ms Maglev fill at 16381 slots).
  uint64_t tables_built() const { return tables_built_; }
  // Slots per batch of tables (default kTableBatchBytes): tests make several batches of small
  // tables with a smaller one.
  void set_table_batch_bytes(size_t bytes) { table_batch_bytes_ = bytes; }

 private:
  Result<void> SyncSteps(const DesiredMaps& want, const TouchedEntries& touched,
                         WriteCounts& writes);
  // Step 2: the new and changed tables.
  Result<void> SyncTables(const DesiredMaps& want, const TouchedEntries& touched,
                          WriteCounts& writes);
  // Builds `recipes` into `out` and their digests into `digests`, on two threads when there
  // are several.
  Result<void> BuildTables(std::span<const TableRecipe* const> recipes, std::span<MaglevSlots> out,
                           std::span<TableDigest> digests);

  MapStore& store_;
  MapContents held_;
  // Service id -> fingerprint of the recipe its installed table was built from.
  std::map<uint32_t, uint64_t> recipe_of_;
  // The last desired state when its sync failed: its ids may be partly written, so the next
  // plan must not hand them to anything else. After a successful sync held_ has them all.
  std::optional<DesiredMaps> pending_;
  bool adopted_ = false;
  // Tables built and not yet installed, two batches (one being built, one being installed) of
  // 16 MB of slots each (256 tables of 16381 slots, 4096 of 1021; freed after a sync that
  // needed more than a few): a batch swaps its new tables in with one grace period (~15 ms)
  // instead of one per table. 32 MB a batch gained nothing at 16381 slots and peaked at
  // 310 MB in xlb-sync-bench.
  static constexpr size_t kTableBatchBytes = 16 << 20;
  static constexpr size_t kMaxTableBatch = 4096;
  size_t table_batch_bytes_ = kTableBatchBytes;
  std::vector<MaglevSlots> buffers_;
  uint64_t tables_built_ = 0;
  std::optional<DesiredStateTracker> tracker_;
  TouchedEntries unsynced_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_SYNCER_H
