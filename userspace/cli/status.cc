// xlbctl status: the pinned maps and their occupancy, the programs that use them, the runtime
// config in their rodata and where they are attached.
#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

struct MapRow {
  std::string name;
  std::string path;
  bool pinned = false;
  uint32_t id = 0;
  std::string type;
  std::optional<uint64_t> entries;  // where counting them means something
  uint32_t max_entries = 0;
  std::string error;  // why not pinned
};

struct StatusResult {
  std::string pin_dir;
  std::vector<MapRow> maps;
  // In the order shown; the names are the JSON keys of "occupancy".
  std::vector<std::pair<std::string, uint64_t>> occupancy;
  Runtime runtime;

  std::optional<uint64_t> Used(const std::string& key) const {
    for (const auto& [k, v] : occupancy) {
      if (k == key) {
        return v;
      }
    }
    return std::nullopt;
  }
};

const char* MapTypeName(uint32_t type) {
  const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return s != nullptr ? s : "?";
}

Result<StatusResult> ComputeStatus(const PinnedDatapath& dp) {
  StatusResult r;
  r.pin_dir = dp.pin_dir();
  std::map<std::string, uint64_t> entries;  // map name -> entry count
  auto use = [&](const char* map, const char* key, uint64_t n) {
    entries[map] = n;
    r.occupancy.emplace_back(key, n);
  };
  if (dp.Find(XLB_MAP_SERVICES)) {
    XLB_ASSIGN_OR_RETURN(auto s, dp.Services());
    std::set<uint32_t> ids;
    for (const auto& [k, v] : s) {
      ids.insert(v.id);
    }
    use(XLB_MAP_SERVICES, "service_entries", s.size());
    r.occupancy.emplace_back("service_ids", ids.size());
  }
  if (const PinnedMap* m = dp.Find(XLB_MAP_BACKENDS)) {
    XLB_ASSIGN_OR_RETURN(auto b, dp.Backends());
    size_t valid = 0;
    for (const auto& [id, be] : b) {
      valid += (be.flags & XLB_BE_F_VALID) ? 1 : 0;
    }
    entries[XLB_MAP_BACKENDS] = b.size();
    r.occupancy.emplace_back("backends_valid", valid);
    r.occupancy.emplace_back("backends_invalid", b.size() - valid);
    r.occupancy.emplace_back("backends_max", m->info.max_entries);
  }
  if (const PinnedMap* m = dp.Find(XLB_MAP_MAGLEV)) {
    use(XLB_MAP_MAGLEV, "maglev_tables", dp.Tables().Count());
    r.occupancy.emplace_back("services_max", m->info.max_entries);
  }
  if (const PinnedMap* m = dp.Find(XLB_MAP_CT)) {
    XLB_ASSIGN_OR_RETURN(auto ct, dp.Conntrack());
    use(XLB_MAP_CT, "conntrack_entries", ct.size());
    r.occupancy.emplace_back("conntrack_max", m->info.max_entries);
  }
  if (const PinnedMap* m = dp.Find(XLB_MAP_REPLY)) {
    XLB_ASSIGN_OR_RETURN(auto replies, dp.Replies());
    use(XLB_MAP_REPLY, "reply_entries", replies.size());
    r.occupancy.emplace_back("reply_max", m->info.max_entries);
  }
  if (const PinnedMap* m = dp.Find(XLB_MAP_SNAT)) {
    XLB_ASSIGN_OR_RETURN(auto snat, dp.Snat());
    use(XLB_MAP_SNAT, "snat_entries", snat.size());
    r.occupancy.emplace_back("snat_max", m->info.max_entries);
  }
  if (dp.Find(XLB_MAP_SERVICES)) {
    r.runtime = FindRuntime(dp);
  }
  for (const PinnedMap& m : dp.maps()) {
    MapRow row;
    row.name = m.name;
    row.path = m.path;
    row.pinned = m.fd.valid();
    if (row.pinned) {
      row.id = m.info.id;
      row.type = MapTypeName(m.info.type);
      if (entries.count(m.name)) {
        row.entries = entries[m.name];
      }
      row.max_entries = m.info.max_entries;
    } else {
      row.error = m.error;
    }
    r.maps.push_back(std::move(row));
  }
  return r;
}

std::string Tunnel4Text(const xlb_config& c) {
  __be32 v4[4] = {c.tunnel_addr4, 0, 0, 0};
  return c.tunnel_addr4 != 0 ? AddrText(v4, XLB_FAMILY_IPV4) : "";
}

std::string Tunnel6Text(const xlb_config& c) {
  static const __be32 kZero[4] = {};
  return std::memcmp(c.tunnel_addr6, kZero, sizeof(kZero)) != 0
             ? AddrText(c.tunnel_addr6, XLB_FAMILY_IPV6)
             : "";
}

std::string VtepMacText(const xlb_config& c) {
  char mac[24];
  std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", c.vtep_mac[0], c.vtep_mac[1],
                c.vtep_mac[2], c.vtep_mac[3], c.vtep_mac[4], c.vtep_mac[5]);
  return mac;
}

json ConfigJson(const xlb_config& c) {
  auto or_null = [](const std::string& s) { return s.empty() ? json() : json(s); };
  json j;
  j["maglev_size"] = c.maglev_size;
  j["hash_seed"] = c.hash_seed;
  j["hash_seed_hex"] = Hex32(c.hash_seed);
  j["ct_tcp_timeout_s"] = c.ct_tcp_timeout_s;
  j["ct_syn_timeout_s"] = c.ct_syn_timeout_s;
  j["ct_udp_timeout_s"] = c.ct_udp_timeout_s;
  j["ct_close_timeout_s"] = c.ct_close_timeout_s;
  j["tunnel_addr4"] = or_null(Tunnel4Text(c));
  j["tunnel_addr6"] = or_null(Tunnel6Text(c));
  j["encap"] = EncapName(c.encap);
  j["vxlan_port"] = ntohs(c.vxlan_port);
  j["gue_port"] = ntohs(c.gue_port);
  j["vni"] = c.vni;
  j["tunnel_mtu"] = c.tunnel_mtu;
  j["vtep_mac"] = VtepMacText(c);
  return j;
}

json StatusJson(const StatusResult& r) {
  json maps = json::array();
  for (const MapRow& m : r.maps) {
    json j;
    j["name"] = m.name;
    j["path"] = m.path;
    j["pinned"] = m.pinned;
    if (m.pinned) {
      j["id"] = m.id;
      j["type"] = m.type;
      j["entries"] = m.entries ? json(*m.entries) : json();
      j["max_entries"] = m.max_entries;
    } else {
      j["error"] = m.error;
    }
    maps.push_back(j);
  }
  json occupancy;
  for (const auto& [key, n] : r.occupancy) {
    occupancy[key] = n;
  }
  const Runtime& rt = r.runtime;
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
  json doc;
  doc["pin_dir"] = r.pin_dir;
  doc["maps"] = maps;
  doc["occupancy"] = occupancy;
  doc["programs"] = programs;
  doc["config"] = rt.chosen ? ConfigJson(*rt.chosen->config) : json();
  doc["config_from_prog_id"] = rt.chosen ? json(rt.chosen->prog_id) : json();
  doc["attachments"] = attachments;
  if (!rt.error.empty()) {
    doc["programs_error"] = rt.error;
  }
  return doc;
}

void PrintStatus(const StatusResult& r) {
  std::printf("pin dir: %s\n\n", r.pin_dir.c_str());
  Table mt({{"MAP"},
            {"PINNED"},
            {"ID", Align::kRight},
            {"TYPE"},
            {"ENTRIES", Align::kRight},
            {"MAX", Align::kRight}});
  for (const MapRow& m : r.maps) {
    if (!m.pinned) {
      mt.Add({m.name, "missing"});
      continue;
    }
    mt.Add({m.name, "yes", N(m.id), m.type, m.entries ? N(*m.entries) : "-", N(m.max_entries)});
  }
  mt.Print();

  std::printf("\n");
  Table ot({{"OCCUPANCY"}, {"IN USE", Align::kRight}, {"OF", Align::kRight}});
  auto row = [&](const char* what, const char* used, const char* max) {
    if (auto n = r.Used(used)) {
      auto of = max != nullptr ? r.Used(max) : std::nullopt;
      ot.Add({what, N(*n), of ? N(*of) : ""});
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
  const Runtime& rt = r.runtime;
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
    auto or_dash = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    std::printf("\nruntime config (rodata of program %u):\n", rt.chosen->prog_id);
    Table ct({{"KNOB"}, {"VALUE"}});
    ct.Add({"maglev_size", N(c.maglev_size)});
    ct.Add({"hash_seed", Hex32(c.hash_seed)});
    ct.Add({"timeouts", "tcp " + N(c.ct_tcp_timeout_s) + "s, syn " + N(c.ct_syn_timeout_s) +
                            "s, udp " + N(c.ct_udp_timeout_s) + "s, close " +
                            N(c.ct_close_timeout_s) + "s"});
    ct.Add({"tunnel addresses", or_dash(Tunnel4Text(c)) + ", " + or_dash(Tunnel6Text(c))});
    ct.Add({"encap", EncapName(c.encap) + " (vxlan port " + N(ntohs(c.vxlan_port)) + ", vni " +
                         N(c.vni) + ", gue port " + N(ntohs(c.gue_port)) + ", vtep mac " +
                         VtepMacText(c) + ")"});
    ct.Add({"tunnel_mtu", N(c.tunnel_mtu)});
    ct.Print();
  }
}

}  // namespace

int Status(const InspectOptions& o) {
  return Show(o, ComputeStatus, StatusJson, PrintStatus, /*require_all=*/false);
}

}  // namespace xlb::cli
