#include "katran_shape.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <numeric>
#include <vector>

#include "flow_maps.h"
#include "maps/typed_map.h"
#include "xlb_katran_shape.skel.h"

namespace xlb::bench {
namespace {

constexpr uint32_t kRingSize = 65537;  // KS_RING_SIZE

// Mirrors of the program's structs (bpf/xlb_katran_shape.bpf.c).
struct VipKey {
  uint32_t addr;
  uint16_t port;
  uint8_t proto;
  uint8_t pad;
};
struct VipMeta {
  uint32_t flags;
  uint32_t vip_num;
};
struct RealPos {
  uint32_t pos;
  uint32_t pad;
  uint64_t atime;
};
struct Real {
  uint32_t addr;
  uint32_t flags;
};
// The flow key is Katran's 40 bytes, the size of xlb_ct_key, which ClearFlowMap reads keys as.
static_assert(sizeof(xlb_ct_key) == 40);

}  // namespace

Result<std::unique_ptr<KatranShape>> KatranShape::Load(uint32_t lru_entries, const std::string& vip,
                                                       uint16_t port, uint32_t reals,
                                                       std::string (*real_addr)(uint32_t)) {
  ::xlb_katran_shape* skel = xlb_katran_shape__open();
  if (skel == nullptr) {
    return Error::FromErrno(errno, "xlb_katran_shape: open");
  }
  std::unique_ptr<KatranShape> ks(new KatranShape(skel));
  if (int ret = bpf_map__set_max_entries(skel->maps.ks_lru, lru_entries); ret < 0) {
    return Error::FromRet(ret, "xlb_katran_shape: LRU size");
  }
  if (int ret = xlb_katran_shape__load(skel); ret < 0) {
    return Error::FromRet(ret, "xlb_katran_shape: load");
  }
  VipKey key{};
  if (inet_pton(AF_INET, vip.c_str(), &key.addr) != 1) {
    return Error{EINVAL, "xlb_katran_shape: VIP " + vip};
  }
  key.port = htons(port);
  key.proto = IPPROTO_TCP;
  const VipMeta meta{0, 0};
  XLB_TRY(TypedMap<VipKey, VipMeta>(bpf_map__fd(skel->maps.ks_vips), "ks_vips").Update(key, meta));
  const TypedMap<uint32_t, Real> real_map(bpf_map__fd(skel->maps.ks_reals), "ks_reals");
  for (uint32_t i = 1; i <= reals; ++i) {
    Real real{};
    const std::string addr = real_addr(i);
    if (inet_pton(AF_INET, addr.c_str(), &real.addr) != 1) {
      return Error{EINVAL, "xlb_katran_shape: real " + addr};
    }
    XLB_TRY(real_map.Update(i, real));
    ks->real_addrs_.insert(addr);
  }
  // The ring: every slot names a real (Katran fills it by Maglev; any spread costs the same).
  std::vector<uint32_t> keys(kRingSize), values(kRingSize);
  for (uint32_t slot = 0; slot < kRingSize; ++slot) {
    keys[slot] = slot;
    values[slot] = 1 + slot % reals;
  }
  uint32_t count = kRingSize;
  if (int ret = bpf_map_update_batch(bpf_map__fd(skel->maps.ks_ring), keys.data(), values.data(),
                                     &count, nullptr);
      ret < 0 || count != kRingSize) {
    return Error::FromRet(ret < 0 ? ret : -EIO, "xlb_katran_shape: ring");
  }
  return ks;
}

KatranShape::~KatranShape() {
  xlb_katran_shape__destroy(skel_);
}

int KatranShape::prog_fd() const {
  return bpf_program__fd(skel_->progs.xlb_katran_shape);
}

Result<KatranShape::Counters> KatranShape::ReadCounters() const {
  const PerCpuMap<uint64_t> stats(bpf_map__fd(skel_->maps.ks_stats), "ks_stats");
  Counters c;
  for (uint32_t which = 0; which < 2; ++which) {
    XLB_ASSIGN_OR_RETURN(auto per_cpu, stats.Lookup(which));
    (which == 0 ? c.new_flows : c.hits) = std::accumulate(per_cpu.begin(), per_cpu.end(), 0ULL);
  }
  return c;
}

Result<uint64_t> KatranShape::Flows() const {
  XLB_ASSIGN_OR_RETURN(
      auto keys, (TypedMap<xlb_ct_key, RealPos>(bpf_map__fd(skel_->maps.ks_lru), "ks_lru").Keys()));
  return keys.size();
}

Result<uint64_t> KatranShape::ClearFlows() const {
  return ClearFlowMap<RealPos>(bpf_map__fd(skel_->maps.ks_lru), "ks_lru");
}

}  // namespace xlb::bench
