// Service and backend ids for the desired state: indices the kernel side holds on to
// (conntrack entries name both), so they are kept, not recomputed.
#ifndef XLB_USERSPACE_SYNC_ID_ALLOCATOR_H
#define XLB_USERSPACE_SYNC_ID_ALLOCATOR_H

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "maps/xlb_abi.h"
#include "userspace/sync/desired_state.h"
#include "userspace/sync/map_store.h"
#include "util/result.h"

namespace xlb {

// Ids 1..limit-1, each free or taken; the lowest free one in O(limit / 64) at worst.
class IdPool {
 public:
  explicit IdPool(uint32_t limit);
  bool taken(uint32_t id) const;
  void Take(uint32_t id);
  std::optional<uint32_t> TakeLowest();
  void Free(uint32_t id);

 private:
  std::vector<uint64_t> words_;
  uint32_t limit_;
  uint32_t lowest_maybe_free_ = 1;
};

// The service id each key had: what a table that asks for the key again takes back.
using ServiceIdOfKey = std::map<xlb_service_key, uint32_t, AbiLess>;

// Hands out ids so that what the maps already hold keeps its id:
//   - a backend keeps the id its identity has (in the maps, valid or already invalidated: its
//     own old id is safe to take back; or given by this allocator);
//   - a service table takes the id one of its keys had, if no other table uses it;
//   - a new one gets the lowest id nothing takes: no valid backend, service entry or table in
//     the maps, nothing pending, nothing in use.
// An id that nothing uses any more is released, and free only after Commit(): until a sync has
// written that, it may still be valid in the maps, and a conntrack entry that names it must not
// land on a stranger within one sync.
class IdAllocator {
 public:
  // `held` is the syncer's mirror of the maps and must outlive the allocator; the ids it holds
  // are released at once (free after the first Commit() unless used again). `pending` is the
  // last desired state handed to the store, whose ids may not all be written yet (a failed
  // sync): its ids count as taken, its assignments as known.
  IdAllocator(const MapContents& held, const DesiredMaps* pending, StoreLimits limits);

  // Backend ids count their listings (service tables that list the backend).
  // The id `identity` owns, listed once more; nullopt when it owns none.
  std::optional<uint32_t> ListReturningBackend(const BackendIdentity& identity);
  // Its own id, else the lowest free one, listed once more (ENOSPC when none is free).
  Result<uint32_t> ListBackend(const BackendIdentity& identity);
  // Room for `more` identities besides the known ones, so that a full plan's 300,000 new ones
  // do not grow the index a rehash at a time.
  void ReserveBackends(size_t more) { id_of_identity_.reserve(id_of_identity_.size() + more); }
  // Whether any identity owns an id (none: no backend can be returning).
  bool KnowsBackends() const { return !id_of_identity_.empty(); }
  // One listing fewer; true when that was the last one (the id is released).
  bool UnlistBackend(uint32_t id);

  // The id of the first of `keys` that one had (in `prior`, else pending, else the maps) and
  // that no table uses, now in use; nullopt when there is none.
  std::optional<uint32_t> UseReturningService(std::span<const xlb_service_key> keys,
                                              const ServiceIdOfKey& prior);
  // The lowest free service id, now in use (ENOSPC when none is free).
  Result<uint32_t> UseNewService();
  void ReleaseService(uint32_t id);

  // What the last updates asked for is in the maps: the ids released since the last Commit()
  // that are not used again and no longer in the maps are free.
  void Commit();

 private:
  struct IdentityHash {
    size_t operator()(const BackendIdentity& id) const;
  };

  // Records that `identity` owned `id` in the maps (or pending), `taken` when it is still valid
  // there (or pending). Called in ascending id order.
  void Own(uint32_t id, const BackendIdentity& identity, bool taken);
  bool ServiceInUse(uint32_t id) const;

  const MapContents& held_;
  StoreLimits limits_;
  IdPool backend_pool_;
  IdPool service_pool_;
  std::vector<uint32_t> listings_;  // by backend id
  std::unordered_map<BackendIdentity, uint32_t, IdentityHash> id_of_identity_;
  std::vector<BackendIdentity> identity_of_id_;  // by id; all zero: none (cluster ids are >= 1)
  std::vector<bool> service_in_use_;             // by service id
  ServiceIdOfKey pending_service_of_key_;
  std::vector<uint32_t> released_backends_;  // free once a sync has invalidated them
  std::vector<uint32_t> released_services_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_ID_ALLOCATOR_H
