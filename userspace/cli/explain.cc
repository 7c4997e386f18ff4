#include "userspace/cli/explain.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "maps/typed_map.h"
#include "maps/xlb_rules.h"
#include "userspace/cli/commands.h"
#include "userspace/cli/format.h"

namespace xlb::cli {

const char* DecisionName(Decision d) {
  switch (d) {
    case Decision::kNotAService:
      return "not_a_service";
    case Decision::kConntrackHit:
      return "conntrack_hit";
    case Decision::kMaglev:
      return "maglev";
    case Decision::kNoBackend:
      return "no_backend";
    case Decision::kNoTable:
      return "no_table";
    case Decision::kSourceRange:
      return "source_range_drop";
    case Decision::kReject:
      return "reject";
    case Decision::kAffinity:
      return "affinity";
  }
  return "?";
}

namespace {

// The VIP filter's word for daddr, as lb_maybe_vip() reads it.
Result<bool> InVipFilter(const PinnedDatapath& dp, const xlb_ct_key& key) {
  uint32_t word = 0;
  const uint64_t bit = xlb_vip_filter_pos(key.daddr, &word);
  auto bits =
      TypedMap<uint32_t, uint64_t>(dp.fd(XLB_MAP_VIP_FILTER), XLB_MAP_VIP_FILTER).Lookup(word);
  if (!bits.ok() && !bits.error().NotFound()) {
    return std::move(bits).take_error();
  }
  const __u64 word_bits = bits.ok() ? *bits : 0;
  return xlb_vip_filter_has(bits.ok() ? &word_bits : nullptr, bit) != 0;
}

// The service entry, as lb_lookup_service() finds it.
Result<void> FindService(const PinnedDatapath& dp, Explanation& e) {
  TypedMap<xlb_service_key, xlb_service> services(dp.fd(XLB_MAP_SERVICES), XLB_MAP_SERVICES);
  xlb_service_key key{};
  xlb_service_key_exact(&e.query.key, &key);
  for (bool exact : {true, false}) {
    if (!exact) {
      xlb_service_key_all_ports(&key);
    }
    auto s = services.Lookup(key);
    if (s.ok()) {
      e.service_key = key;
      e.service = *s;
      e.exact_match = exact;
      return {};
    }
    if (!s.error().NotFound()) {
      return std::move(s).take_error();
    }
  }
  return {};
}

// The conntrack entry and whether it carries the packet, as ct_lookup() decides.
Result<void> CheckConntrack(const PinnedDatapath& dp, const xlb_config* cfg, uint64_t now,
                            Explanation& e) {
  const xlb_ct_key& key = e.query.key;
  auto entry = TypedMap<xlb_ct_key, xlb_ct_value>(dp.fd(XLB_MAP_CT), XLB_MAP_CT).Lookup(key);
  // a TCP flow that missed there may be half-open, under the client's side of its tuple and
  // only if its REVNAT entry names this VIP and port; a SYN does not look, it opens a flow
  // (bpf/lib/lb.h, ct_lookup)
  if (!entry.ok() && entry.error().NotFound() &&
      xlb_ct_seeks_half_open(key.proto, e.query.tcp_flags) &&
      dp.Find(XLB_MAP_CT_HALF_OPEN) != nullptr) {
    xlb_half_key hkey{};
    xlb_half_key_of(&key, &hkey);
    auto half =
        TypedMap<xlb_half_key, xlb_half_open>(dp.fd(XLB_MAP_CT_HALF_OPEN), XLB_MAP_CT_HALF_OPEN)
            .Lookup(hkey);
    if (!half.ok() && !half.error().NotFound()) {
      return std::move(half).take_error();
    }
    if (half.ok() && xlb_half_is_flow(&*half, &key)) {
      entry = half->ct;
    }
  }
  if (!entry.ok()) {
    if (entry.error().NotFound()) {
      return {};
    }
    return std::move(entry).take_error();
  }
  ConntrackView v;
  v.entry = *entry;
  v.age_s = v.entry.last_seen >= now ? 0 : static_cast<double>(now - v.entry.last_seen) / 1e9;
  const auto be = e.backends.find(v.entry.backend_id);
  const enum xlb_ct_fate fate =
      cfg != nullptr
          ? xlb_ct_check(cfg, key.proto, v.entry.state, v.entry.last_seen, e.query.tcp_flags, now)
          : XLB_CT_KEEP;  // without the timeouts, only the backend is judged
  if (fate == XLB_CT_EXPIRED) {
    v.stale = ConntrackView::Stale::kExpired;
    v.stale_because = "idle " + AgeText(v.age_s) + ", past its " +
                      std::to_string(xlb_ct_timeout_s(cfg, key.proto, v.entry.state)) + "s timeout";
  } else if (fate == XLB_CT_REOPENED) {
    v.stale = ConntrackView::Stale::kReopened;
    v.stale_because = "a new SYN on a closing tuple";
  } else if (!xlb_backend_usable(be != e.backends.end() ? &be->second : nullptr)) {
    v.stale = ConntrackView::Stale::kBackendInvalid;
    v.stale_because = "its backend is no longer valid";
  }
  if (v.stale == ConntrackView::Stale::kNo) {
    e.decision = Decision::kConntrackHit;
    e.backend_id = v.entry.backend_id;
  }
  e.conntrack = v;
  return {};
}

// The source-range check, as lb_source_allowed() makes it: false when the packet drops.
Result<bool> CheckSourceRange(const PinnedDatapath& dp, bool established, Explanation& e) {
  const xlb_service& svc = *e.service;
  if (!(svc.flags & XLB_SVC_F_SOURCE_RANGES)) {
    return true;
  }
  xlb_src_range_key key{};
  xlb_src_range_lookup_key(&e.query.key, svc.id, &key);
  // A lookup in an LPM trie finds the longest prefix that holds the address, as in the kernel.
  auto hit = TypedMap<xlb_src_range_key, uint8_t>(dp.fd(XLB_MAP_SRC_RANGES), XLB_MAP_SRC_RANGES)
                 .Lookup(key);
  if (!hit.ok() && !hit.error().NotFound()) {
    return std::move(hit).take_error();
  }
  e.source_range = SourceRangeView{.allowed = hit.ok(), .established = established};
  if (!hit.ok()) {
    e.decision = Decision::kSourceRange;
    e.backend_id = XLB_ID_NONE;
  }
  return hit.ok();
}

// The client's ClientIP affinity entry, as lb_select_backend() reads it.
Result<void> CheckAffinity(const PinnedDatapath& dp, uint64_t now, Explanation& e) {
  const xlb_service& svc = *e.service;
  if (!(svc.flags & XLB_SVC_F_AFFINITY)) {
    return {};
  }
  xlb_affinity_key key{};
  xlb_affinity_key_of(&e.query.key, svc.id, &key);
  auto entry = TypedMap<xlb_affinity_key, xlb_affinity>(dp.fd(XLB_MAP_AFFINITY), XLB_MAP_AFFINITY)
                   .Lookup(key);
  if (!entry.ok()) {
    return entry.error().NotFound() ? Result<void>{} : std::move(entry).take_error();
  }
  AffinityView v;
  v.entry = *entry;
  v.age_s = v.entry.last_seen >= now ? 0 : static_cast<double>(now - v.entry.last_seen) / 1e9;
  const xlb_affinity_match_key match{.service_id = svc.id, .backend_id = v.entry.backend_id};
  auto matched = TypedMap<xlb_affinity_match_key, uint8_t>(dp.fd(XLB_MAP_AFFINITY_MATCH),
                                                           XLB_MAP_AFFINITY_MATCH)
                     .Lookup(match);
  if (!matched.ok() && !matched.error().NotFound()) {
    return std::move(matched).take_error();
  }
  const auto be = e.backends.find(v.entry.backend_id);
  if (!xlb_affinity_fresh(&svc, v.entry.last_seen, now)) {
    v.not_because = "idle " + AgeText(v.age_s) + ", past the service's " +
                    std::to_string(svc.affinity_timeout) + "s timeout";
  } else if (!matched.ok()) {
    v.not_because = "its backend no longer takes the service's new flows (not in " +
                    std::string(XLB_MAP_AFFINITY_MATCH) + ")";
  } else if (!xlb_backend_usable(be != e.backends.end() ? &be->second : nullptr)) {
    v.not_because = "its backend is no longer valid";
  }
  v.binds = v.not_because.empty();
  if (v.binds) {
    e.decision = Decision::kAffinity;
    e.backend_id = v.entry.backend_id;
  }
  e.affinity = std::move(v);
  return {};
}

// A new flow (or one selected again), as lb_select() and the backend check after it decide.
Result<void> Select(const PinnedDatapath& dp, const xlb_config& cfg, Explanation& e) {
  const xlb_service& svc = *e.service;
  MaglevView m;
  m.table = SharesOf(dp, svc.id, e.backends);
  if (!m.table.error.empty()) {
    return Error{EIO, m.table.error};
  }
  if (!m.table.installed) {
    e.decision = Decision::kNoTable;
    return {};
  }
  m.affinity = (svc.flags & XLB_SVC_F_AFFINITY) != 0;
  m.hash = xlb_select_hash(&e.query.key, svc.flags, cfg.hash_seed);
  m.slot = xlb_select_slot(m.hash, cfg.maglev_size);
  m.backend_id = m.slot < m.table.slots.size() ? m.table.slots[m.slot] : XLB_ID_NONE;
  const auto be = e.backends.find(m.backend_id);
  if (m.backend_id != XLB_ID_NONE &&
      xlb_backend_usable(be != e.backends.end() ? &be->second : nullptr)) {
    e.decision = Decision::kMaglev;
    e.backend_id = m.backend_id;
  } else {
    e.decision = Decision::kNoBackend;
  }
  e.maglev = std::move(m);
  return {};
}

}  // namespace

Result<Explanation> ExplainPacket(const PinnedDatapath& dp, const xlb_config* config,
                                  const ExplainQuery& query, uint64_t now) {
  Explanation e;
  e.query = query;
  if (query.key.proto != IPPROTO_TCP) {
    e.query.tcp_flags = 0;  // the datapath reads flags from TCP headers only
  }
  if (config != nullptr) {
    e.config = *config;
  }
  XLB_ASSIGN_OR_RETURN(auto backends, dp.Backends());
  e.backends = std::move(backends);
  XLB_TRY(FindService(dp, e));
  XLB_ASSIGN_OR_RETURN(auto in_filter, InVipFilter(dp, query.key));
  e.in_vip_filter = in_filter;
  if (!e.in_vip_filter) {
    return e;  // passed before conntrack is looked at
  }
  XLB_TRY(CheckConntrack(dp, config, now, e));
  if (e.decision == Decision::kConntrackHit) {
    // a flow begun under source ranges: its key is looked up and checked again
    if (e.service && (e.conntrack->entry.flags & XLB_CT_F_SOURCE_RANGES)) {
      XLB_TRY(CheckSourceRange(dp, /*established=*/true, e));
    }
    return e;
  }
  if (!e.service) {
    return e;
  }
  XLB_ASSIGN_OR_RETURN(const bool allowed, CheckSourceRange(dp, /*established=*/false, e));
  if (!allowed) {
    return e;
  }
  if (e.service->backend_count == 0) {
    e.decision = xlb_svc_rejects(&*e.service) ? Decision::kReject : Decision::kNoBackend;
    return e;
  }
  XLB_TRY(CheckAffinity(dp, now, e));
  if (config == nullptr) {
    e.config_missing = e.decision != Decision::kAffinity;
    return e;
  }
  if (e.decision == Decision::kAffinity) {
    // What the table alone would give the client (shown beside the affinity's choice): the
    // backend it moves to once its entry has aged out.
    const uint32_t bound = e.backend_id;
    XLB_TRY(Select(dp, *config, e));
    e.decision = Decision::kAffinity;
    e.backend_id = bound;
    return e;
  }
  XLB_TRY(Select(dp, *config, e));
  return e;
}

namespace {

struct Rendered {
  json doc;
  std::vector<std::string> lines;
};

std::string BackendText(const Explanation& e, uint32_t id) {
  auto it = e.backends.find(id);
  if (it == e.backends.end()) {
    return "backend " + std::to_string(id) + " (not in " XLB_MAP_BACKENDS ")";
  }
  const xlb_backend& b = it->second;
  return "backend " + std::to_string(id) + " (" + HostPort(b.addr, b.family, ntohs(b.port)) +
         ", cluster " + std::to_string(b.cluster_id) + ", " + BackendPath(b) + ")";
}

json BackendOf(const Explanation& e, uint32_t id) {
  auto it = e.backends.find(id);
  return it == e.backends.end() ? json{{"id", id}} : BackendJson(id, it->second);
}

// `src` and `dst` as the user wrote them; `flags` the --tcp-flags text, empty when not given.
Rendered Render(const Explanation& e, const std::string& src, const std::string& dst,
                const std::string& flags) {
  Rendered out;
  json& doc = out.doc;
  std::vector<std::string>& lines = out.lines;
  const xlb_ct_key& key = e.query.key;
  const std::string proto = ProtoName(key.proto);
  const uint16_t sport = ntohs(key.sport), dport = ntohs(key.dport);
  doc["flow"] = {{"proto", proto}, {"src", src}, {"sport", sport}, {"dst", dst}, {"dport", dport}};
  if (!flags.empty()) {
    doc["flow"]["tcp_flags"] = flags;
  }
  lines.push_back("flow:      " + proto + " " + HostPort(key.saddr, key.family, sport) + " -> " +
                  HostPort(key.daddr, key.family, dport) +
                  (flags.empty() ? "" : " [" + flags + "]"));

  if (e.service) {
    const xlb_service& svc = *e.service;
    const std::string match = e.exact_match ? "exact" : "all_ports";
    doc["service"] = {{"id", svc.id},
                      {"key", ServiceKeyText(*e.service_key)},
                      {"match", match},
                      {"flags", ServiceFlagsJson(svc)},
                      {"affinity_timeout", svc.affinity_timeout},
                      {"backend_count", svc.backend_count}};
    lines.push_back("service:   " + std::to_string(svc.id) + " (" + ServiceKeyText(*e.service_key) +
                    ", " + (e.exact_match ? "exact port" : "all-ports entry") + "), " +
                    std::to_string(svc.backend_count) + " backends, flags " +
                    ServiceFlagsText(svc));
  } else {
    doc["service"] = nullptr;
  }
  if (!e.in_vip_filter) {
    doc["vip_filter"] = false;
  }

  if (e.conntrack) {
    const ConntrackView& v = *e.conntrack;
    const bool usable = v.stale_because.empty();
    doc["conntrack"] = {{"backend_id", v.entry.backend_id},
                        {"service_id", v.entry.service_id},
                        {"state", CtStateName(v.entry.state)},
                        {"age_s", v.age_s},
                        {"usable", usable},
                        {"stale_because", usable ? json() : json(v.stale_because)}};
    if (usable) {
      lines.push_back(
          "conntrack: hit -> " + BackendText(e, v.entry.backend_id) + ", state " +
          CtStateName(v.entry.state) + ", age " + AgeText(v.age_s) +
          (v.entry.state == XLB_CT_CLOSING ? " (a new SYN on this tuple selects again)" : ""));
    } else {
      lines.push_back("conntrack: stale entry (" + BackendText(e, v.entry.backend_id) + ", " +
                      v.stale_because + "): the next packet selects again");
    }
  } else {
    doc["conntrack"] = nullptr;
  }

  doc["decision"] = DecisionName(e.decision);
  if (e.backend_id != XLB_ID_NONE) {
    doc["backend"] = BackendOf(e, e.backend_id);
  }
  if (!e.in_vip_filter) {
    lines.push_back("not a service: " + AddrText(key.daddr, key.family) +
                    " has no bit in the VIP filter; the datapath passes it (pass_no_service)");
    return out;
  }
  if (e.source_range) {
    const SourceRangeView& r = *e.source_range;
    doc["source_range"] = {{"allowed", r.allowed}, {"established", r.established}};
    lines.push_back("source:    " + AddrText(key.saddr, key.family) +
                    (r.allowed ? " is in " : " is in none of ") +
                    "the service's loadBalancerSourceRanges" +
                    (r.established ? " (checked again: the flow began under them)" : "") +
                    (r.allowed ? "" : ": the packet drops (drop_source_range)"));
  }
  if (e.decision == Decision::kConntrackHit || e.decision == Decision::kSourceRange) {
    return out;
  }
  if (!e.service) {
    lines.push_back("not a service: no entry for " + HostPort(key.daddr, key.family, dport) + "/" +
                    proto +
                    " nor for its all-ports form; the datapath passes it (pass_no_service)");
    return out;
  }
  if (e.decision == Decision::kReject) {
    lines.push_back(
        "no endpoint, reject: a new flow is answered with ICMP port unreachable from the VIP "
        "(fwd_reject), or dropped where the hook cannot answer, a VLAN-tagged frame or a GSO "
        "aggregate (drop_reject)");
    return out;
  }
  if (e.affinity) {
    const AffinityView& a = *e.affinity;
    doc["affinity"] = {{"backend_id", a.entry.backend_id},
                       {"age_s", a.age_s},
                       {"timeout_s", e.service->affinity_timeout},
                       {"binds", a.binds},
                       {"not_because", a.binds ? json() : json(a.not_because)}};
    if (a.binds) {
      lines.push_back("affinity:  the client's entry -> " + BackendText(e, a.entry.backend_id) +
                      ", last new flow " + AgeText(a.age_s) + " ago (timeout " +
                      std::to_string(e.service->affinity_timeout) +
                      "s): a new flow goes there, and the entry is refreshed");
      if (e.maglev && e.maglev->backend_id != XLB_ID_NONE) {
        doc["affinity"]["table_backend"] = BackendOf(e, e.maglev->backend_id);
        lines.push_back("           the table alone gives Maglev slot " +
                        std::to_string(e.maglev->slot) + " -> " +
                        BackendText(e, e.maglev->backend_id) +
                        ": where the client goes once its entry has aged out");
      }
      return out;
    }
    lines.push_back("affinity:  the client's entry (" + BackendText(e, a.entry.backend_id) +
                    ") does not bind: " + a.not_because +
                    "; Maglev selects and the entry names its choice");
  }
  if (!e.maglev) {
    lines.push_back(e.decision == Decision::kNoTable
                        ? "no Maglev table for service " + std::to_string(e.service->id) +
                              ": new flows drop (drop_no_table)"
                        : "no backend: the service has none; new flows drop (drop_no_backend)");
    return out;
  }
  const MaglevView& m = *e.maglev;
  const xlb_config& cfg = *e.config;
  const char* hash_fn = m.affinity ? "xlb_hash_client" : "xlb_hash_flow";
  json mj{{"hash_fn", hash_fn},
          {"hash", m.hash},
          {"seed", cfg.hash_seed},
          {"maglev_size", cfg.maglev_size},
          {"slot", m.slot},
          {"table_size", m.table.size},
          {"backend_id", m.backend_id}};
  std::string line = "no conntrack entry: " + std::string(hash_fn) + "(seed " +
                     Hex32(cfg.hash_seed) + ") = " + Hex32(m.hash) + " -> Maglev slot " +
                     std::to_string(m.slot) + " of " + std::to_string(cfg.maglev_size) + " -> ";
  if (m.backend_id == XLB_ID_NONE) {
    lines.push_back(line + "an empty slot: the flow drops (drop_no_backend)");
  } else if (e.decision == Decision::kNoBackend) {
    lines.push_back(line + BackendText(e, m.backend_id) +
                    ", which is not valid: the flow drops (drop_no_backend)");
  } else {
    auto it = e.backends.find(m.backend_id);
    const uint16_t cluster = it != e.backends.end() ? it->second.cluster_id : 0;
    const TableShares& sh = m.table;
    const uint32_t be_slots =
        sh.per_backend.count(m.backend_id) ? sh.per_backend.at(m.backend_id) : 0;
    const uint32_t cl_slots = sh.per_cluster.count(cluster) ? sh.per_cluster.at(cluster) : 0;
    mj["backend_slots"] = be_slots;
    mj["backend_share"] = sh.Pct(be_slots);
    mj["cluster_id"] = cluster;
    mj["cluster_share"] = sh.Pct(cl_slots);
    lines.push_back(line + BackendText(e, m.backend_id));
    lines.push_back("           backend " + std::to_string(m.backend_id) + " holds " +
                    std::to_string(be_slots) + " slots (" + Percent(sh.Pct(be_slots)) +
                    "), cluster " + std::to_string(cluster) + " holds " +
                    Percent(sh.Pct(cl_slots)) + " of the table");
    if (cfg.maglev_size != sh.size) {
      lines.push_back("warning: the table has " + std::to_string(sh.size) +
                      " slots but the program's maglev_size is " + std::to_string(cfg.maglev_size));
    }
  }
  doc["maglev"] = mj;
  return out;
}

// "syn", "syn,ack", "fin", "none": the flags of the packet to explain.
bool ParseTcpFlags(const std::string& text, uint8_t& flags) {
  static const std::pair<const char*, uint8_t> kNames[] = {
      {"fin", XLB_TCP_FIN}, {"syn", XLB_TCP_SYN}, {"rst", XLB_TCP_RST},
      {"psh", 0x08},        {"ack", XLB_TCP_ACK}, {"urg", 0x20},
  };
  flags = 0;
  if (text == "none") {
    return true;
  }
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, end - start);
    bool known = false;
    for (const auto& [n, bit] : kNames) {
      if (name == n) {
        flags |= bit;
        known = true;
      }
    }
    if (!known) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

int Explain(const InspectOptions& o) {
  if (o.positional.size() != 5) {
    std::fprintf(stderr, "xlbctl: explain needs PROTO SRC SPORT DST DPORT\n");
    return 2;
  }
  ExplainQuery q;
  xlb_ct_key& key = q.key;
  const std::string& proto = o.positional[0];
  if (proto == "tcp") {
    key.proto = IPPROTO_TCP;
  } else if (proto == "udp") {
    key.proto = IPPROTO_UDP;
  } else {
    std::fprintf(stderr, "xlbctl: explain: protocol %s: tcp or udp\n", proto.c_str());
    return 2;
  }
  auto port = [](const std::string& text, uint16_t& out) {
    char* end = nullptr;
    const unsigned long v = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v > 65535) {
      return false;
    }
    out = static_cast<uint16_t>(v);
    return true;
  };
  uint16_t sport = 0, dport = 0;
  if (!port(o.positional[2], sport) || !port(o.positional[4], dport)) {
    std::fprintf(stderr, "xlbctl: explain: ports are numbers 0-65535\n");
    return 2;
  }
  const std::string& src = o.positional[1];
  const std::string& dst = o.positional[3];
  if (inet_pton(AF_INET, src.c_str(), key.saddr) == 1 &&
      inet_pton(AF_INET, dst.c_str(), key.daddr) == 1) {
    key.family = XLB_FAMILY_IPV4;
  } else if (inet_pton(AF_INET6, src.c_str(), key.saddr) == 1 &&
             inet_pton(AF_INET6, dst.c_str(), key.daddr) == 1) {
    key.family = XLB_FAMILY_IPV6;
  } else {
    std::fprintf(stderr, "xlbctl: explain: %s and %s are not two IPv4 or two IPv6 addresses\n",
                 src.c_str(), dst.c_str());
    return 2;
  }
  key.sport = htons(sport);
  key.dport = htons(dport);
  // Without --tcp-flags: a packet of an open connection (an ACK), which keeps a closing entry.
  q.tcp_flags = XLB_TCP_ACK;
  if (!o.tcp_flags.empty() && !ParseTcpFlags(o.tcp_flags, q.tcp_flags)) {
    std::fprintf(stderr,
                 "xlbctl: explain: --tcp-flags %s: a list of syn, ack, fin, rst, psh, urg, or "
                 "none\n",
                 o.tcp_flags.c_str());
    return 2;
  }

  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  const Runtime rt = FindRuntime(*dp);
  // A plain pointer, not an optional: g++ 12 warns about reads of a checked optional here.
  const xlb_config* cfg = rt.chosen ? &*rt.chosen->config : nullptr;
  auto e = ExplainPacket(*dp, cfg, q, MonotonicNowNs());
  if (!e.ok()) {
    return Fail(e.error());
  }
  if (e->config_missing) {
    return Fail("no loaded program uses the maps under " + o.pin_dir +
                ", so the hash seed and Maglev size to predict with are unknown" +
                (rt.error.empty() ? "" : " (" + rt.error + ")"));
  }
  const Rendered r = Render(*e, src, dst, o.tcp_flags);
  if (o.json) {
    PrintJson(r.doc);
  } else {
    PrintLines(r.lines);
  }
  return 0;
}

}  // namespace xlb::cli
