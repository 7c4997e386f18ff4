// What the datapath's maps should hold for a model and its weight policies, with service and
// backend ids that stay the same for the same things across syncs and agent restarts
// (id_allocator.h). The rules that make it are in desired_state_tracker.h.
//
// One table per (service, port, protocol, family, frontend scope): that is what PlanBackends()
// plans, and a table holds backends of one family; a service whose two traffic policies
// differ has an internal and an external table (weights.h, FrontendScope). Its service id is shared
// by every VIP key of the port (ClusterIP, ClusterSet IP, external and LoadBalancer IPs of that
// family) and every NodePort key of it ((node address, nodePort, protocol) for each address of the
// model's local node of that family; a key that is already another service's VIP or NodePort is a
// problem). A backend is one (cluster, address, port): two services that reach the same pod port
// share its entry.
#ifndef XLB_USERSPACE_SYNC_DESIRED_STATE_H
#define XLB_USERSPACE_SYNC_DESIRED_STATE_H

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"
#include "userspace/model/model.h"
#include "userspace/planner/maglev.h"
#include "userspace/policy/weights.h"
#include "userspace/sync/map_store.h"
#include "util/result.h"

namespace xlb {

// What stays the same while an endpoint lives, and can be read back from its xlb_backend.
struct BackendIdentity {
  uint16_t cluster_id = 0;
  uint8_t family = 0;
  std::array<uint32_t, 4> addr{};  // network order words, as in xlb_backend
  uint16_t port = 0;               // network order

  static BackendIdentity Of(const xlb_backend& backend);
  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads the defaulted <=>.
  auto operator<=>(const BackendIdentity&) const = default;
};

// What a service's Maglev table is built from. A table depends on its members and size alone
// (planner/maglev.h), so the desired state carries this (~1 KB for 30 backends) instead of
// the table (64 KB at 16381 slots), and the syncer builds a table only when its recipe differs
// from the one the installed table was built from: one build per changed service, then the
// slots are installed and dropped.
struct TableRecipe {
  std::vector<MaglevBackend> members;  // weight 0 included (no slot)
  uint32_t size = 0;                   // slots, prime
  uint64_t fingerprint = 0;            // of size and members in canonical order

  // Sets the fingerprint from members and size.
  void Seal();
  // Builds the table into `slots` (size() == size).
  Result<void> Build(std::span<uint32_t> slots) const;
  Result<MaglevSlots> Build() const;
  bool operator==(const TableRecipe& other) const;
};

// The maps a state asks for: MapContents with recipes where the store holds tables.
struct DesiredMaps {
  std::map<xlb_service_key, xlb_service, AbiLess> services;
  std::map<uint32_t, xlb_backend> backends;  // every one XLB_BE_F_VALID
  std::map<uint32_t, TableRecipe> tables;    // by service id
  std::map<uint32_t, uint64_t> vip_filter;   // non-zero words only
  // Tunnel peers: the node of every endpoint the model knows, in any cluster.
  std::map<xlb_peer_key, xlb_peer, AbiLess> peers;
  std::set<xlb_affinity_match_key, AbiLess> affinity_match;  // as MapContents
  std::set<xlb_src_range_key, AbiLess> source_ranges;        // as MapContents

  bool operator==(const DesiredMaps& other) const;
  // What the store holds once this is synced. Builds every table: for tests and tools, never
  // on the sync path.
  Result<MapContents> Contents() const;
};

// One service port and family: one service id, one table.
struct DesiredService {
  uint32_t id = 0;
  NamespacedName service;
  ServicePort port;
  IpFamily family = IpFamily::kIPv4;
  std::vector<xlb_service_key> keys;          // its VIPs, then its NodePort keys
  std::vector<uint32_t> backend_ids;          // every backend of the plan, weight 0 included
  FrontendScope scope = FrontendScope::kAll;  // which of the service's frontends the keys are
  // Its entries of the maps keyed by service id (ClientIP affinity, loadBalancerSourceRanges).
  std::vector<xlb_affinity_match_key> affinity_match;
  std::vector<xlb_src_range_key> source_ranges;

  // "production/api-service 8080/TCP IPv4", "... IPv4 external" for a scope of its own.
  std::string Name() const;
};

struct DesiredState {
  DesiredMaps maps;
  std::vector<DesiredService> services;
  // What the model asked for that cannot be had (an SCTP port, a VIP two services claim); the
  // rest of the state is still complete.
  std::vector<std::string> problems;

  // The table of the port and family; of a service with two scopes, the internal one.
  const DesiredService* Find(const NamespacedName& service, uint16_t port,
                             IpFamily family = IpFamily::kIPv4) const;
  const DesiredService* Find(const NamespacedName& service, uint16_t port, IpFamily family,
                             FrontendScope scope) const;
};

// The services-map key of (address, protocol, port): a VIP's or a NodePort's frontend.
xlb_service_key ServiceKeyOf(const IpAddress& address, Protocol protocol, uint16_t port);

// The VIP filter words of a set of service keys (xlb_vip_filter_pos of every address).
std::map<uint32_t, uint64_t> VipFilterWords(
    const std::map<xlb_service_key, xlb_service, AbiLess>& services);

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_DESIRED_STATE_H
