// The TC side of the datapath (bpf/xlb_tc.bpf.c): xlb_tc on clsact ingress of the host side
// of each pod's veth, where it sees what pods send (replies to reverse-NAT or tunnel back,
// east-west calls to a VIP); xlb_tc_egress on clsact egress of the pods' veths and of the
// uplinks, where it reverse-NATs the answers no ingress hook met (routed from elsewhere, or
// made by this node's own stack). It shares every map and the runtime config with xlb_xdp.
#ifndef XLB_LOADER_TC_LOADER_H
#define XLB_LOADER_TC_LOADER_H

#include <cstdint>
#include <memory>
#include <string_view>

#include "loader/xdp_loader.h"
#include "util/result.h"

struct xlb_tc;  // generated skeleton (xlb_tc.skel.h)

namespace xlb {

// xlb_tc's one filter per interface, at a fixed handle and priority, so that a restarted agent
// finds and replaces its predecessor's filter instead of stacking a second one (and xlbctl
// finds it).
inline constexpr uint32_t kTcHandle = 0x786c62;  // "xlb"
inline constexpr uint32_t kTcPriority = 1;

// Which clsact hook: ingress runs xlb_tc, egress xlb_tc_egress.
enum class TcDirection { kIngress, kEgress };

// xlb_tc attached to one interface's clsact ingress (or xlb_tc_egress to its egress); detached by the destructor unless
// released. Like XdpAttachment it belongs to the network namespace that attached it: destroy
// or Detach() it there.
class TcAttachment {
 public:
  TcAttachment() = default;
  TcAttachment(TcAttachment&& other) noexcept;
  TcAttachment& operator=(TcAttachment&& other) noexcept;
  ~TcAttachment();
  TcAttachment(const TcAttachment&) = delete;
  TcAttachment& operator=(const TcAttachment&) = delete;

  bool attached() const { return ifindex_ != 0; }
  int ifindex() const { return ifindex_; }
  TcDirection direction() const { return direction_; }
  uint32_t prog_id() const { return prog_id_; }
  // Whether this attachment made the clsact qdisc (and so removes it again on detach).
  bool created_hook() const { return created_hook_; }

  // Removes our filter, but only while it still runs our program (a newer agent's stays),
  // then the clsact qdisc if we created it and nothing else is attached to it.
  Result<void> Detach();
  // Leaves the filter in place when this object goes (agent restarts).
  void release();

 private:
  friend Result<TcAttachment> AttachTc(int, int, TcDirection);
  int ifindex_ = 0;
  TcDirection direction_ = TcDirection::kIngress;
  uint32_t handle_ = 0;
  uint32_t priority_ = 0;
  uint32_t prog_id_ = 0;
  bool created_hook_ = false;
};

// Attaches prog_fd to ifindex's clsact ingress or egress (creating clsact when absent; a
// clsact that existed is left in place). An xlb filter already there (a previous agent's) is
// replaced.
Result<TcAttachment> AttachTc(int prog_fd, int ifindex,
                              TcDirection direction = TcDirection::kIngress);

// Removes the xlb_tc (ingress) or xlb_tc_egress (egress) filter from ifindex's clsact,
// whichever process attached it (xlbctl detach-tc). The clsact qdisc stays: others may use
// it. ENOENT when none is there; EPERM when the filter at xlb's handle runs another program.
Result<void> DetachTc(int ifindex, TcDirection direction = TcDirection::kIngress);

// The id of the program in the filter at xlb's handle and priority of ifindex's clsact ingress
// or egress; 0 when there is none (no such filter, or no clsact qdisc).
Result<uint32_t> QueryTc(int ifindex, TcDirection direction);

// The xlb_tc program, loaded against the maps of a loaded XdpDatapath.
class TcDatapath {
 public:
  // Every map of xlb_tc re-uses the XDP datapath's map of the same name (so conntrack, the
  // reply map, tables and counters are one state for both hooks), and its rodata gets the
  // same xlb_config. A map xlb_xdp does not have is an error: the two programs must agree.
  static Result<std::unique_ptr<TcDatapath>> Load(const XdpDatapath& xdp);
  ~TcDatapath();
  TcDatapath(const TcDatapath&) = delete;
  TcDatapath& operator=(const TcDatapath&) = delete;

  int prog_fd() const;         // xlb_tc
  int egress_prog_fd() const;  // xlb_tc_egress

  Result<TcAttachment> Attach(int ifindex,
                              TcDirection direction = TcDirection::kIngress) const {
    return AttachTc(direction == TcDirection::kIngress ? prog_fd() : egress_prog_fd(), ifindex,
                    direction);
  }
  Result<TcAttachment> Attach(std::string_view ifname,
                              TcDirection direction = TcDirection::kIngress) const;

 private:
  explicit TcDatapath(xlb_tc* skel) : skel_(skel) {}
  xlb_tc* skel_;
};

}  // namespace xlb

#endif  // XLB_LOADER_TC_LOADER_H
