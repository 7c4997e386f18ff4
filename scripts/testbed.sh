#!/usr/bin/env bash
# xlb testbed: two "clusters" of network namespaces behind a router, joined by veth pairs,
# with plain kernel routing between all of them, and optionally a third node that runs no
# xlb at all, only a stock Linux vxlan device. xlb's XDP/TC programs are attached on top of
# this by the end-to-end tests and the demo (tests/testbed/xlb_node.h).
#
# BEGIN PLAN
# Namespaces are <prefix><role>; the default prefix is "xlbtb-", tests use "xlbtb<pid>-<n>-".
#
#                              client                         (eth0)
#                                |
#                              router                         (eth-client, eth-nodeA/B/C)
#                         /      |       \
#                    nodeA     nodeB      nodeC (--node-c)    (eth0 uplink; veth-<pod> to pods)
#                   /  |  \    /   \        |     \
#         podA1 podA2 clientA podB1 podB2  podC1  vxlan0     (pods: eth0, routed veth like a CNI)
#
# | net              | IPv4            | IPv6              | addresses                                   |
# |------------------|-----------------|-------------------|---------------------------------------------|
# | client net       | 198.18.0.0/24   | 2001:db8::/64     | router .1 ::1 (eth-client), client .2 ::2  |
# | transit A        | 198.18.1.0/24   | 2001:db8:1::/64   | router .1 ::1 (eth-nodeA),  nodeA  .2 ::2  |
# | transit B        | 198.18.2.0/24   | 2001:db8:2::/64   | router .1 ::1 (eth-nodeB),  nodeB  .2 ::2  |
# | transit C        | 198.18.3.0/24   | 2001:db8:3::/64   | router .1 ::1 (eth-nodeC),  nodeC  .2 ::2  |
# | pod CIDR A       | 198.18.10.0/24  | 2001:db8:10::/64  | podA1 .11 ::11, podA2 .12 ::12, clientA .21 ::21 (/32, /128) |
# | pod CIDR B       | 198.18.20.0/24  | 2001:db8:20::/64  | podB1 .11 ::11, podB2 .12 ::12 (/32, /128) |
# | pod CIDR C       | 198.18.30.0/24  | 2001:db8:30::/64  | podC1 .11 ::11 (/32, /128); NOT routed by the router |
# | pod gateway      | .1 of the CIDR  | ::1 of the CIDR   | on every pod-facing veth of that node (/32,/128) |
# | VIPs             | 198.18.100.0/24 | 2001:db8:100::/64 | routed router -> nodeA; "unreachable" there |
# | reserved         | 198.18.101-103.0/24, 2001:db8:101-103::/64: more VIPs                      |
#
# Tunnel endpoints for encapsulation are the nodes' transit addresses (198.18.1.2,
# 198.18.2.2, 198.18.3.2, 2001:db8:1::2, 2001:db8:2::2). Echo servers (xlb-echo) listen in
# every pod but clientA on TCP and UDP port 8080 (IPv4 and IPv6), with the pod's name as
# id. clientA is a client pod of cluster A (east-west traffic): in the base shape it runs no
# server, so it is never a backend and never has to reach itself through a VIP (hairpin).
#
# nodeC (only with --node-c) runs no xlb: stock Linux vxlan devices with Linux's defaults,
# `vxlan0` over IPv4 (local 198.18.3.2, MTU 1450) and `vxlan6` over IPv6 (local
# 2001:db8:3::2, MTU 1430), both VNI 4242 = XLB_VXLAN_VNI, dstport 4789, MAC
# 02:78:6c:62:00:01 = xlb's default vtep_mac, decapsulate what xlb sends, and podC1 is
# reachable ONLY through them (no route to 198.18.30.0/24 or 2001:db8:30::/64 on the
# router). podC1's answers to the client net and to cluster A's pods (198.18.0.0/24,
# 198.18.10.0/24 through vxlan0; 2001:db8::/64, 2001:db8:10::/64 through vxlan6) go back to
# nodeA's transit address (fdb entries; inner destination MAC = nodeA's eth0), where xlb's
# XDP decapsulates them and reverses the DNAT.
#
# --multi-node (C++: Options::multi_node) adds, like a CNI with per-node pod CIDRs routed by
# the router: a second xlb node in each cluster, nodeA2 and nodeB2, and nodeA3, a node of
# cluster A that runs no xlb (its pods are routed normally by the router); a server pod on
# each new node (podA21, podB21, podA31) and a client pod on every xlb node (clientA on
# nodeA, clientA2, clientB, clientB2); every client pod also runs xlb-echo (it can be its
# own backend: hairpin), and so does nodeA2's host namespace (id "nodeA2", on its transit
# address 198.18.4.2 / 2001:db8:4::2: an endpoint that is a host address, as the
# `kubernetes` Service's API servers are). The VIP ranges 198.18.100-103.0/24 and
# 2001:db8:100-103::/64 are all routed to nodeA.
#
#                                 client
#                                   |
#                                 router
#           /           /           |           \            \
#        nodeA       nodeA2       nodeA3       nodeB        nodeB2
#     podA1 podA2    podA21       podA31    podB1 podB2     podB21
#       clientA     clientA2     (no xlb)     clientB      clientB2
#
# | net              | IPv4            | IPv6              | addresses (--multi-node)                 |
# |------------------|-----------------|-------------------|------------------------------------------|
# | transit A2       | 198.18.4.0/24   | 2001:db8:4::/64   | router .1 ::1 (eth-nodeA2), nodeA2 .2 ::2 |
# | transit B2       | 198.18.5.0/24   | 2001:db8:5::/64   | router .1 ::1 (eth-nodeB2), nodeB2 .2 ::2 |
# | transit A3       | 198.18.6.0/24   | 2001:db8:6::/64   | router .1 ::1 (eth-nodeA3), nodeA3 .2 ::2 |
# | pod CIDR A2      | 198.18.11.0/24  | 2001:db8:11::/64  | podA21 .11 ::11, clientA2 .21 ::21       |
# | pod CIDR A3      | 198.18.12.0/24  | 2001:db8:12::/64  | podA31 .11 ::11 (node without xlb)       |
# | pod CIDR B2      | 198.18.21.0/24  | 2001:db8:21::/64  | podB21 .11 ::11, clientB2 .21 ::21       |
# | pod CIDR B       | (as above)      |                   | + clientB .21 ::21                       |
# | VIPs             | 198.18.100-103.0/24 | 2001:db8:100-103::/64 | routed router -> nodeA           |
#
# Routes cover only 198.18.0.0/15 and 2001:db8::/32 (no default route anywhere), and the
# router answers "unreachable" for the unused rest, so nothing can leave these ranges.
# END PLAN
#
# Usage: testbed.sh up     [--prefix P] [--echo PATH | --no-echo] [--port N] [--transit-mtu N]
#                          [--node-c] [--multi-node] [--xdp-pass OBJ | --no-xdp-pass]
#        testbed.sh down   [--prefix P]      remove every namespace named P*, and what runs there
#        testbed.sh status [--prefix P]      namespaces, addresses, servers; other testbeds seen
#        testbed.sh plan                     print the address plan
#        testbed.sh exec   [--prefix P] ROLE -- CMD...   run CMD inside P<ROLE> (nsenter)
#        testbed.sh run    [up options] -- CMD...        up, run CMD in the root ns, always down
#        testbed.sh gc                       down every xlbtb<pid>-* testbed whose pid is gone
#
# `up` is idempotent: it first removes whatever exists under the prefix, then builds the
# whole testbed; if it fails half-way, it removes what it built. CMD of `run` sees
# XLB_TESTBED_PREFIX and XLB_TESTBED_PORT in its environment. --xdp-pass names the BPF
# object of a trivial XDP_PASS program (default: xlb_floor.bpf.o of the build) that `up`
# attaches to the router's node-facing ports and to every pod's eth0 (see below).
#
# Choices the next engineer must know:
# * Namespaces are entered with `nsenter --net=/var/run/netns/NAME`, never `ip netns exec`:
#   the latter remounts /sys in a private mount namespace, which hides /sys/fs/bpf and
#   every pinned map.
# * MTU is 1500 on every veth (the transit links can be changed with --transit-mtu), so a
#   VXLAN/GUE-encapsulated full-size packet (+50 bytes IPv4 outer, +70 IPv6) does NOT fit
#   on router<->node: that is what xlb's MSS clamping / "fragmentation needed" must handle.
#   Native XDP on veth accepts MTUs up to about 3.5 kB (one page minus headroom).
# * TX checksum offload is off on every veth, so every packet on the "wire" carries a
#   complete L4 checksum, as from a real NIC. With it on, a veth hands CHECKSUM_PARTIAL
#   skbs across namespaces (even through the router) and an XDP program on a node would
#   see unfinished checksums; tshark would flag them. On this kernel (6.18) that does NOT
#   turn off scatter-gather or TSO: a veth whose peer has no XDP program still carries
#   non-linear skbs and TSO super-packets (up to 64 KB). The transit links do not (an XDP
#   program on the peer makes a veth drop its GSO features, and both ends of every
#   router<->node link have one once xlb runs), nor do the node->pod links
#   (XDP_PASS on the pods' eth0). What a pod sends toward its node is like a real CNI's
#   veth: non-linear skbs and GSO packets, which xlb_tc on veth-<pod> must handle.
# * A frame that XDP sends out of a veth (XDP_TX, or XDP_REDIRECT into a veth) is dropped
#   unless the PEER veth has an XDP program attached (a trivial XDP_PASS one is enough;
#   or enable GRO on the peer, which also turns on its NAPI). So `up` attaches an XDP_PASS
#   program (--xdp-pass) to router/eth-nodeA, eth-nodeB, eth-nodeC (peers of the node
#   uplinks, where xlb's XDP_TX lands) and to every pod's eth0 (in case xlb redirects into
#   veth-<pod>); without the object it warns and attaches nothing.
# * rp_filter is 0, IPv6 DAD and router advertisements are off in every namespace
#   (addresses are usable at once); forwarding is on only in router and the nodes. Every
#   interface keeps its kernel-made fe80:: link-local address: Linux sends a Neighbor
#   Solicitation for a forwarded packet only from a link-local source, so IPv6 routing
#   needs them. They never leave their veth link.
# * VIPs: 198.18.100.0/24 and 2001:db8:100::/64 are routed router -> nodeA, where an
#   "unreachable" route ends them until xlb's XDP program on nodeA/eth0 takes them first.
# * nodeC's IPv6 answers go through vxlan6 via a link-local next hop (fe80::a, a permanent
#   neighbour entry with nodeA's MAC); the IPv4 ones via 198.18.1.2 "onlink" on vxlan0.
set -euo pipefail

# The roles of the base testbed; --node-c adds NODE_C_ROLES. Pods run an echo server each.
readonly BASE_ROLES=(client router nodeA nodeB podA1 podA2 clientA podB1 podB2)
readonly NODE_C_ROLES=(nodeC podC1)
readonly BASE_PODS=(podA1 podA2 podB1 podB2)
# What --multi-node adds: three nodes, their pods, client pods on every xlb node. Client pods
# run xlb-echo too (hairpin), and so does nodeA2's host namespace (a host-address endpoint).
readonly MULTI_NODE_ROLES=(nodeA2 nodeA3 nodeB2 podA21 clientA2 podA31 clientB podB21 clientB2)
readonly MULTI_NODE_ECHO=(podA21 podA31 podB21 clientA clientA2 clientB clientB2 nodeA2)
# xlb's defaults (maps/xlb_abi.h: XLB_VXLAN_VNI, XLB_VXLAN_PORT, XLB_CONFIG_DEFAULTS.vtep_mac).
readonly VXLAN_VNI=4242
readonly VXLAN_PORT=4789
readonly VTEP_MAC=02:78:6c:62:00:01
# Every role any testbed may have, for gc and status (a regex alternation).
readonly ROLE_RE='client|router|node[ABC][23]?|pod[ABC][12]|pod[AB][23]1|client[AB]2?'
readonly STATE_ROOT=/run/xlb-testbed
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SELF REPO

PREFIX=xlbtb-
PORT=8080
TRANSIT_MTU=1500
ECHO_BIN="${XLB_ECHO:-}"
NO_ECHO=0
NODE_C=0
MULTI_NODE=0
XDP_PASS_OBJ="${XLB_XDP_PASS_OBJ:-}"
NO_XDP_PASS=0
ROLES=("${BASE_ROLES[@]}")
PODS=("${BASE_PODS[@]}")

die() {
  echo "testbed.sh: $*" >&2
  exit 1
}

usage() {
  # shellcheck disable=SC2016 # a literal backquote in the pattern
  sed -n '/^# Usage:/,/^# `up` is/p' "$SELF" | sed -e 's/^# \{0,1\}//' -e '$d' >&2
  exit 2
}

print_plan() {
  sed -n '/^# BEGIN PLAN/,/^# END PLAN/p' "$SELF" | sed -e '1d' -e '$d' -e 's/^# \{0,1\}//'
}

ns_path() { echo "/var/run/netns/${PREFIX}$1"; }
in_ns() {
  local role=$1
  shift
  nsenter --net="$(ns_path "$role")" -- "$@"
}
ipn() {
  local role=$1
  shift
  ip -n "${PREFIX}${role}" "$@"
}

check_prefix() {
  # The trailing '-' keeps "xlbtb1-" from matching the namespaces of "xlbtb12-".
  [[ "$PREFIX" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*-$ ]] ||
    die "prefix '$PREFIX' must be [A-Za-z0-9_.-], start alphanumeric and end with '-'"
  [ ${#PREFIX} -le 40 ] || die "prefix '$PREFIX' is longer than 40 characters"
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (network namespaces)"
}

namespaces_with_prefix() {
  local p=$1 ns
  ip netns list 2>/dev/null | awk '{print $1}' | while read -r ns; do
    if [[ "$ns" == "$p"* ]]; then echo "$ns"; fi
  done
}

# Running and not a zombie: an orphaned server waits for PID 1 to reap it.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ "$stat" != [ZX]* ]]
}

# Everything under the prefix: the processes living in its namespaces (servers, agents,
# shells -- all started for this testbed), then the namespaces (veth pairs go with them).
down_prefix() {
  local p=$1 ns pid
  local -a nss pids=()
  mapfile -t nss < <(namespaces_with_prefix "$p")
  for ns in "${nss[@]}"; do
    while read -r pid; do
      [ -n "$pid" ] && pids+=("$pid")
    done < <(ip netns pids "$ns" 2>/dev/null || true)
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 40); do
      local alive=()
      for pid in "${pids[@]}"; do
        alive "$pid" && alive+=("$pid")
      done
      [ ${#alive[@]} -eq 0 ] && break
      sleep 0.05
    done
    for pid in "${pids[@]}"; do
      kill -KILL "$pid" 2>/dev/null || true
    done
  fi
  for ns in "${nss[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "${STATE_ROOT:?}/${p}"
  local left
  left=$(namespaces_with_prefix "$p")
  [ -z "$left" ] || die "could not remove: $left"
}

# Packets leave a veth as from a real NIC: complete checksums, at most MTU-sized. TX
# checksum offload off also ends TSO; the tunnel/GSO-list offloads would otherwise let a
# kernel tunnel device's GSO skbs cross the veth unsegmented (best effort: names vary).
readonly SEGMENTATION_OFF=(tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off
  tx-gre-segmentation off tx-gre-csum-segmentation off tx-ipxip4-segmentation off
  tx-ipxip6-segmentation off tx-gso-list off tx-udp-segmentation off)
wire_like() {
  local role=$1 dev=$2
  in_ns "$role" ethtool -K "$dev" tx off >/dev/null 2>&1 || die "ethtool -K $dev tx off in $role"
  in_ns "$role" ethtool -K "$dev" "${SEGMENTATION_OFF[@]}" >/dev/null 2>&1 || true
}

# A veth pair between two namespaces, both ends up, MTU set, offloads as on a wire.
link() {
  local a=$1 ifa=$2 b=$3 ifb=$4 mtu=$5
  ipn "$a" link add "$ifa" mtu "$mtu" type veth peer name "$ifb" netns "${PREFIX}${b}" mtu "$mtu"
  wire_like "$a" "$ifa"
  wire_like "$b" "$ifb"
  ipn "$a" link set "$ifa" up
  ipn "$b" link set "$ifb" up
}

addr() {
  local role=$1 dev=$2 v4=$3 v6=$4
  ipn "$role" addr add "$v4" dev "$dev"
  ipn "$role" -6 addr add "$v6" dev "$dev" nodad
}

# A pod behind its node, routed like Calico/Cilium: the pod owns a /32 and /128; the node
# holds the pod CIDR's gateway address on every pod-facing veth and a host route per pod.
pod() {
  local node=$1 pod=$2 v4net=$3 v6net=$4 host=$5
  local dev="veth-${pod}"
  link "$node" "$dev" "$pod" eth0 1500
  ipn "$node" addr add "${v4net}.1/32" dev "$dev"
  ipn "$node" -6 addr add "${v6net}::1/128" dev "$dev" nodad
  ipn "$node" route add "${v4net}.${host}/32" dev "$dev"
  ipn "$node" -6 route add "${v6net}::${host}/128" dev "$dev"
  ipn "$pod" addr add "${v4net}.${host}/32" dev eth0
  ipn "$pod" -6 addr add "${v6net}::${host}/128" dev eth0 nodad
  ipn "$pod" route add "${v4net}.1/32" dev eth0 scope link
  ipn "$pod" -6 route add "${v6net}::1/128" dev eth0
  ipn "$pod" route add 198.18.0.0/15 via "${v4net}.1" dev eth0 src "${v4net}.${host}"
  ipn "$pod" -6 route add 2001:db8::/32 via "${v6net}::1" dev eth0 src "${v6net}::${host}"
}

# The trivial XDP_PASS object that makes XDP_TX frames survive on the peer veth.
find_xdp_pass() {
  [ "$NO_XDP_PASS" -eq 1 ] && return 0
  if [ -z "$XDP_PASS_OBJ" ]; then
    local c="${XLB_BUILD_DIR:-$REPO/build}/bpf/xlb_floor/xlb_floor.bpf.o"
    [ ! -r "$c" ] || XDP_PASS_OBJ=$c
  fi
  if [ -z "$XDP_PASS_OBJ" ]; then
    echo "testbed.sh: xlb_floor.bpf.o not found (build target xlb_floor, or --xdp-pass OBJ);" \
      "no XDP_PASS on the router: frames that xlb sends with XDP_TX will be dropped" >&2
  elif [ ! -r "$XDP_PASS_OBJ" ]; then
    die "--xdp-pass $XDP_PASS_OBJ is not readable"
  fi
}

# Native XDP_PASS on one veth end, so that frames XDP_TXed by its peer are received.
xdp_pass() {
  local role=$1 dev=$2
  [ -n "$XDP_PASS_OBJ" ] && [ "$NO_XDP_PASS" -eq 0 ] || return 0
  ipn "$role" link set dev "$dev" xdpdrv obj "$XDP_PASS_OBJ" sec xdp ||
    die "attaching $XDP_PASS_OBJ to $dev in $role"
}

find_echo() {
  [ "$NO_ECHO" -eq 1 ] && return 0
  if [ -z "$ECHO_BIN" ]; then
    local c
    for c in "${XLB_BUILD_DIR:-$REPO/build}/tests/testbed/xlb-echo" /tmp/build-testbed/tests/testbed/xlb-echo; do
      if [ -x "$c" ]; then
        ECHO_BIN=$c
        break
      fi
    done
  fi
  if [ -z "$ECHO_BIN" ]; then
    echo "testbed.sh: xlb-echo not found (build target xlb_echo, or --echo PATH); no servers started" >&2
  elif [ ! -x "$ECHO_BIN" ]; then
    die "--echo $ECHO_BIN is not executable"
  fi
}

start_echo() {
  local state="${STATE_ROOT}/${PREFIX}" p
  mkdir -p "$state"
  for p in "${PODS[@]}"; do
    rm -f "$state/$p.pid"
    # setsid: the server outlives this script and ignores the terminal's Ctrl-C; `down`
    # finds it through `ip netns pids`.
    setsid -f nsenter --net="$(ns_path "$p")" -- "$ECHO_BIN" --id "$p" --port "$PORT" \
      --pid-file "$state/$p.pid" >"$state/$p.log" 2>&1 </dev/null
  done
  for p in "${PODS[@]}"; do
    for _ in $(seq 1 100); do
      [ -s "$state/$p.pid" ] && break
      sleep 0.05
    done
    [ -s "$state/$p.pid" ] || die "xlb-echo in $p did not start: $(cat "$state/$p.log" 2>/dev/null)"
  done
}

# nodeC: a node without xlb whose pod is reachable only through a stock Linux vxlan device,
# the far end of the interop test (xlb encapsulates on nodeA, Linux decapsulates here).
up_node_c() {
  link router eth-nodeC nodeC eth0 "$TRANSIT_MTU"
  addr router eth-nodeC 198.18.3.1/24 2001:db8:3::1/64
  addr nodeC eth0 198.18.3.2/24 2001:db8:3::2/64
  xdp_pass router eth-nodeC
  pod nodeC podC1 198.18.30 2001:db8:30 11
  xdp_pass podC1 eth0
  ipn nodeC route add 198.18.0.0/15 via 198.18.3.1
  ipn nodeC -6 route add 2001:db8::/32 via 2001:db8:3::1
  ipn nodeC route add unreachable 198.18.30.0/24
  ipn nodeC -6 route add unreachable 2001:db8:30::/64

  local node_a_mac
  # Through ip: /sys is the host's under nsenter (it is not remounted).
  node_a_mac=$(ipn nodeA -br link show dev eth0 | awk '{print $3}')
  [[ "$node_a_mac" =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || die "nodeA eth0 MAC: '$node_a_mac'"
  # Two stock devices with Linux's defaults, one per underlay family; each carries the
  # inner packets of its own family. The IPv6 one keeps the default that a UDP checksum of
  # zero is refused (RFC 8200; udp6zerocsumrx off), as on any Linux host.
  ipn nodeC link add vxlan0 type vxlan id "$VXLAN_VNI" local 198.18.3.2 dstport "$VXLAN_PORT" \
    nolearning dev eth0
  ipn nodeC link add vxlan6 type vxlan id "$VXLAN_VNI" local 2001:db8:3::2 dstport "$VXLAN_PORT" \
    nolearning dev eth0
  ipn nodeC link set dev vxlan0 address "$VTEP_MAC" mtu 1450
  ipn nodeC link set dev vxlan6 address "$VTEP_MAC" mtu 1430
  local dev
  for dev in vxlan0 vxlan6; do
    wire_like nodeC "$dev"
    ipn nodeC link set dev "$dev" up
  done
  # Frames for nodeA's MAC go to nodeA's transit address; the inner destination MAC is
  # nodeA's eth0, so the decapsulated frame is addressed to nodeA's stack as it is.
  ipn nodeC neigh add 198.18.1.2 lladdr "$node_a_mac" dev vxlan0 nud permanent
  ipn nodeC -6 neigh add fe80::a lladdr "$node_a_mac" dev vxlan6 nud permanent
  bridge -n "${PREFIX}nodeC" fdb add "$node_a_mac" dev vxlan0 dst 198.18.1.2 self permanent
  bridge -n "${PREFIX}nodeC" fdb add "$node_a_mac" dev vxlan6 dst 2001:db8:1::2 self permanent
  local net
  for net in 198.18.0.0/24 198.18.10.0/24; do
    ipn nodeC route add "$net" via 198.18.1.2 dev vxlan0 onlink
  done
  for net in 2001:db8::/64 2001:db8:10::/64; do
    ipn nodeC -6 route add "$net" via fe80::a dev vxlan6
  done
}

# --multi-node: nodeA2/nodeB2 (xlb nodes), nodeA3 (no xlb), their pods, more client pods.
up_multi_node() {
  local spec node net v4 v6
  # node transit-net (third octet = IPv6 group) pod-CIDR-suffix
  for spec in nodeA2:4:11 nodeA3:6:12 nodeB2:5:21; do
    IFS=: read -r node net v4 <<<"$spec"
    link router "eth-$node" "$node" eth0 "$TRANSIT_MTU"
    addr router "eth-$node" "198.18.$net.1/24" "2001:db8:$net::1/64"
    addr "$node" eth0 "198.18.$net.2/24" "2001:db8:$net::2/64"
    xdp_pass router "eth-$node"
    ipn router route add "198.18.$v4.0/24" via "198.18.$net.2"
    ipn router -6 route add "2001:db8:$v4::/64" via "2001:db8:$net::2"
    ipn "$node" route add 198.18.0.0/15 via "198.18.$net.1"
    ipn "$node" -6 route add 2001:db8::/32 via "2001:db8:$net::1"
    ipn "$node" route add unreachable "198.18.$v4.0/24"
    ipn "$node" -6 route add unreachable "2001:db8:$v4::/64"
  done
  pod nodeA2 podA21 198.18.11 2001:db8:11 11
  pod nodeA2 clientA2 198.18.11 2001:db8:11 21
  pod nodeA3 podA31 198.18.12 2001:db8:12 11
  pod nodeB clientB 198.18.20 2001:db8:20 21
  pod nodeB2 podB21 198.18.21 2001:db8:21 11
  pod nodeB2 clientB2 198.18.21 2001:db8:21 21
  local role
  for role in podA21 clientA2 podA31 clientB podB21 clientB2; do
    xdp_pass "$role" eth0
  done
  # The other VIP ranges go to nodeA too, where "unreachable" ends them as for the first.
  for net in 101 102 103; do
    ipn router route add "198.18.$net.0/24" via 198.18.1.2
    ipn router -6 route add "2001:db8:$net::/64" via 2001:db8:1::2
    ipn nodeA route add unreachable "198.18.$net.0/24"
    ipn nodeA -6 route add unreachable "2001:db8:$net::/64"
  done
}

cmd_up() {
  need_root up
  check_prefix
  if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    die "bad --port $PORT"
  fi
  if ! [[ "$TRANSIT_MTU" =~ ^[0-9]+$ ]] || [ "$TRANSIT_MTU" -lt 1280 ]; then
    die "bad --transit-mtu $TRANSIT_MTU (>= 1280)"
  fi
  find_echo
  find_xdp_pass
  down_prefix "$PREFIX"

  # A global: bash has left this function's scope when an EXIT trap runs after `set -e`.
  UP_BUILT=0
  trap '[ "$UP_BUILT" -eq 1 ] || { echo "testbed.sh: up failed, removing ${PREFIX}*" >&2; down_prefix "$PREFIX"; }' EXIT

  local role
  for role in "${ROLES[@]}"; do
    ip netns add "${PREFIX}${role}"
  done
  for role in "${ROLES[@]}"; do
    local fwd=0
    case "$role" in router | node*) fwd=1 ;; esac
    # "default" before any interface exists, so every link created below inherits it.
    in_ns "$role" sysctl -q -w \
      net.ipv4.ip_forward=$fwd \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
      net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
      net.ipv6.conf.all.forwarding=$fwd \
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    ipn "$role" link set lo up
  done

  link router eth-client client eth0 1500
  link router eth-nodeA nodeA eth0 "$TRANSIT_MTU"
  link router eth-nodeB nodeB eth0 "$TRANSIT_MTU"
  addr client eth0 198.18.0.2/24 2001:db8::2/64
  addr router eth-client 198.18.0.1/24 2001:db8::1/64
  addr router eth-nodeA 198.18.1.1/24 2001:db8:1::1/64
  addr router eth-nodeB 198.18.2.1/24 2001:db8:2::1/64
  addr nodeA eth0 198.18.1.2/24 2001:db8:1::2/64
  addr nodeB eth0 198.18.2.2/24 2001:db8:2::2/64

  pod nodeA podA1 198.18.10 2001:db8:10 11
  pod nodeA podA2 198.18.10 2001:db8:10 12
  pod nodeA clientA 198.18.10 2001:db8:10 21
  pod nodeB podB1 198.18.20 2001:db8:20 11
  pod nodeB podB2 198.18.20 2001:db8:20 12

  # Only the test ranges are routed; more specific routes win over the "unreachable" ones.
  ipn client route add 198.18.0.0/15 via 198.18.0.1
  ipn client -6 route add 2001:db8::/32 via 2001:db8::1
  ipn router route add 198.18.10.0/24 via 198.18.1.2
  ipn router route add 198.18.100.0/24 via 198.18.1.2
  ipn router route add 198.18.20.0/24 via 198.18.2.2
  ipn router route add unreachable 198.18.0.0/15
  ipn router -6 route add 2001:db8:10::/64 via 2001:db8:1::2
  ipn router -6 route add 2001:db8:100::/64 via 2001:db8:1::2
  ipn router -6 route add 2001:db8:20::/64 via 2001:db8:2::2
  ipn router -6 route add unreachable 2001:db8::/32
  ipn nodeA route add 198.18.0.0/15 via 198.18.1.1
  ipn nodeA -6 route add 2001:db8::/32 via 2001:db8:1::1
  ipn nodeA route add unreachable 198.18.10.0/24
  ipn nodeA -6 route add unreachable 2001:db8:10::/64
  ipn nodeA route add unreachable 198.18.100.0/24
  ipn nodeA -6 route add unreachable 2001:db8:100::/64
  ipn nodeB route add 198.18.0.0/15 via 198.18.2.1
  ipn nodeB -6 route add 2001:db8::/32 via 2001:db8:2::1
  ipn nodeB route add unreachable 198.18.20.0/24
  ipn nodeB -6 route add unreachable 2001:db8:20::/64

  local dev
  for dev in eth-nodeA eth-nodeB; do
    xdp_pass router "$dev"
  done
  for role in podA1 podA2 clientA podB1 podB2; do
    xdp_pass "$role" eth0
  done
  if [ "$NODE_C" -eq 1 ]; then
    up_node_c
  fi
  if [ "$MULTI_NODE" -eq 1 ]; then
    up_multi_node
  fi

  if [ -n "$ECHO_BIN" ] && [ "$NO_ECHO" -eq 0 ]; then
    start_echo
  fi
  UP_BUILT=1
  trap - EXIT
  echo "testbed ${PREFIX}* is up"
  print_plan
}

cmd_status() {
  check_prefix
  local -a nss
  mapfile -t nss < <(namespaces_with_prefix "$PREFIX" | sort)
  if [ ${#nss[@]} -eq 0 ]; then
    echo "testbed ${PREFIX}*: down"
  else
    local expected=${#BASE_ROLES[@]}
    [ ! -e "$(ns_path nodeC)" ] || expected=$((expected + ${#NODE_C_ROLES[@]}))
    [ ! -e "$(ns_path nodeA2)" ] || expected=$((expected + ${#MULTI_NODE_ROLES[@]}))
    echo "testbed ${PREFIX}*: ${#nss[@]} of ${expected} namespaces"
    local ns pids
    for ns in "${nss[@]}"; do
      pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      echo "== $ns${pids:+  (pids: $pids)}"
      ip -n "$ns" -br addr show | grep -v '^lo ' | sed 's/^/   /'
    done
  fi
  local others
  others=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^xlbtb' | grep -v "^${PREFIX//./\\.}" |
    sed -E "s/(${ROLE_RE})\$//" | sort -u | tr '\n' ' ' || true)
  [ -z "$others" ] || echo "other testbed prefixes present: $others"
  echo
  print_plan
}

cmd_gc() {
  need_root gc
  local ns pid p
  local -a prefixes=()
  while read -r ns; do
    [[ "$ns" =~ ^(xlbtb([0-9]+)-.*)(${ROLE_RE})$ ]] || continue
    p=${BASH_REMATCH[1]}
    pid=${BASH_REMATCH[2]}
    [ -d "/proc/$pid" ] && continue
    prefixes+=("$p")
  done < <(ip netns list 2>/dev/null | awk '{print $1}')
  if [ ${#prefixes[@]} -eq 0 ]; then
    echo "gc: nothing stale"
    return 0
  fi
  for p in $(printf '%s\n' "${prefixes[@]}" | sort -u); do
    echo "gc: removing stale testbed ${p}*"
    down_prefix "$p"
  done
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
ROLE=""
while [ $# -gt 0 ]; do
  case "$1" in
  --prefix) PREFIX=${2:?--prefix needs a value}; shift 2 ;;
  --prefix=*) PREFIX=${1#--prefix=}; shift ;;
  --echo) ECHO_BIN=${2:?--echo needs a path}; shift 2 ;;
  --no-echo) NO_ECHO=1; shift ;;
  --port) PORT=${2:?--port needs a value}; shift 2 ;;
  --transit-mtu) TRANSIT_MTU=${2:?--transit-mtu needs a value}; shift 2 ;;
  --node-c) NODE_C=1; shift ;;
  --multi-node) MULTI_NODE=1; shift ;;
  --xdp-pass) XDP_PASS_OBJ=${2:?--xdp-pass needs a path}; shift 2 ;;
  --no-xdp-pass) NO_XDP_PASS=1; shift ;;
  --) shift; break ;;
  -h | --help) usage ;;
  -*) die "unknown option $1" ;;
  *)
    if [ "$cmd" != exec ] || [ -n "$ROLE" ]; then die "unexpected argument $1"; fi
    ROLE=$1
    shift
    ;;
  esac
done

if [ "$NODE_C" -eq 1 ]; then
  ROLES+=("${NODE_C_ROLES[@]}")
  PODS+=(podC1)
fi
if [ "$MULTI_NODE" -eq 1 ]; then
  ROLES+=("${MULTI_NODE_ROLES[@]}")
  PODS+=("${MULTI_NODE_ECHO[@]}")
fi

case "$cmd" in
up) cmd_up ;;
down)
  need_root down
  check_prefix
  down_prefix "$PREFIX"
  echo "testbed ${PREFIX}* is down"
  ;;
status) cmd_status ;;
plan) print_plan ;;
gc) cmd_gc ;;
exec)
  need_root exec
  check_prefix
  [ -n "$ROLE" ] || die "exec needs a ROLE (${ROLES[*]})"
  [ $# -gt 0 ] || die "exec needs a command after --"
  [ -e "$(ns_path "$ROLE")" ] || die "no namespace ${PREFIX}${ROLE} (is the testbed up?)"
  exec nsenter --net="$(ns_path "$ROLE")" -- "$@"
  ;;
run)
  [ $# -gt 0 ] || die "run needs a command after --"
  up_args=(--prefix "$PREFIX" --port "$PORT" --transit-mtu "$TRANSIT_MTU")
  if [ "$NO_ECHO" -eq 1 ]; then
    up_args+=(--no-echo)
  elif [ -n "$ECHO_BIN" ]; then
    up_args+=(--echo "$ECHO_BIN")
  fi
  [ "$NODE_C" -eq 0 ] || up_args+=(--node-c)
  [ "$MULTI_NODE" -eq 0 ] || up_args+=(--multi-node)
  if [ "$NO_XDP_PASS" -eq 1 ]; then
    up_args+=(--no-xdp-pass)
  elif [ -n "$XDP_PASS_OBJ" ]; then
    up_args+=(--xdp-pass "$XDP_PASS_OBJ")
  fi
  "$SELF" up "${up_args[@]}" >/dev/null
  trap 'down_prefix "$PREFIX"' EXIT
  trap 'exit 130' INT TERM
  rc=0
  XLB_TESTBED_PREFIX=$PREFIX XLB_TESTBED_PORT=$PORT "$@" || rc=$?
  exit "$rc"
  ;;
*) usage ;;
esac
