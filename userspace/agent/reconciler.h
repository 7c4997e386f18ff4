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
// Bad input after start-up is logged (file, document, field, line: the sources' messages)
// and changes nothing: the model and the policy set last accepted stay in force, and the
// maps are not touched. At start-up there is no last good state of our own, only what the
// previous agent left in the pinned maps, so Start() fails instead of guessing: the datapath
// keeps running on the previous agent's state until the input is fixed.
#ifndef XLB_USERSPACE_AGENT_RECONCILER_H
#define XLB_USERSPACE_AGENT_RECONCILER_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "loader/log.h"
#include "loader/result.h"
#include "userspace/agent/metrics.h"
#include "userspace/model/config_error.h"
#include "userspace/model/model.h"
#include "userspace/policy/policy_store.h"
#include "userspace/sync/map_store.h"
#include "userspace/sync/syncer.h"

namespace xlb {

struct SourcePaths {
  std::string config;  // the embedded YAML source
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
  void SetNodeAddresses(std::vector<IpAddress> addresses) {
    node_addrs_ = std::move(addresses);
  }

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

  uint64_t syncs() const { return syncs_; }  // syncs run so far
  uint64_t config_rejected() const { return config_rejected_; }
  uint64_t policy_rejected() const { return store_.rejected(); }
  // Changed files re-read and accepted after Start() (the metrics' reload successes).
  uint64_t config_reloaded() const { return config_reloaded_; }
  uint64_t policy_reloaded() const { return policy_reloaded_; }
  // Names of the ids of the last state planned (metrics labels), and its size.
  const IdNames& names() const { return names_; }
  uint64_t planned_backends() const { return planned_backends_; }
  uint64_t planned_tables() const { return planned_tables_; }
  const Syncer* syncer() const { return syncer_ ? &*syncer_ : nullptr; }

 private:
  bool ReadConfig();    // true when a new model was accepted
  bool ReadPolicies();  // true when a new policy set was accepted
  // Applies node_addrs_ to model_; notes (once) nodePorts without node addresses.
  void AdoptNodeAddresses();
  SyncResult RunSync();
  void NameIds(const DesiredState& desired);

  std::optional<Syncer> syncer_;
  SourcePaths paths_;
  LogFn log_;
  Model model_;
  PolicyStore store_;
  std::string config_seen_;  // fingerprints of what was last read
  std::string policy_seen_;
  bool dirty_ = true;  // accepted inputs not synced yet (or the last sync failed)
  uint64_t syncs_ = 0;
  uint64_t config_rejected_ = 0;
  uint64_t config_reloaded_ = 0;
  uint64_t policy_reloaded_ = 0;
  IdNames names_;
  uint64_t planned_backends_ = 0;
  uint64_t planned_tables_ = 0;
  std::string last_problems_;  // logged once, not at every sync
  std::vector<IpAddress> node_addrs_;  // SetNodeAddresses()
  bool node_ports_noted_ = false;  // "nodePorts but no node address" was logged
};

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_RECONCILER_H
