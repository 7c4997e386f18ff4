#include "userspace/cli/common.h"

#include <arpa/inet.h>

#include <cstdio>

#include "userspace/cli/format.h"

namespace xlb::cli {

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

void PrintLines(const std::vector<std::string>& lines) {
  for (const std::string& l : lines) {
    std::printf("%s\n", l.c_str());
  }
}

std::string N(uint64_t v) {
  return std::to_string(v);
}

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
  if (s.flags & XLB_SVC_F_SOURCE_RANGES) {
    flags.push_back("source_ranges");
  }
  if (s.flags & XLB_SVC_F_REJECT) {
    flags.push_back("reject");
  }
  return flags;
}

std::string ServiceFlagsText(const xlb_service& s) {
  std::string text;
  if (s.flags & XLB_SVC_F_AFFINITY) {
    text = "affinity(" + std::to_string(s.affinity_timeout) + "s)";
  }
  for (const auto& [flag, name] : {std::pair{XLB_SVC_F_NODE_PORT, "node_port"},
                                   std::pair{XLB_SVC_F_SOURCE_RANGES, "source_ranges"},
                                   std::pair{XLB_SVC_F_REJECT, "reject"}}) {
    if (s.flags & flag) {
      text += (text.empty() ? "" : ",") + std::string(name);
    }
  }
  return text.empty() ? "-" : text;
}

std::string BackendPath(const xlb_backend& b) {
  if (b.flags & XLB_BE_F_TUNNEL) {
    return "tunnel " + AddrText(b.tunnel, b.tunnel_family);
  }
  return "routed";
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

}  // namespace xlb::cli
