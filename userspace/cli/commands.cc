// status, services, backends, stats, conntrack, explain: read the pinned maps, print.
#include "userspace/cli/commands.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "loader/reasons.h"
#include "maps/typed_map.h"
#include "userspace/cli/format.h"
#include "userspace/cli/pinned_datapath.h"
#include "userspace/cli/table.h"
#include "userspace/planner/flow_slot.h"

namespace xlb::cli {
namespace {

using json = nlohmann::ordered_json;
using Align = Table::Align;

int Fail(const Error& e) {
  std::fprintf(stderr, "xlbctl: %s\n", e.ToString().c_str());
  return 1;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "xlbctl: %s\n", message.c_str());
  return 1;
}

void PrintJson(const json& doc) {
  std::printf("%s\n", doc.dump(2).c_str());
}

std::string N(uint64_t v) {
  return std::to_string(v);
}

// "198.18.100.10:8080/tcp"; port 0 is the all-ports form: "198.18.100.10:*/tcp".
std::string ServiceKeyText(const xlb_service_key& k) {
  const uint16_t port = ntohs(k.port);
  const std::string a = AddrText(k.addr, k.family);
  return (k.family == XLB_FAMILY_IPV6 ? "[" + a + "]" : a) + ":" +
         (port == 0 ? std::string("*") : std::to_string(port)) + "/" + ProtoName(k.proto);
}

json ServiceFlagsJson(const xlb_service& s) {
  json flags = json::array();
  if (s.flags & XLB_SVC_F_AFFINITY) {
    flags.push_back("affinity");
  }
  if (s.flags & XLB_SVC_F_NODE_PORT) {
    flags.push_back("node_port");
  }
  return flags;
}

std::string ServiceFlagsText(const xlb_service& s) {
  std::string text;
  if (s.flags & XLB_SVC_F_AFFINITY) {
    text = "affinity(" + std::to_string(s.affinity_timeout) + "s)";
  }
  if (s.flags & XLB_SVC_F_NODE_PORT) {
    text += text.empty() ? "node_port" : ",node_port";
  }
  return text.empty() ? "-" : text;
}

std::string BackendPath(const xlb_backend& b) {
  if (b.flags & XLB_BE_F_TUNNEL) {
    return "tunnel " + AddrText(b.tunnel, b.tunnel_family);
  }
  return "routed";
}

std::string BackendFlagsText(const xlb_backend& b) {
  std::string out;
  if (b.flags & XLB_BE_F_VALID) {
    out += "valid";
  } else {
    out += "invalid";
  }
  if (b.flags & XLB_BE_F_TUNNEL) {
    out += ",tunnel";
  }
  return out;
}

json BackendJson(uint32_t id, const xlb_backend& b) {
  json j;
  j["id"] = id;
  j["address"] = AddrText(b.addr, b.family);
  j["port"] = ntohs(b.port);
  j["family"] = b.family == XLB_FAMILY_IPV6 ? "ipv6" : "ipv4";
  j["cluster_id"] = b.cluster_id;
  j["valid"] = (b.flags & XLB_BE_F_VALID) != 0;
  j["path"] = (b.flags & XLB_BE_F_TUNNEL) ? "tunnel" : "routed";
  j["tunnel"] = (b.flags & XLB_BE_F_TUNNEL) ? json(AddrText(b.tunnel, b.tunnel_family)) : json();
  j["flags"] = b.flags;
  return j;
}

json CounterJson(const xlb_flow_counter& c) {
  return json{{"packets", c.packets}, {"bytes", c.bytes}, {"new_flows", c.new_flows}};
}

// How a service's Maglev table divides its slots.
struct TableShares {
  bool installed = false;
  std::string error;  // set when the table could not be read (other than "not installed")
  uint32_t size = 0;
  uint32_t empty = 0;
  std::map<uint32_t, uint32_t> per_backend;  // backend id -> slots
  std::map<uint16_t, uint32_t> per_cluster;  // cluster id -> slots
  std::vector<uint32_t> slots;

  double Pct(uint32_t n) const { return size == 0 ? 0 : 100.0 * n / size; }
};

TableShares SharesOf(const PinnedDatapath& dp, uint32_t service_id,
                     const std::map<uint32_t, xlb_backend>& backends) {
  TableShares t;
  auto table = dp.Table(service_id);
  if (!table.ok()) {
    if (!table.error().NotFound()) {
      t.error = table.error().ToString();
    }
    return t;
  }
  t.installed = true;
  t.size = static_cast<uint32_t>(table->size());
  for (uint32_t id : *table) {
    if (id == XLB_ID_NONE) {
      ++t.empty;
      continue;
    }
    ++t.per_backend[id];
    auto it = backends.find(id);
    ++t.per_cluster[it != backends.end() ? it->second.cluster_id : 0];
  }
  t.slots = std::move(*table);
  return t;
}

json SharesJson(const TableShares& t) {
  json j;
  j["installed"] = t.installed;
  if (!t.error.empty()) {
    j["error"] = t.error;
  }
  if (!t.installed) {
    return j;
  }
  j["size"] = t.size;
  j["empty_slots"] = t.empty;
  json clusters = json::array();
  for (const auto& [cluster, n] : t.per_cluster) {
    clusters.push_back({{"cluster_id", cluster}, {"slots", n}, {"share", t.Pct(n)}});
  }
  j["clusters"] = clusters;
  json bes = json::array();
  for (const auto& [id, n] : t.per_backend) {
    bes.push_back({{"backend_id", id}, {"slots", n}, {"share", t.Pct(n)}});
  }
  j["backends"] = bes;
  return j;
}

std::string ClusterSharesText(const TableShares& t) {
  if (!t.error.empty()) {
    return "unreadable";
  }
  if (!t.installed) {
    return "no table";
  }
  std::string out;
  for (const auto& [cluster, n] : t.per_cluster) {
    if (!out.empty()) {
      out += "  ";
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "c%u %.1f%%", static_cast<unsigned>(cluster), t.Pct(n));
    out += buf;
  }
  return out.empty() ? "empty" : out;
}

std::string BackendSlotsText(const TableShares& t) {
  std::string out;
  for (const auto& [id, n] : t.per_backend) {
    if (!out.empty()) {
      out += " ";
    }
    out += std::to_string(id) + ":" + std::to_string(n);
  }
  return out.empty() ? "-" : out;
}

json ConfigJson(const xlb_config& c) {
  json j;
  j["maglev_size"] = c.maglev_size;
  j["hash_seed"] = c.hash_seed;
  j["hash_seed_hex"] = Hex32(c.hash_seed);
  j["ct_tcp_timeout_s"] = c.ct_tcp_timeout_s;
  j["ct_syn_timeout_s"] = c.ct_syn_timeout_s;
  j["ct_udp_timeout_s"] = c.ct_udp_timeout_s;
  j["ct_close_timeout_s"] = c.ct_close_timeout_s;
  __be32 v4[4] = {c.tunnel_addr4, 0, 0, 0};
  static const __be32 kZero[4] = {};
  j["tunnel_addr4"] = c.tunnel_addr4 != 0 ? json(AddrText(v4, XLB_FAMILY_IPV4)) : json();
  j["tunnel_addr6"] = std::memcmp(c.tunnel_addr6, kZero, sizeof(kZero)) != 0
                          ? json(AddrText(c.tunnel_addr6, XLB_FAMILY_IPV6))
                          : json();
  j["encap"] = EncapName(c.encap);
  j["vxlan_port"] = ntohs(c.vxlan_port);
  j["gue_port"] = ntohs(c.gue_port);
  j["vni"] = c.vni;
  j["tunnel_mtu"] = c.tunnel_mtu;
  char mac[24];
  std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", c.vtep_mac[0], c.vtep_mac[1],
                c.vtep_mac[2], c.vtep_mac[3], c.vtep_mac[4], c.vtep_mac[5]);
  j["vtep_mac"] = mac;
  return j;
}

// Programs, their attachments, and the config to go by; problems finding them are not fatal.
struct Runtime {
  std::vector<ProgramConfig> programs;
  std::vector<Attachment> attachments;
  std::optional<ProgramConfig> chosen;
  std::string error;
};

Runtime FindRuntime(const PinnedDatapath& dp) {
  Runtime r;
  auto programs = dp.Programs();
  if (!programs.ok()) {
    r.error = programs.error().ToString();
    return r;
  }
  r.programs = std::move(*programs);
  r.attachments = FindAttachments(r.programs);
  r.chosen = PinnedDatapath::ConfigOf(r.programs, r.attachments);
  return r;
}

const char* MapTypeName(uint32_t type) {
  const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return s != nullptr ? s : "?";
}

// Installed tables: one lookup per service id of the outer array.
uint32_t CountTables(const PinnedDatapath& dp) {
  const PinnedMap* m = dp.Find(XLB_MAP_MAGLEV);
  if (m == nullptr) {
    return 0;
  }
  uint32_t n = 0;
  for (uint32_t id = 0; id < m->info.max_entries; ++id) {
    uint32_t inner = 0;
    if (bpf_map_lookup_elem(m->fd.get(), &id, &inner) == 0) {
      ++n;
    }
  }
  return n;
}

}  // namespace

int Status(const InspectOptions& o) {
  auto dp = PinnedDatapath::Open(o.pin_dir, /*require_all=*/false);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  json occ;
  std::map<std::string, json> entries;  // map name -> entry count, where it means something
  size_t service_ids = 0;
  if (dp->Find(XLB_MAP_SERVICES)) {
    auto s = dp->Services();
    if (!s.ok()) {
      return Fail(s.error());
    }
    std::set<uint32_t> ids;
    for (const auto& [k, v] : *s) {
      ids.insert(v.id);
    }
    service_ids = ids.size();
    entries[XLB_MAP_SERVICES] = s->size();
    occ["service_entries"] = s->size();
    occ["service_ids"] = service_ids;
  }
  if (const PinnedMap* m = dp->Find(XLB_MAP_BACKENDS)) {
    auto b = dp->Backends();
    if (!b.ok()) {
      return Fail(b.error());
    }
    size_t valid = 0;
    for (const auto& [id, be] : *b) {
      valid += (be.flags & XLB_BE_F_VALID) ? 1 : 0;
    }
    entries[XLB_MAP_BACKENDS] = b->size();
    occ["backends_valid"] = valid;
    occ["backends_invalid"] = b->size() - valid;
    occ["backends_max"] = m->info.max_entries;
  }
  if (const PinnedMap* m = dp->Find(XLB_MAP_MAGLEV)) {
    const uint32_t tables = CountTables(*dp);
    entries[XLB_MAP_MAGLEV] = tables;
    occ["maglev_tables"] = tables;
    occ["services_max"] = m->info.max_entries;
  }
  if (const PinnedMap* m = dp->Find(XLB_MAP_CT)) {
    auto ct = dp->Conntrack();
    if (!ct.ok()) {
      return Fail(ct.error());
    }
    entries[XLB_MAP_CT] = ct->size();
    occ["conntrack_entries"] = ct->size();
    occ["conntrack_max"] = m->info.max_entries;
  }
  if (const PinnedMap* m = dp->Find(XLB_MAP_REPLY)) {
    auto r = dp->Replies();
    if (!r.ok()) {
      return Fail(r.error());
    }
    entries[XLB_MAP_REPLY] = r->size();
    occ["reply_entries"] = r->size();
    occ["reply_max"] = m->info.max_entries;
  }
  Runtime rt;
  if (dp->Find(XLB_MAP_SERVICES)) {
    rt = FindRuntime(*dp);
  }

  json maps = json::array();
  for (const PinnedMap& m : dp->maps()) {
    json j;
    j["name"] = m.name;
    j["path"] = m.path;
    j["pinned"] = m.fd.valid();
    if (m.fd.valid()) {
      j["id"] = m.info.id;
      j["type"] = MapTypeName(m.info.type);
      j["entries"] = entries.count(m.name) ? entries[m.name] : json();
      j["max_entries"] = m.info.max_entries;
    } else {
      j["error"] = m.error;
    }
    maps.push_back(j);
  }
  json programs = json::array();
  for (const ProgramConfig& p : rt.programs) {
    json j{{"id", p.prog_id}, {"name", p.name}};
    j["rodata_map"] = p.rodata_map.empty() ? json() : json(p.rodata_map);
    j["config"] = p.config ? ConfigJson(*p.config) : json();
    programs.push_back(j);
  }
  json attachments = json::array();
  for (const Attachment& a : rt.attachments) {
    attachments.push_back({{"interface", a.ifname},
                           {"ifindex", a.ifindex},
                           {"hook", a.hook},
                           {"prog_id", a.prog_id}});
  }

  if (o.json) {
    json doc;
    doc["pin_dir"] = o.pin_dir;
    doc["maps"] = maps;
    doc["occupancy"] = occ;
    doc["programs"] = programs;
    doc["config"] = rt.chosen ? ConfigJson(*rt.chosen->config) : json();
    doc["config_from_prog_id"] = rt.chosen ? json(rt.chosen->prog_id) : json();
    doc["attachments"] = attachments;
    if (!rt.error.empty()) {
      doc["programs_error"] = rt.error;
    }
    PrintJson(doc);
    return 0;
  }

  std::printf("pin dir: %s\n\n", o.pin_dir.c_str());
  Table mt({{"MAP"},
            {"PINNED"},
            {"ID", Align::kRight},
            {"TYPE"},
            {"ENTRIES", Align::kRight},
            {"MAX", Align::kRight}});
  for (const json& m : maps) {
    if (!m["pinned"].get<bool>()) {
      mt.Add({m["name"], "missing"});
      continue;
    }
    mt.Add({m["name"], "yes", N(m["id"].get<uint32_t>()), m["type"],
            m["entries"].is_null() ? "-" : N(m["entries"].get<uint64_t>()),
            N(m["max_entries"].get<uint32_t>())});
  }
  mt.Print();

  std::printf("\n");
  Table ot({{"OCCUPANCY"}, {"IN USE", Align::kRight}, {"OF", Align::kRight}});
  auto row = [&](const char* what, const char* used, const char* max) {
    if (occ.contains(used)) {
      ot.Add({what, N(occ[used].get<uint64_t>()),
              max != nullptr && occ.contains(max) ? N(occ[max].get<uint64_t>()) : ""});
    }
  };
  row("service entries (VIP, port, proto)", "service_entries", nullptr);
  row("service ids", "service_ids", "services_max");
  row("Maglev tables installed", "maglev_tables", "services_max");
  row("backends valid", "backends_valid", "backends_max");
  row("backends invalidated", "backends_invalid", "backends_max");
  row("conntrack entries", "conntrack_entries", "conntrack_max");
  row("reply entries", "reply_entries", "reply_max");
  ot.Print();

  std::printf("\n");
  if (!rt.error.empty()) {
    std::printf("programs: %s\n", rt.error.c_str());
  } else if (rt.programs.empty()) {
    std::printf("programs: none loaded uses these maps (the pins outlive the programs)\n");
  } else {
    Table pt({{"PROGRAM"}, {"ID", Align::kRight}, {"RODATA"}, {"ATTACHED"}});
    for (const ProgramConfig& p : rt.programs) {
      std::string where;
      for (const Attachment& a : rt.attachments) {
        if (a.prog_id == p.prog_id) {
          where += (where.empty() ? "" : ", ") + a.ifname + " (" + a.hook + ")";
        }
      }
      pt.Add({p.name, N(p.prog_id), p.rodata_map.empty() ? "-" : p.rodata_map,
              where.empty() ? "-" : where});
    }
    pt.Print();
  }
  if (rt.chosen) {
    const xlb_config& c = *rt.chosen->config;
    const json cj = ConfigJson(c);
    std::printf("\nruntime config (rodata of program %u):\n", rt.chosen->prog_id);
    Table ct({{"KNOB"}, {"VALUE"}});
    ct.Add({"maglev_size", N(c.maglev_size)});
    ct.Add({"hash_seed", Hex32(c.hash_seed)});
    ct.Add({"timeouts", "tcp " + N(c.ct_tcp_timeout_s) + "s, syn " + N(c.ct_syn_timeout_s) +
                            "s, udp " + N(c.ct_udp_timeout_s) + "s, close " +
                            N(c.ct_close_timeout_s) + "s"});
    ct.Add(
        {"tunnel addresses",
         (cj["tunnel_addr4"].is_null() ? std::string("-") : cj["tunnel_addr4"].get<std::string>()) +
             ", " +
             (cj["tunnel_addr6"].is_null() ? std::string("-")
                                           : cj["tunnel_addr6"].get<std::string>())});
    ct.Add({"encap", EncapName(c.encap) + " (vxlan port " + N(ntohs(c.vxlan_port)) + ", vni " +
                         N(c.vni) + ", gue port " + N(ntohs(c.gue_port)) + ", vtep mac " +
                         cj["vtep_mac"].get<std::string>() + ")"});
    ct.Add({"tunnel_mtu", N(c.tunnel_mtu)});
    ct.Print();
  }
  return 0;
}

int Services(const InspectOptions& o) {
  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto services = dp->Services();
  if (!services.ok()) {
    return Fail(services.error());
  }
  auto backends = dp->Backends();
  if (!backends.ok()) {
    return Fail(backends.error());
  }
  std::map<uint32_t, TableShares> shares;
  for (const auto& [k, s] : *services) {
    if (!shares.count(s.id)) {
      shares[s.id] = SharesOf(*dp, s.id, *backends);
    }
  }
  if (o.json) {
    json list = json::array();
    for (const auto& [k, s] : *services) {
      json j;
      j["vip"] = AddrText(k.addr, k.family);
      j["port"] = ntohs(k.port);
      j["proto"] = ProtoName(k.proto);
      j["family"] = k.family == XLB_FAMILY_IPV6 ? "ipv6" : "ipv4";
      j["id"] = s.id;
      j["flags"] = ServiceFlagsJson(s);
      j["affinity_timeout"] = s.affinity_timeout;
      j["backend_count"] = s.backend_count;
      j["table"] = SharesJson(shares[s.id]);
      list.push_back(j);
    }
    PrintJson(json{{"services", list}});
    return 0;
  }
  Table t({{"SERVICE"},
           {"ID", Align::kRight},
           {"FLAGS"},
           {"BACKENDS", Align::kRight},
           {"SLOTS", Align::kRight},
           {"CLUSTER SHARE"},
           {"SLOTS PER BACKEND (id:slots)"}});
  for (const auto& [k, s] : *services) {
    const TableShares& sh = shares[s.id];
    t.Add({ServiceKeyText(k), N(s.id), ServiceFlagsText(s), N(s.backend_count),
           sh.installed ? N(sh.size) : "-", ClusterSharesText(sh), BackendSlotsText(sh)});
  }
  t.Print();
  return 0;
}

int Backends(const InspectOptions& o) {
  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto backends = dp->Backends();
  if (!backends.ok()) {
    return Fail(backends.error());
  }
  json list = json::array();
  Table t({{"ID", Align::kRight}, {"ADDRESS"}, {"CLUSTER", Align::kRight}, {"PATH"}, {"FLAGS"}});
  for (const auto& [id, b] : *backends) {
    if (!(b.flags & XLB_BE_F_VALID) && !o.all) {
      continue;
    }
    list.push_back(BackendJson(id, b));
    t.Add({N(id), HostPort(b.addr, b.family, ntohs(b.port)), N(b.cluster_id), BackendPath(b),
           BackendFlagsText(b)});
  }
  if (o.json) {
    PrintJson(json{{"backends", list}});
  } else {
    t.Print();
  }
  return 0;
}

int Stats(const InspectOptions& o) {
  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto services = dp->Services();
  if (!services.ok()) {
    return Fail(services.error());
  }
  auto backends = dp->Backends();
  if (!backends.ok()) {
    return Fail(backends.error());
  }
  auto reasons = dp->Reasons();
  if (!reasons.ok()) {
    return Fail(reasons.error());
  }
  std::map<uint32_t, std::vector<std::string>> vips;  // service id -> its keys
  for (const auto& [k, s] : *services) {
    vips[s.id].push_back(ServiceKeyText(k));
  }
  json svc_list = json::array();
  Table st({{"SERVICE", Align::kRight},
            {"VIPS"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const auto& [id, keys] : vips) {
    auto c = dp->ServiceStats(id);
    if (!c.ok()) {
      return Fail(c.error());
    }
    std::string joined;
    for (const std::string& k : keys) {
      joined += (joined.empty() ? "" : ", ") + k;
    }
    json j{{"id", id}, {"vips", keys}};
    j.update(CounterJson(*c));
    svc_list.push_back(j);
    st.Add({N(id), joined, N(c->packets), N(c->bytes), N(c->new_flows)});
  }
  json be_list = json::array();
  std::map<uint16_t, std::pair<xlb_flow_counter, uint32_t>> clusters;  // sums, backend count
  Table bt({{"BACKEND", Align::kRight},
            {"ADDRESS"},
            {"CLUSTER", Align::kRight},
            {"STATE"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const auto& [id, b] : *backends) {
    auto c = dp->BackendStats(id);
    if (!c.ok()) {
      return Fail(c.error());
    }
    json j{{"id", id},
           {"address", HostPort(b.addr, b.family, ntohs(b.port))},
           {"cluster_id", b.cluster_id},
           {"valid", (b.flags & XLB_BE_F_VALID) != 0}};
    j.update(CounterJson(*c));
    be_list.push_back(j);
    auto& sum = clusters[b.cluster_id];
    sum.first.packets += c->packets;
    sum.first.bytes += c->bytes;
    sum.first.new_flows += c->new_flows;
    ++sum.second;
    bt.Add({N(id), HostPort(b.addr, b.family, ntohs(b.port)), N(b.cluster_id),
            (b.flags & XLB_BE_F_VALID) ? "valid" : "invalid", N(c->packets), N(c->bytes),
            N(c->new_flows)});
  }
  json cl_list = json::array();
  Table ct({{"CLUSTER", Align::kRight},
            {"BACKENDS", Align::kRight},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"NEW FLOWS", Align::kRight}});
  for (const auto& [cluster, sum] : clusters) {
    json j{{"cluster_id", cluster}, {"backends", sum.second}};
    j.update(CounterJson(sum.first));
    cl_list.push_back(j);
    ct.Add({N(cluster), N(sum.second), N(sum.first.packets), N(sum.first.bytes),
            N(sum.first.new_flows)});
  }
  json reason_list = json::array();
  Table rt({{"REASON"},
            {"VERDICT"},
            {"PACKETS", Align::kRight},
            {"BYTES", Align::kRight},
            {"DESCRIPTION"}});
  uint64_t drops = 0;
  for (const ReasonInfo& r : kReasons) {
    const xlb_counter& c = (*reasons)[r.reason];
    reason_list.push_back({{"reason", r.name},
                           {"verdict", VerdictName(r.verdict)},
                           {"packets", c.packets},
                           {"bytes", c.bytes}});
    if (r.verdict == Verdict::kDrop) {
      drops += c.packets;
    }
    if (c.packets != 0) {
      rt.Add({std::string(r.name), std::string(VerdictName(r.verdict)), N(c.packets), N(c.bytes),
              std::string(r.description)});
    }
  }
  if (o.json) {
    PrintJson(json{{"services", svc_list},
                   {"backends", be_list},
                   {"clusters", cl_list},
                   {"reasons", reason_list},
                   {"drops", drops}});
    return 0;
  }
  std::printf("per service:\n");
  st.Print();
  std::printf("\nper backend:\n");
  bt.Print();
  std::printf("\nper cluster (summed over its backends):\n");
  ct.Print();
  std::printf("\nper reason (reasons without packets left out; %llu dropped in all):\n",
              static_cast<unsigned long long>(drops));
  rt.Print();
  return 0;
}

int Conntrack(const InspectOptions& o) {
  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  const uint64_t now = MonotonicNowNs();
  auto age = [&](uint64_t last_seen) {
    return last_seen >= now ? 0.0 : static_cast<double>(now - last_seen) / 1e9;
  };
  if (o.replies) {
    auto replies = dp->Replies();
    if (!replies.ok()) {
      return Fail(replies.error());
    }
    std::sort(replies->begin(), replies->end(),
              [](const auto& a, const auto& b) { return a.second.last_seen > b.second.last_seen; });
    json list = json::array();
    Table t(
        {{"PROTO"}, {"BACKEND"}, {"CLIENT"}, {"KIND"}, {"TO"}, {"ENCAP"}, {"AGE", Align::kRight}});
    uint64_t shown = 0;
    for (const auto& [k, r] : *replies) {
      if (o.limit != 0 && shown >= o.limit) {
        break;
      }
      ++shown;
      const bool revnat = r.kind == XLB_REPLY_REVNAT;
      const std::string to =
          revnat ? HostPort(r.addr, r.family, ntohs(r.port)) : AddrText(r.addr, r.family);
      list.push_back({{"proto", ProtoName(k.proto)},
                      {"backend", HostPort(k.saddr, k.family, ntohs(k.sport))},
                      {"client", HostPort(k.daddr, k.family, ntohs(k.dport))},
                      {"kind", revnat                       ? "revnat"
                               : r.kind == XLB_REPLY_TUNNEL ? "tunnel"
                                                            : "?"},
                      {revnat ? "vip" : "origin", to},
                      {"encap", EncapName(r.encap)},
                      {"age_s", age(r.last_seen)}});
      t.Add({ProtoName(k.proto), HostPort(k.saddr, k.family, ntohs(k.sport)),
             HostPort(k.daddr, k.family, ntohs(k.dport)), revnat ? "revnat" : "tunnel",
             revnat ? "vip " + to : "origin " + to, revnat ? "-" : EncapName(r.encap),
             AgeText(age(r.last_seen))});
    }
    if (o.json) {
      PrintJson(json{{"total", replies->size()}, {"shown", shown}, {"replies", list}});
    } else {
      t.Print();
      std::printf("%llu of %zu reply entries shown (newest first)\n",
                  static_cast<unsigned long long>(shown), replies->size());
    }
    return 0;
  }
  auto ct = dp->Conntrack();
  if (!ct.ok()) {
    return Fail(ct.error());
  }
  auto backends = dp->Backends();
  if (!backends.ok()) {
    return Fail(backends.error());
  }
  std::sort(ct->begin(), ct->end(),
            [](const auto& a, const auto& b) { return a.second.last_seen > b.second.last_seen; });
  json list = json::array();
  Table t({{"PROTO"},
           {"CLIENT"},
           {"VIP"},
           {"BACKEND"},
           {"CLUSTER", Align::kRight},
           {"SERVICE", Align::kRight},
           {"STATE"},
           {"AGE", Align::kRight}});
  uint64_t shown = 0;
  for (const auto& [k, v] : *ct) {
    if (o.limit != 0 && shown >= o.limit) {
      break;
    }
    ++shown;
    auto it = backends->find(v.backend_id);
    const bool known = it != backends->end();
    const std::string be_addr =
        known ? HostPort(it->second.addr, it->second.family, ntohs(it->second.port)) : "?";
    json j{{"proto", ProtoName(k.proto)},
           {"client", HostPort(k.saddr, k.family, ntohs(k.sport))},
           {"vip", HostPort(k.daddr, k.family, ntohs(k.dport))},
           {"backend_id", v.backend_id},
           {"backend", be_addr},
           {"backend_valid", known && (it->second.flags & XLB_BE_F_VALID) != 0},
           {"cluster_id", known ? json(it->second.cluster_id) : json()},
           {"service_id", v.service_id},
           {"state", CtStateName(v.state)},
           {"age_s", age(v.last_seen)}};
    list.push_back(j);
    t.Add({ProtoName(k.proto), HostPort(k.saddr, k.family, ntohs(k.sport)),
           HostPort(k.daddr, k.family, ntohs(k.dport)), N(v.backend_id) + " " + be_addr,
           known ? N(it->second.cluster_id) : "?", N(v.service_id), CtStateName(v.state),
           AgeText(age(v.last_seen))});
  }
  if (o.json) {
    PrintJson(json{{"total", ct->size()}, {"shown", shown}, {"entries", list}});
  } else {
    t.Print();
    std::printf("%llu of %zu conntrack entries shown (newest first; --limit 0 shows all)\n",
                static_cast<unsigned long long>(shown), ct->size());
  }
  return 0;
}

int Explain(const InspectOptions& o) {
  if (o.positional.size() != 5) {
    std::fprintf(stderr, "xlbctl: explain needs PROTO SRC SPORT DST DPORT\n");
    return 2;
  }
  const std::string& proto = o.positional[0];
  xlb_ct_key key{};
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

  auto dp = PinnedDatapath::Open(o.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto backends = dp->Backends();
  if (!backends.ok()) {
    return Fail(backends.error());
  }
  const Runtime rt = FindRuntime(*dp);
  // A plain pointer, not an optional: g++ 12 warns about reads of a checked optional here.
  const xlb_config* cfg = rt.chosen ? &*rt.chosen->config : nullptr;

  json doc;
  std::vector<std::string> lines;
  const std::string flow_text = proto + " " + HostPort(key.saddr, key.family, sport) + " -> " +
                                HostPort(key.daddr, key.family, dport);
  doc["flow"] = {{"proto", proto}, {"src", src}, {"sport", sport}, {"dst", dst}, {"dport", dport}};
  lines.push_back("flow:      " + flow_text);

  // The service, as lb_lookup_service() finds it: the exact port, then the all-ports form.
  TypedMap<xlb_service_key, xlb_service> services(dp->fd(XLB_MAP_SERVICES), XLB_MAP_SERVICES);
  xlb_service_key skey{};
  std::memcpy(skey.addr, key.daddr, sizeof(skey.addr));
  skey.port = key.dport;
  skey.proto = key.proto;
  skey.family = key.family;
  std::optional<xlb_service> svc;
  std::string match;
  for (const char* form : {"exact", "all_ports"}) {
    auto s = services.Lookup(skey);
    if (s.ok()) {
      svc = *s;
      match = form;
      break;
    }
    if (!s.error().NotFound()) {
      return Fail(s.error());
    }
    skey.port = 0;
  }
  if (svc) {
    doc["service"] = {{"id", svc->id},
                      {"key", ServiceKeyText(skey)},
                      {"match", match},
                      {"flags", ServiceFlagsJson(*svc)},
                      {"affinity_timeout", svc->affinity_timeout},
                      {"backend_count", svc->backend_count}};
    lines.push_back("service:   " + std::to_string(svc->id) + " (" + ServiceKeyText(skey) + ", " +
                    (match == "exact" ? "exact port" : "all-ports entry") + "), " +
                    std::to_string(svc->backend_count) + " backends, flags " +
                    ServiceFlagsText(*svc));
  } else {
    doc["service"] = nullptr;
  }

  auto backend_text = [&](uint32_t id) {
    auto it = backends->find(id);
    if (it == backends->end()) {
      return "backend " + std::to_string(id) + " (not in " XLB_MAP_BACKENDS ")";
    }
    const xlb_backend& b = it->second;
    return "backend " + std::to_string(id) + " (" + HostPort(b.addr, b.family, ntohs(b.port)) +
           ", cluster " + std::to_string(b.cluster_id) + ", " + BackendPath(b) + ")";
  };
  auto backend_json = [&](uint32_t id) {
    auto it = backends->find(id);
    return it == backends->end() ? json{{"id", id}} : BackendJson(id, it->second);
  };

  // Conntrack first, as the datapath does (ct_lookup() in bpf/lib/lb.h).
  TypedMap<xlb_ct_key, xlb_ct_value> ct(dp->fd(XLB_MAP_CT), XLB_MAP_CT);
  auto entry = ct.Lookup(key);
  if (!entry.ok() && !entry.error().NotFound()) {
    return Fail(entry.error());
  }
  if (entry.ok()) {
    const xlb_ct_value& v = *entry;
    const uint64_t now = MonotonicNowNs();
    const double age = v.last_seen >= now ? 0 : static_cast<double>(now - v.last_seen) / 1e9;
    std::string stale;
    auto it = backends->find(v.backend_id);
    if (it == backends->end() || !(it->second.flags & XLB_BE_F_VALID)) {
      stale = "its backend is no longer valid";
    } else if (cfg) {
      uint32_t timeout = key.proto != IPPROTO_TCP        ? cfg->ct_udp_timeout_s
                         : v.state == XLB_CT_ESTABLISHED ? cfg->ct_tcp_timeout_s
                         : v.state == XLB_CT_SYN_SENT    ? cfg->ct_syn_timeout_s
                                                         : cfg->ct_close_timeout_s;
      if (age > timeout) {
        stale = "idle " + AgeText(age) + ", past its " + std::to_string(timeout) + "s timeout";
      }
    }
    doc["conntrack"] = {
        {"backend_id", v.backend_id},    {"service_id", v.service_id},
        {"state", CtStateName(v.state)}, {"age_s", age},
        {"usable", stale.empty()},       {"stale_because", stale.empty() ? json() : json(stale)}};
    if (stale.empty()) {
      doc["decision"] = "conntrack_hit";
      doc["backend"] = backend_json(v.backend_id);
      lines.push_back(
          "conntrack: hit -> " + backend_text(v.backend_id) + ", state " + CtStateName(v.state) +
          ", age " + AgeText(age) +
          (v.state == XLB_CT_CLOSING ? " (a new SYN on this tuple selects again)" : ""));
      if (o.json) {
        PrintJson(doc);
      } else {
        for (const std::string& l : lines) {
          std::printf("%s\n", l.c_str());
        }
      }
      return 0;
    }
    lines.push_back("conntrack: stale entry (" + backend_text(v.backend_id) + ", " + stale +
                    "): the next packet selects again");
  } else {
    doc["conntrack"] = nullptr;
  }

  if (!svc) {
    doc["decision"] = "not_a_service";
    lines.push_back("not a service: no entry for " + HostPort(key.daddr, key.family, dport) + "/" +
                    proto +
                    " nor for its all-ports form; the datapath passes it (pass_no_service)");
  } else if (svc->backend_count == 0) {
    doc["decision"] = "no_backend";
    lines.push_back("no backend: the service has none; new flows drop (drop_no_backend)");
  } else if (!cfg) {
    return Fail("no loaded program uses the maps under " + o.pin_dir +
                ", so the hash seed and Maglev size to predict with are unknown" +
                (rt.error.empty() ? "" : " (" + rt.error + ")"));
  } else {
    const TableShares sh = SharesOf(*dp, svc->id, *backends);
    if (!sh.error.empty()) {
      return Fail(sh.error);
    }
    if (!sh.installed) {
      doc["decision"] = "no_table";
      lines.push_back("no Maglev table for service " + std::to_string(svc->id) +
                      ": new flows drop (drop_no_table)");
    } else {
      const bool affinity = (svc->flags & XLB_SVC_F_AFFINITY) != 0;
      const uint32_t hash =
          affinity ? xlb_hash_client(&key, cfg->hash_seed) : xlb_hash_flow(&key, cfg->hash_seed);
      const uint32_t slot = MaglevSlot(key, affinity, cfg->hash_seed, cfg->maglev_size);
      const uint32_t id = slot < sh.slots.size() ? sh.slots[slot] : XLB_ID_NONE;
      json m{{"hash_fn", affinity ? "xlb_hash_client" : "xlb_hash_flow"},
             {"hash", hash},
             {"seed", cfg->hash_seed},
             {"maglev_size", cfg->maglev_size},
             {"slot", slot},
             {"table_size", sh.size},
             {"backend_id", id}};
      std::string line =
          "no conntrack entry: " + std::string(affinity ? "xlb_hash_client" : "xlb_hash_flow") +
          "(seed " + Hex32(cfg->hash_seed) + ") = " + Hex32(hash) + " -> Maglev slot " +
          std::to_string(slot) + " of " + std::to_string(cfg->maglev_size) + " -> ";
      if (id == XLB_ID_NONE) {
        doc["decision"] = "no_backend";
        line += "an empty slot: the flow drops (drop_no_backend)";
        lines.push_back(line);
      } else {
        doc["decision"] = "maglev";
        doc["backend"] = backend_json(id);
        auto it = backends->find(id);
        const uint16_t cluster = it != backends->end() ? it->second.cluster_id : 0;
        const uint32_t be_slots = sh.per_backend.count(id) ? sh.per_backend.at(id) : 0;
        const uint32_t cl_slots = sh.per_cluster.count(cluster) ? sh.per_cluster.at(cluster) : 0;
        m["backend_slots"] = be_slots;
        m["backend_share"] = sh.Pct(be_slots);
        m["cluster_id"] = cluster;
        m["cluster_share"] = sh.Pct(cl_slots);
        line += backend_text(id);
        lines.push_back(line);
        lines.push_back("           backend " + std::to_string(id) + " holds " +
                        std::to_string(be_slots) + " slots (" + Percent(sh.Pct(be_slots)) +
                        "), cluster " + std::to_string(cluster) + " holds " +
                        Percent(sh.Pct(cl_slots)) + " of the table");
        if (cfg->maglev_size != sh.size) {
          lines.push_back("warning: the table has " + std::to_string(sh.size) +
                          " slots but the program's maglev_size is " +
                          std::to_string(cfg->maglev_size));
        }
      }
      doc["maglev"] = m;
    }
  }
  if (o.json) {
    PrintJson(doc);
  } else {
    for (const std::string& l : lines) {
      std::printf("%s\n", l.c_str());
    }
  }
  return 0;
}

}  // namespace xlb::cli
