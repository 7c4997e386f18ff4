// The agent's loop body, without the kernel: the config file and the policies in, a Sync() of
// the maps out. Behind MapStore, so it is tested with FakeMapStore and no root.
//
//   Reconciler r({.config = "xlb.yaml", .policy = "policies/"}, log);
//   r.Start();        // reads both sources; an error here ends the agent (see below)
//   r.Adopt(store);   // what the (pinned) maps hold is the starting point
//   for (;;) { r.Poll(); sleep(200ms); }
//
// Change detection is a fingerprint of what stat() says (inode, size, mtime, ctime) of the
// config file and of the policy file or of every file of the policy directory, taken before
// the files are read: a file written again while it is being read has a new fingerprint and
// is read again at the next Poll(). Editors that write in place and tools that rename a new
// file over the old one (and ConfigMap volumes, which swap a symlink) are all seen.
//
// Planning is incremental (Syncer::PlanChanges): a sync re-plans only the services whose
// inputs changed since the last plan, and writes only the entries they touched:
//   - the config file replaces the whole model, so what changed is found by comparing the old
//     and the new model service by service (DiffModels; a cluster or the node: everything);
//   - a source that edits the model in place (model(), then Poll() or SyncNow()) is seen
//     through the model's own record of what its mutators touched (Model::TakeChanges);
//   - a new policy set re-plans the service ports whose route changed (old and new routes
//     compared port by port);
//   - a service whose route takes endpoints of another service (a VirtualService destination
//     naming another host) is re-planned with that service.
// The first sync after Adopt() plans everything (and, after a restart, writes nothing).
//
// Bad input after start-up is logged (file, document, field, line: the sources' messages)
// and changes nothing: the model and the policy set last accepted stay in force, and the
// maps are not touched. At start-up there is no last good state of our own, only what the
// previous agent left in the pinned maps, so Start() fails instead of guessing: the datapath
// keeps running on the previous agent's state until the input is fixed.
#ifndef XLB_USERSPACE_AGENT_RECONCILER_H
#define XLB_USERSPACE_AGENT_RECONCILER_H

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "loader/log.h"
#include "userspace/agent/metrics.h"
#include "userspace/model/config_error.h"
#include "userspace/model/model.h"
#include "userspace/policy/policy_store.h"
#include "userspace/sync/map_store.h"
#include "userspace/sync/syncer.h"
#include "util/result.h"

namespace xlb {

struct SourcePaths {
  // The embedded YAML source; "" when a source edits model() in place instead (--kube).
  std::string config;
  std::string policy;  // a policy file or directory; "" = no policies (default weights)
};

// A change-detection token of a file, or of a directory's regular files; "" for no path.
std::string Fingerprint(const std::string& path);

class Reconciler {
 public:
  using LogFn = std::function<void(LogLevel, const std::string&)>;

  Reconciler(SourcePaths paths, LogFn log);

  // --node-addr: when not empty, these replace the config's node addresses (the NodePort
  // frontends) in every model read from now on. Call before Start().
  void SetNodeAddresses(std::vector<IpAddress> addresses) { node_addrs_ = std::move(addresses); }
  // --node-name: when not empty, replaces the config's node name. Call before Start().
  void SetNodeName(std::string name) { node_name_ = std::move(name); }

  // Reads the config and the policies. Errors: every problem found.
  ConfigResult<void> Start();
  // Syncer::Adopt() of `store`, which must outlive the reconciler: the maps' contents are the
  // starting point of the first diff. Needed once before Poll() syncs anything; Start()
  // comes first, so bad input is found before the datapath is even loaded.
  Result<void> Adopt(MapStore& store);

  // Re-reads what changed; plans and syncs when the accepted inputs changed since the last
  // sync, or the last sync failed (the syncer then retries exactly what is missing).
  // Returns the sync it ran, if any.
  std::optional<SyncResult> Poll();
  // Plans and syncs what the model's mutators changed since the last plan (a source that
  // edits model() in place calls this), without re-reading any file. nullopt when nothing
  // changed or nothing is adopted yet.
  std::optional<SyncResult> SyncNow();

  // The model in force. A source may edit it in place through its mutators (PutService,
  // SetEndpoints, AddEndpoint, RemoveService, ...), which record what they touched; a
  // config file reload replaces it whole.
  Model& model() { return model_; }
  const Model& model() const { return model_; }

  uint64_t syncs() const { return syncs_; }  // syncs run so far
  uint64_t config_rejected() const { return config_rejected_; }
  uint64_t policy_rejected() const { return store_.rejected(); }
  // Changed files re-read and accepted after Start() (the metrics' reload successes).
  uint64_t config_reloaded() const { return config_reloaded_; }
  uint64_t policy_reloaded() const { return policy_reloaded_; }
  // Names of the ids of the last state planned (metrics labels), and its size.
  const IdNames& names() const { return names_; }
  // Bumped whenever names() changes: a copy for the metrics is only needed then.
  uint64_t names_version() const { return names_version_; }
  // What the last plan could not have (policy problems, an SCTP port, a VIP two services
  // claim): each one is logged once when the set changes; this is how many there are now.
  uint64_t plan_problems() const { return plan_problems_; }
  uint64_t planned_backends() const { return planned_backends_; }
  uint64_t planned_tables() const { return planned_tables_; }
  const Syncer* syncer() const { return syncer_ ? &*syncer_ : nullptr; }

 private:
  ConfigResult<void> StartWithoutConfig();  // Start() with paths_.config == "" (--kube)
  bool ReadConfig();                        // true when a new model was accepted
  bool ReadPolicies();                      // true when a new policy set was accepted
  // Applies node_addrs_ and node_name_ to model_; notes (once) nodePorts without node
  // addresses.
  void AdoptNodeIdentity();
  SyncResult RunSync();
  // The services the next plan must re-plan (model changes, route changes, dependents).
  std::set<NamespacedName> ChangedServices(const Routes& routes) const;
  // The planner of RunSync: two may run at once (ServicePlanner), so the route bookkeeping
  // is under routes_mu_; PlanService itself only reads model_ and `routes`.
  std::vector<ServiceBackends> PlanOne(const NamespacedName& name, const Routes& routes);
  // route_sources_ and route_dependents_ for `name` (`service`, null when gone) under `routes`.
  void TrackRouteSources(const NamespacedName& name, const Service* service, const Routes& routes);
  void NameIds(const TouchedEntries& touched);

  std::optional<Syncer> syncer_;
  SourcePaths paths_;
  LogFn log_;
  Model model_;
  PolicyStore store_;
  std::string config_seen_;  // fingerprints of what was last read
  std::string policy_seen_;
  bool policy_pending_ = false;         // the last set offered was rejected
  size_t policy_offered_services_ = 0;  // services in the model when it was offered
  bool dirty_ = true;                   // accepted inputs not synced yet (or the last sync failed)
  ModelChanges changes_;                // accepted model changes not planned yet
  bool policy_changed_ = false;         // a new policy set not planned yet
  Routes routes_;                       // the routes of the last plan
  // Routes that take endpoints of another service: service -> the services routed to it,
  // and back. Written by PlanOne under routes_mu_.
  std::mutex routes_mu_;
  std::map<NamespacedName, std::set<NamespacedName>> route_dependents_;
  std::map<NamespacedName, std::set<NamespacedName>> route_sources_;
  uint64_t problems_version_ = ~uint64_t{0};
  std::string policy_problems_;
  uint64_t syncs_ = 0;
  uint64_t config_rejected_ = 0;
  uint64_t config_reloaded_ = 0;
  uint64_t policy_reloaded_ = 0;
  IdNames names_;
  uint64_t names_version_ = 0;
  uint64_t plan_problems_ = 0;
  uint64_t planned_backends_ = 0;
  uint64_t planned_tables_ = 0;
  std::string last_problems_;          // logged once, not at every sync
  std::vector<IpAddress> node_addrs_;  // SetNodeAddresses()
  std::string node_name_;              // SetNodeName()
  bool node_ports_noted_ = false;      // "nodePorts but no node address" was logged
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_RECONCILER_H
