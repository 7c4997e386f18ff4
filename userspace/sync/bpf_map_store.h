// MapStore over the maps of a loaded XdpDatapath: the real thing, as root.
#ifndef XLB_USERSPACE_SYNC_BPF_MAP_STORE_H
#define XLB_USERSPACE_SYNC_BPF_MAP_STORE_H

#include <optional>

#include "loader/xdp_loader.h"
#include "userspace/sync/map_store.h"

namespace xlb {

class BpfMapStore : public MapStore {
 public:
  // `datapath` must outlive the store.
  explicit BpfMapStore(XdpDatapath& datapath) : dp_(datapath) {}

  StoreLimits limits() const override;
  Result<void> PutBackend(uint32_t id, const xlb_backend& backend) override;
  Result<void> PutBackends(std::span<const BackendWrite> backends, size_t& written) override;
  Result<void> InstallTable(uint32_t service_id, std::span<const uint32_t> slots) override;
  // MaglevTables::InstallMany: a service's installed table rewritten in place (no grace
  // period); new tables filled through a mapping of each, swapped in with one batch update of
  // the outer map (one RCU grace period per batch, not per table).
  Result<void> InstallTables(std::span<const TableWrite> tables, size_t& installed) override;
  Result<void> RemoveTable(uint32_t service_id) override;
  Result<void> PutService(const xlb_service_key& key, const xlb_service& service) override;
  Result<void> EraseService(const xlb_service_key& key) override;
  Result<void> PutVipFilterWord(uint32_t word, uint64_t bits) override;
  Result<void> PutPeer(const xlb_peer_key& key, const xlb_peer& peer) override;
  Result<void> ErasePeer(const xlb_peer_key& key) override;
  Result<void> PutAffinityMatch(const xlb_affinity_match_key& key) override;
  Result<void> EraseAffinityMatch(const xlb_affinity_match_key& key) override;
  Result<void> PutSourceRange(const xlb_src_range_key& key) override;
  Result<void> EraseSourceRange(const xlb_src_range_key& key) override;
  // One lookup per backend id, service id (each table read, digested and dropped) and filter
  // word (the ARRAY maps have no "present" notion: an all-zero backend or word counts as
  // never written), plus the services and peers hashes.
  Result<MapContents> ReadAll() const override;

 private:
  // The digest of an installed table; nullopt when the service has none.
  Result<std::optional<TableDigest>> ReadTableDigest(uint32_t service_id) const;

  XdpDatapath& dp_;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_BPF_MAP_STORE_H
