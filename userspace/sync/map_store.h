// What the syncer needs of the datapath's maps, behind an interface: BpfMapStore writes the
// real maps of a loaded XdpDatapath (root), FakeMapStore keeps them in memory and counts every
// write (unit tests, no root). Both report kernel-facing errors as Result, never by throwing.
#ifndef XLB_USERSPACE_SYNC_MAP_STORE_H
#define XLB_USERSPACE_SYNC_MAP_STORE_H

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"
#include "util/result.h"

namespace xlb {

// The ABI structs have no padding (xlb_abi.h asserts their sizes), so bytes order and compare
// them.
struct AbiLess {
  template <typename T>
  bool operator()(const T& a, const T& b) const {
    return std::memcmp(&a, &b, sizeof(T)) < 0;
  }
};
template <typename T>
bool AbiEqual(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

using MaglevSlots = std::vector<uint32_t>;  // maglev_size backend ids

// A Maglev table as the syncer remembers it: a digest of its slots, not the slots. A table of
// 16381 slots is 64 KB, so ten thousand services held in full would cost 650 MB for every
// copy (the mirror, the adopted contents, the desired state); digests cost 16 bytes each.
// The hash is 64 bits over the slot values in order: two different tables compare equal with
// probability 2^-64, and then the syncer would skip one table write.
struct TableDigest {
  uint64_t hash = 0;
  uint32_t size = 0;  // slots

  static TableDigest Of(std::span<const uint32_t> slots);
  bool operator==(const TableDigest&) const = default;
};

// The contents of the maps the syncer owns, as the store holds them (tables by digest).
struct MapContents {
  std::map<xlb_service_key, xlb_service, AbiLess> services;
  // Entries that were ever written (a non-zero value); an ARRAY cannot erase, so a removed
  // backend stays here with XLB_BE_F_VALID cleared until its id is reused.
  std::map<uint32_t, xlb_backend> backends;
  std::map<uint32_t, TableDigest> tables;           // by service id
  std::map<uint32_t, uint64_t> vip_filter;          // non-zero words only
  std::map<xlb_peer_key, xlb_peer, AbiLess> peers;  // tunnel peers (xlb_peers_v1)
  // (service id, backend id) of the backends that take new flows of a ClientIP-affine
  // service (xlb_affmatch_v1).
  std::set<xlb_affinity_match_key, AbiLess> affinity_match;
  // loadBalancerSourceRanges by service id (xlb_srcrange_v1); keys in canonical form (the
  // address's bits beyond the prefix zero).
  std::set<xlb_src_range_key, AbiLess> source_ranges;

  bool operator==(const MapContents& other) const;
};

// The writes a sync makes, by kind.
enum class WriteKind : uint8_t {
  kBackend,               // xlb_backends_v1 entry written (new, changed or invalidated)
  kTable,                 // Maglev table written (rewritten in place, or new + outer swap)
  kTableRemoval,          // Maglev table removed
  kService,               // xlb_services_v1 entry written
  kServiceRemoval,        // xlb_services_v1 entry erased
  kVipFilterWord,         // xlb_vipfilt_v1 word written
  kPeer,                  // xlb_peers_v1 entry written
  kPeerRemoval,           // xlb_peers_v1 entry erased
  kAffinityMatch,         // xlb_affmatch_v1 entry written
  kAffinityMatchRemoval,  // xlb_affmatch_v1 entry erased
  kSourceRange,           // xlb_srcrange_v1 entry written
  kSourceRangeRemoval,    // xlb_srcrange_v1 entry erased
};
inline constexpr size_t kWriteKinds = 12;
const char* ToString(WriteKind kind);

struct WriteCounts {
  std::array<uint64_t, kWriteKinds> by_kind{};

  uint64_t& operator[](WriteKind k) { return by_kind[static_cast<size_t>(k)]; }
  uint64_t operator[](WriteKind k) const { return by_kind[static_cast<size_t>(k)]; }
  uint64_t total() const;
  // "backend=2 table=1 ..." (kinds with zero writes left out; "none" when all are zero).
  std::string ToString() const;
  bool operator==(const WriteCounts&) const = default;
};

struct StoreLimits {
  uint32_t maglev_size = XLB_MAGLEV_DEFAULT_SIZE;
  uint32_t max_services = XLB_MAX_SERVICES;  // service ids 1..max_services-1
  uint32_t max_backends = XLB_MAX_BACKENDS;  // backend ids 1..max_backends-1
};

class MapStore {
 public:
  virtual ~MapStore() = default;

  virtual StoreLimits limits() const = 0;

  virtual Result<void> PutBackend(uint32_t id, const xlb_backend& backend) = 0;
  // Several backends, each written as PutBackend does; `written` says how many of the first
  // ones are in (all of them when it succeeds). BpfMapStore writes them with batch updates
  // (a full sync writes 300,000 at 10,000 services); this default one by one.
  struct BackendWrite {
    uint32_t id;
    xlb_backend backend;
  };
  virtual Result<void> PutBackends(std::span<const BackendWrite> backends, size_t& written);
  // The service's table set to `slots`; a reader of any one slot sees its old or its new
  // backend (BpfMapStore: rewritten in place, or a new table swapped in).
  virtual Result<void> InstallTable(uint32_t service_id, std::span<const uint32_t> slots) = 0;
  // Several tables, each written as InstallTable does; `installed` says how many of the
  // first ones are in (all of them when it succeeds). The kernel waits for an RCU grace
  // period after every update of the outer map (~15 ms on the CI machine), so BpfMapStore
  // swaps a whole batch of new tables in with one update; this default installs them one by
  // one.
  struct TableWrite {
    uint32_t service_id;
    std::span<const uint32_t> slots;
  };
  virtual Result<void> InstallTables(std::span<const TableWrite> tables, size_t& installed);
  virtual Result<void> RemoveTable(uint32_t service_id) = 0;  // absent is fine
  virtual Result<void> PutService(const xlb_service_key& key, const xlb_service& service) = 0;
  virtual Result<void> EraseService(const xlb_service_key& key) = 0;  // absent is fine
  virtual Result<void> PutVipFilterWord(uint32_t word, uint64_t bits) = 0;
  virtual Result<void> PutPeer(const xlb_peer_key& key, const xlb_peer& peer) = 0;
  virtual Result<void> ErasePeer(const xlb_peer_key& key) = 0;  // absent is fine
  virtual Result<void> PutAffinityMatch(const xlb_affinity_match_key& key) = 0;
  virtual Result<void> EraseAffinityMatch(const xlb_affinity_match_key& key) = 0;  // absent: fine
  virtual Result<void> PutSourceRange(const xlb_src_range_key& key) = 0;
  virtual Result<void> EraseSourceRange(const xlb_src_range_key& key) = 0;  // absent is fine

  // Everything the maps hold now (a restarted agent adopts it).
  virtual Result<MapContents> ReadAll() const = 0;
};

// In memory, for tests: counts every write by kind and fails the writes it is told to.
class FakeMapStore : public MapStore {
 public:
  explicit FakeMapStore(StoreLimits limits = {}) : limits_(limits) {}

  StoreLimits limits() const override { return limits_; }
  Result<void> PutBackend(uint32_t id, const xlb_backend& backend) override;
  Result<void> InstallTable(uint32_t service_id, std::span<const uint32_t> slots) override;
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
  Result<MapContents> ReadAll() const override;

  // The (skip + 1)-th write of `kind` from now fails with EIO and changes nothing; the
  // writes after it succeed again.
  void FailWrite(WriteKind kind, uint32_t skip = 0);

  const MapContents& contents() const { return contents_; }
  // The installed tables in full (the fake keeps them; the syncer never needs them).
  const std::map<uint32_t, MaglevSlots>& tables() const { return slots_; }
  const MaglevSlots& table(uint32_t service_id) const { return slots_.at(service_id); }
  const WriteCounts& writes() const { return writes_; }  // successful writes since creation
  void ResetCounts() { writes_ = {}; }

 private:
  Result<void> Write(WriteKind kind, const std::string& what);

  StoreLimits limits_;
  MapContents contents_;
  std::map<uint32_t, MaglevSlots> slots_;
  WriteCounts writes_;
  std::map<WriteKind, uint32_t> fail_after_;  // kind -> writes to let through first
};

}  // namespace xlb

#endif  // XLB_USERSPACE_SYNC_MAP_STORE_H
