// The Maglev slot of a flow, computed exactly as the datapath computes it (bpf/lib/lb.h), so
// that userspace can say which backend a new flow will get (xlbctl explain, tests).
#ifndef XLB_USERSPACE_PLANNER_FLOW_SLOT_H
#define XLB_USERSPACE_PLANNER_FLOW_SLOT_H

#include <cstdint>

#include "maps/xlb_hash.h"

namespace xlb {

// `seed` is xlb_config.hash_seed and `table_size` xlb_config.maglev_size (> 0).
// `client_affinity` is the service's XLB_SVC_F_AFFINITY: hash the client address only.
inline uint32_t MaglevSlot(const xlb_ct_key& key, bool client_affinity, uint32_t seed,
                           uint32_t table_size) {
  const uint32_t hash = client_affinity ? xlb_hash_client(&key, seed) : xlb_hash_flow(&key, seed);
  return hash % table_size;
}

}  // namespace xlb

#endif  // XLB_USERSPACE_PLANNER_FLOW_SLOT_H
