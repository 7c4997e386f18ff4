// Every service's Maglev table, the one place that knows their shape. xlb_maglev_v3 is an
// ARRAY_OF_MAPS indexed by service id; each table in it is an ARRAY of XLB_MAGLEV_ELEMS(size)
// chunks of XLB_MAGLEV_CHUNK backend ids (u32 keys, struct xlb_maglev_chunk values,
// BPF_F_MMAPABLE: slot s is id[s % XLB_MAGLEV_CHUNK] of element s / XLB_MAGLEV_CHUNK), the
// last word of the last chunk the table's size; the shape of the inner template in
// bpf/lib/maps.h. The kernel compares type, key, value, max_entries and flags when a table is
// put into the outer map, so every table this class creates has exactly that shape.
//
// A service's first table is created and filled beside the outer map (batch updates of its
// elements), then put in with one update of it. Later tables of the service are written
// into the installed one, in place: each slot that changes is one aligned 4-byte store, so a
// packet, which reads one slot, reads the old backend or the new one. Updating the outer map
// instead would cost an RCU grace period (~15 ms) per call; rewriting in place costs none
// (Katran rewrites its rings the same way).
#ifndef XLB_LOADER_MAGLEV_TABLES_H
#define XLB_LOADER_MAGLEV_TABLES_H

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "loader/fd.h"
#include "util/result.h"

namespace xlb {

class MaglevTables {
 public:
  // How slots are written into a table and read out of one. kAuto: an installed table
  // through a mapping of it (mmapable tables: plain stores, nothing copied by the kernel), a
  // new one with batch calls; else batch calls, else one call per element (kernels without
  // batch operations on arrays). kBatch and kElement force that path: tests, and a check of
  // the fallbacks.
  enum class Access { kAuto, kBatch, kElement };

  struct Write {
    uint32_t service_id;
    std::span<const uint32_t> slots;
  };

  MaglevTables() = default;
  // `outer_fd` (borrowed, it must outlive this object) is xlb_maglev_v3. `table_size` is the
  // slots of every table it takes (xlb_config.maglev_size); a reader that only reads may
  // pass 0 and takes each table's own size. Service ids are 1..max_services-1.
  MaglevTables(int outer_fd, uint32_t table_size, uint32_t max_services);

  // An empty table of this shape, in no outer map: the inner template at load time.
  static Result<UniqueFd> Create(uint32_t size, const std::string& name, bool mmapable = true);
  // The slots of a table (`fd`), from its size word. EINVAL when it is no table of this
  // shape, EIO when its size word does not fit its elements.
  static Result<uint32_t> SizeOf(int fd);
  // The same, from the map info the caller has already read.
  static Result<uint32_t> SizeOf(int fd, const bpf_map_info& info);

  int outer_fd() const { return outer_fd_; }
  uint32_t table_size() const { return table_size_; }
  void set_access(Access access) { access_ = access; }
  // False once an outer map pinned by an older xlb, whose template is not mmapable, refused
  // a mmapable table: from then on tables are created without BPF_F_MMAPABLE.
  bool mmapable() const { return mmapable_; }

  // The table of service_id set to `slots` (table_size() of them): rewritten in place when the
  // service has one of this size, else a new one swapped in.
  Result<void> Install(uint32_t service_id, std::span<const uint32_t> slots);
  // Several tables. Installed ones are rewritten in place; new ones are created and filled
  // (the kernel zeroes every new table's pages) and put in with one batch update of the outer
  // map: the kernel waits for an RCU grace period after every update of an outer map
  // (~15 ms), so a batch costs one wait instead of one per table. `installed` says how many
  // of the first ones are in (all when it succeeds).
  Result<void> InstallMany(std::span<const Write> tables, size_t& installed);
  // The slots of the table installed for service_id; ENOENT when none is.
  Result<std::vector<uint32_t>> Read(uint32_t service_id) const;
  // The map id of the table installed for service_id; ENOENT when none is.
  Result<uint32_t> TableId(uint32_t service_id) const;
  // Removes the table: the service's new flows then drop (XLB_DROP_NO_TABLE). None is fine.
  Result<void> Remove(uint32_t service_id);
  // How many services have a table (one lookup per id of the outer map).
  uint32_t Count() const;

 private:
  // Writes `slots` into the installed table of service_id; false when it has none of this
  // size (nothing written).
  Result<bool> Rewrite(uint32_t service_id, std::span<const uint32_t> slots);
  // New tables, filled and swapped in with one batch update.
  Result<void> InstallNew(std::span<const Write> tables, size_t& installed);
  // A new table of the outer map's shape, filled, not yet in the outer map.
  Result<UniqueFd> NewTable(uint32_t service_id, std::span<const uint32_t> slots,
                            bool mmapable) const;
  // Every element of table `fd` from `slots` (table_size() of them) and the size word, with
  // batch updates (else one update per element).
  Result<void> Fill(int fd, std::span<const uint32_t> slots, const std::string& ctx) const;
  // The installed table of service_id, opened (retried when a swap frees it meanwhile).
  Result<UniqueFd> Open(uint32_t service_id) const;
  Result<void> CheckWrite(uint32_t service_id, std::span<const uint32_t> slots) const;
  // Installs the tables one outer update after the other.
  Result<void> SwapEach(std::span<const uint32_t> ids, std::span<const int> fds,
                        size_t& installed);

  int outer_fd_ = -1;
  uint32_t table_size_ = 0;
  uint32_t max_services_ = 0;
  Access access_ = Access::kAuto;
  bool mmapable_ = true;
  std::vector<uint32_t> elem_keys_;  // 0..elements-1, the keys of every batch update
};

}  // namespace xlb

#endif  // XLB_LOADER_MAGLEV_TABLES_H
