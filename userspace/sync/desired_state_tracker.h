// The desired state of the maps, kept between syncs and re-planned service by service, so that
// one endpoint change costs the plan of one service and a diff of the few entries it touched,
// not a rebuild of the whole state (300,000 backends at 10,000 services). It is the only place
// the rules below live: a whole state at once (BuildDesiredState) is a fresh tracker with every
// service changed.
//   - VIP and NodePort keys: a key two services want goes to the first in plan order (name,
//     port, family), VIPs before NodePorts. Who wins a key depends only on the services that
//     want it, so an update re-plans the changed services together with every service that
//     wants (or wanted) a key one of them wants (or wanted), transitively: outside that group no
//     claim can move.
//   - Backends by identity, shared by every service that lists them; an entry is dropped from
//     the state when nothing lists it any more. When two services reach one backend
//     differently (a problem), the way first planned stays until nothing lists it.
//   - Ids from an IdAllocator (id_allocator.h): what the maps (the syncer's mirror) hold keeps
//     its id, a returning backend takes its own old id back, a new thing takes the lowest free
//     id, and an id that an update releases is free only after a sync of that update succeeded
//     (Commit()).
//   - VIP filter words from a count per bit, so removing a VIP clears its bit only when no
//     other VIP of the same word and bit remains.
// Every entry an update adds, changes or drops is named in the TouchedEntries it returns: the
// syncer diffs exactly those against its mirror.
#ifndef XLB_USERSPACE_SYNC_DESIRED_STATE_TRACKER_H
#define XLB_USERSPACE_SYNC_DESIRED_STATE_TRACKER_H

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "userspace/model/model.h"
#include "userspace/policy/routes.h"
#include "userspace/policy/weights.h"
#include "userspace/sync/desired_state.h"
#include "userspace/sync/id_allocator.h"
#include "userspace/sync/map_store.h"
#include "util/result.h"

namespace xlb {

// A set of ids as a bitset that grows as needed: O(1) insert, iteration in ascending order
// (what a std::set<uint32_t> of the same ids would give) at one bit per id up to the largest.
class IdSet {
 public:
  class Iterator {
   public:
    using value_type = uint32_t;
    Iterator(const std::vector<uint64_t>* words, size_t pos) : words_(words), pos_(pos) {
      Settle();
    }
    uint32_t operator*() const { return static_cast<uint32_t>(pos_); }
    Iterator& operator++() {
      ++pos_;
      Settle();
      return *this;
    }
    bool operator==(const Iterator& o) const { return pos_ == o.pos_; }

   private:
    void Settle();  // forward to the next set bit, or the end
    const std::vector<uint64_t>* words_;
    size_t pos_;
  };

  void insert(uint32_t id);
  bool contains(uint32_t id) const;
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  void Merge(const IdSet& other);
  Iterator begin() const { return Iterator(&words_, 0); }
  Iterator end() const { return Iterator(&words_, words_.size() * 64); }

 private:
  std::vector<uint64_t> words_;
  size_t count_ = 0;
};

// Map entries a sync has to look at: added, changed or dropped by the desired state.
struct TouchedEntries {
  IdSet backends;  // backend ids
  IdSet tables;    // service ids
  std::set<xlb_service_key, AbiLess> services;
  IdSet vip_words;
  std::set<xlb_peer_key, AbiLess> peers;
  std::set<xlb_affinity_match_key, AbiLess> affinity_match;
  std::set<xlb_src_range_key, AbiLess> source_ranges;

  bool empty() const;
  void Merge(const TouchedEntries& other);
  // Every entry `contents` holds (a first sync must also remove what nothing wants any more).
  void AddAll(const MapContents& contents);
  void AddAll(const DesiredMaps& maps);
};

// PlanBackends() of one service: each port, each family, routed by `routes` or the default
// route. Equal to the part of PlanBackends(model, routes) about `service`.
std::vector<ServiceBackends> PlanService(const Model& model, const Service& service,
                                         const Routes& routes);

// The plans of one service of the model (PlanServicePort of each port and family); none when
// the model has no such service. Update() asks once per service, from up to two threads at
// once (a long list is planned by two): a planner that keeps state of its own locks it.
using ServicePlanner = std::function<std::vector<ServiceBackends>(const NamespacedName&)>;

class DesiredStateTracker {
 public:
  // `held` is the syncer's mirror of the maps; it must outlive the tracker. `pending`: see
  // IdAllocator. The state starts empty: the first Update() names every service of the model.
  DesiredStateTracker(const MapContents& held, StoreLimits limits,
                      const DesiredMaps* pending = nullptr);

  // Re-plans `services` (and the services whose key claims depend on theirs) with `plan_of`,
  // asked once per service, replacing what they contributed. Errors: a maglev_size that is not
  // prime (EINVAL), plans that are not PlanService()'s (EINVAL), ids exhausted (ENOSPC); the
  // state is then inconsistent and the tracker must be dropped.
  Result<TouchedEntries> Update(const Model& model, const std::set<NamespacedName>& services,
                                const ServicePlanner& plan_of);
  // Re-reads the model's node addresses (Model::node_addresses), tunnel peers whether or not
  // an endpoint names them, replacing what the last call contributed.
  TouchedEntries UpdateNodePeers(const Model& model);
  // The last update's entries are in the maps: ids released since the last Commit() are free.
  void Commit() { ids_.Commit(); }

  const DesiredMaps& maps() const { return maps_; }
  // The whole state, tables in name, port and family order; the tracker is spent.
  DesiredState TakeState() &&;
  // Service tables (one per port and family) of a service, in plan order.
  const std::vector<DesiredService>* TablesOf(const NamespacedName& service) const;
  const DesiredService* Find(const NamespacedName& service, uint16_t port,
                             IpFamily family = IpFamily::kIPv4) const;
  // The service and its DesiredService that own a table, or nullptr.
  const DesiredService* FindById(uint32_t service_id) const;
  size_t table_count() const { return maps_.tables.size(); }
  // What the inputs ask for that cannot be had, by service name.
  std::vector<std::string> Problems() const;
  // Services re-planned by the last Update() (the changed ones and their key group).
  const std::set<NamespacedName>& last_group() const { return last_group_; }
  // Every service the state has a record of, in name order.
  std::vector<NamespacedName> Services() const;
  // Changes whenever Problems() may have changed.
  uint64_t problems_version() const { return problems_version_; }

 private:
  struct Tracked {
    std::vector<DesiredService> tables;
    std::vector<xlb_service_key> wanted;  // every key it asked for, won or not
    std::vector<std::string> problems;
  };
  // The services an update re-plans, with their new records.
  using Group = std::map<NamespacedName, Tracked>;
  // What the group had before the update.
  struct Before {
    std::map<NamespacedName, std::vector<std::string>> problems;
    ServiceIdOfKey ids;  // the service id of each key of its tables
  };
  // One table of the group (a port in one family), filled in step by step.
  struct Claim;

  // The steps of Update(), in order.
  // 1. The changed services and, transitively, every service that wants or wanted a key one of
  // them wants or wanted, each with the keys it wants (from the model alone).
  Group GroupOf(const Model& model, const std::set<NamespacedName>& changed) const;
  // 2. Removes what the group contributed.
  Before DropGroup(const Group& group, TouchedEntries& touched);
  // 3. The group's tables with the keys each wins, in plan order, VIPs first, then NodePorts;
  // what cannot be had is a problem of the service's record.
  static std::vector<Claim> ClaimKeys(const Model& model, Group& group);
  // 4. Each table's backends, from its service's plans (two planners for a long list).
  static Result<void> ReadPlans(const ServicePlanner& plan_of, std::vector<Claim>& claims);
  // 5. Backend ids: returning backends take their own first, then new ones the lowest free.
  Result<void> AssignBackendIds(std::vector<Claim>& claims);
  // 6. Service ids: the id one of its keys had (`before`, else pending or the maps) if no other
  // table uses it, else the lowest free.
  Result<void> AssignServiceIds(std::vector<Claim>& claims, const ServiceIdOfKey& before);
  // 7. Backends, tables, service entries and VIP filter bits into the maps. The first table (in
  // plan order, or outside the group) that lists a backend says how it is reached.
  void Emit(const Model& model, std::vector<Claim>& claims, Group& group, TouchedEntries& touched);
  // 8. The group's records replace the old ones.
  void Record(const Model& model, Group& group, const Before& before);

  // 9. The tunnel peers: the node addresses of the group's endpoints, counted per address
  // over every service, so an address leaves the state when no endpoint names it any more.
  void TrackPeers(const Model& model, const Group& group, TouchedEntries& touched);
  // One owner's peers (a service's, or the nodes') become `now`; `was` is what it had.
  using PeerSet = std::map<xlb_peer_key, xlb_peer, AbiLess>;
  void Repeer(std::vector<xlb_peer_key>& was, const PeerSet& now, TouchedEntries& touched);

  void Drop(const NamespacedName& name, TouchedEntries& touched);
  void CountVip(const xlb_service_key& key, int delta, TouchedEntries& touched);

  uint32_t maglev_size_;
  IdAllocator ids_;
  DesiredMaps maps_;
  std::map<NamespacedName, Tracked> services_;
  std::map<uint32_t, const DesiredService*> by_id_;  // table id -> its DesiredService
  std::map<xlb_service_key, std::set<NamespacedName>, AbiLess> wanters_;
  std::vector<std::array<uint32_t, 64>> vip_bits_;  // VIP keys per filter word and bit
  std::map<NamespacedName, std::vector<xlb_peer_key>> peers_of_;  // each address once
  std::vector<xlb_peer_key> node_peers_;                          // UpdateNodePeers()'
  std::map<xlb_peer_key, uint32_t, AbiLess> peer_refs_;  // services (and the nodes) naming it
  std::set<NamespacedName> last_group_;
  uint64_t problems_version_ = 0;
};

// The whole desired state at once: a fresh tracker over `held` and `pending` with every service
// `plans` names changed. `plans`: PlanBackends() or PolicyStore::Plan() of `model` (every port
// and family of each service it names); a plan of a service the model lacks is a problem.
// Errors: those of Update().
Result<DesiredState> BuildDesiredState(const Model& model, std::span<const ServiceBackends> plans,
                                       const MapContents& held, const DesiredMaps* pending,
                                       StoreLimits limits);

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_DESIRED_STATE_TRACKER_H
