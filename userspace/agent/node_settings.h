// Per-node settings of the agent: one file for every node of a cluster (the DaemonSet's
// `xlb-node` ConfigMap), with defaults and entries for the nodes that differ, so that a pool
// whose uplink is `bond0`, or a node with two uplinks, is described next to the rest:
//
//   apiVersion: xlb.dev/v1alpha1                  # required
//   kind: NodeSettings                            # required
//   defaults:                                     # optional: for every node
//     uplink: auto                                #   --uplink: auto, or "eth0,eth1", or a list
//     podIfaces: ["veth*"]                        #   --pod-iface globs
//     encap: vxlan                                #   --encap vxlan|gue
//     tunnelMtu: 1500                             #   --tunnel-mtu 576-65535
//   nodes:                                        # optional: the first entry whose `names`
//   - names: ["gpu-*", "edge-1"]                  #   glob (fnmatch) matches the node's name
//     uplink: [bond0]                             #   replaces those of its fields it sets
//     tunnelMtu: 9000
//
// The settings become the agent's flags (NodeSettingsFlags), so a value is checked by the same
// parser as on the command line; a flag given on the command line wins over the file. Read
// once at start, as the uplinks are chosen once: a changed file takes effect at the next start.
#ifndef XLB_USERSPACE_AGENT_NODE_SETTINGS_H
#define XLB_USERSPACE_AGENT_NODE_SETTINGS_H

#include <set>
#include <string>
#include <vector>

#include "userspace/model/config_error.h"

namespace xlb {

inline constexpr const char* kNodeSettingsKind = "NodeSettings";

// The flags ("--uplink", "eth0", ...) the settings in `text` give the node `node_name`: the
// defaults, then the matching entry's fields over them. Flags in `given` are left out. A node
// whose name is not known ("") while the file has `nodes` entries is an error: it would
// silently get the defaults.
ConfigResult<std::vector<std::string>> NodeSettingsFlags(const std::string& file,
                                                         const std::string& text,
                                                         const std::string& node_name,
                                                         const std::set<std::string>& given);

}  // namespace xlb

#endif  // XLB_USERSPACE_AGENT_NODE_SETTINGS_H
