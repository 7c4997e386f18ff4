// The Maglev slot of a flow, by the datapath's own rule (maps/xlb_rules.h, which bpf/lib/lb.h
// includes), so that userspace can say which backend a new flow will get (tests).
#ifndef XLB_USERSPACE_PLANNER_FLOW_SLOT_H
#define XLB_USERSPACE_PLANNER_FLOW_SLOT_H

#include <cstdint>

#include "maps/xlb_rules.h"

namespace xlb {

// `seed` is xlb_config.hash_seed and `table_size` xlb_config.maglev_size (> 0).
// `client_affinity` is the service's XLB_SVC_F_AFFINITY: hash the client address only.
inline uint32_t MaglevSlot(const xlb_ct_key& key, bool client_affinity, uint32_t seed,
                           uint32_t table_size) {
  const uint32_t flags = client_affinity ? XLB_SVC_F_AFFINITY : 0;
  return xlb_select_slot(xlb_select_hash(&key, flags, seed), table_size);
}

}  // namespace xlb

#endif  // XLB_USERSPACE_PLANNER_FLOW_SLOT_H
