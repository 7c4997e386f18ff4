// The syncer: makes the datapath's maps hold a DesiredState, writing only what differs.
//
// Design
//
// What it knows. The syncer keeps a mirror of what the store holds: read back once by
// Adopt() (agent start, and after a restart the pinned maps still hold the last agent's
// state), then updated after every write that succeeded. Sync() diffs the desired state
// against the mirror, so an unchanged model costs no syscall, and the same desired state
// after a restart costs none either: ids are derived from the maps (IdAllocator in
// desired_state.h), tables are deterministic (planner/maglev.h), so the state the new agent
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
//   2. Maglev tables that are new or changed, one atomic swap each (below);
//   3. VIP filter bits of new addresses (a set bit only costs a hash lookup), then the
//      service entries that are new or changed: the first packet to a new VIP finds its
//      table and backends in place;
//   4. removals: service entries, then the VIP filter words recomputed from what remains,
//      then tables nothing points at, then backends nothing selects any more, written with
//      XLB_BE_F_VALID cleared rather than erased (an ARRAY cannot erase; conntrack entries
//      that still name it reselect). A cleared id is not reused by the same sync: only a
//      later one may hand it to another backend (IdAllocator).
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
// Atomic. A table is built in a new inner map and swapped in with one outer-map update, so a
// packet sees the old table or the new one, never a mix (XdpDatapath::InstallMaglevTable;
// BpfMapStore::InstallTables swaps a batch with one batch update, each slot still atomic).
// The service as a whole is not switched atomically: a packet between steps 2 and 3 may see
// the new table with the old backend_count, which only matters when it goes to or from 0, and
// both states are consistent by themselves (every slot names a valid backend).
//
// Failure. Sync() stops at the first failed write and returns it with the counts so far; the
// mirror holds only what was written, so the next Sync() (of the same or a newer state)
// retries exactly the rest. A failed table install leaves the previous table in force, and
// nothing that would point at the new one has been written yet.
#ifndef XLB_USERSPACE_SYNC_SYNCER_H
#define XLB_USERSPACE_SYNC_SYNCER_H

#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "loader/result.h"
#include "userspace/model/model.h"
#include "userspace/policy/weights.h"
#include "userspace/sync/desired_state.h"
#include "userspace/sync/map_store.h"

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

  // Reads everything the store holds and takes it as the starting point. Needed once before
  // the first Plan()/Sync(), also on an empty store.
  Result<void> Adopt();
  bool adopted() const { return adopted_; }

  // The allocator that keeps the ids of what the store holds (and of the last state synced).
  IdAllocator Ids() const;
  // BuildDesiredState() with Ids() and the store's maglev_size.
  Result<DesiredState> Plan(const Model& model, std::span<const ServiceBackends> plans) const;

  // `desired` must come from this syncer's Ids() (Plan()), so its ids agree with the store.
  SyncResult Sync(const DesiredState& desired);

  // What the store holds, as far as this syncer knows.
  const MapContents& held() const { return held_; }
  // Tables built by Sync() so far (each built table is one ~1 ms Maglev fill at 16381 slots).
  uint64_t tables_built() const { return tables_built_; }

 private:
  Result<void> SyncSteps(const DesiredMaps& want, WriteCounts& writes);

  MapStore& store_;
  MapContents held_;
  // Service id -> fingerprint of the recipe its installed table was built from.
  std::map<uint32_t, uint64_t> recipe_of_;
  // The last desired state when its sync failed: its ids may be partly written, so the next
  // plan must not hand them to anything else. After a successful sync held_ has them all.
  std::optional<DesiredMaps> pending_;
  bool adopted_ = false;
  // Tables built and not yet handed to the store: 256 x 64 KB = 16 MB at 16381 slots, and a
  // batch of 256 swaps costs one grace period (~15 ms) instead of 256.
  static constexpr size_t kTableBatch = 256;
  std::vector<MaglevSlots> buffers_;
  uint64_t tables_built_ = 0;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_SYNCER_H
