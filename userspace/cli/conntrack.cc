// xlbctl conntrack: conntrack entries newest first, or (--replies) the reply map.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "userspace/cli/commands.h"
#include "userspace/cli/common.h"
#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

template <typename V>
struct Entries {
  std::vector<std::pair<xlb_ct_key, V>> shown;  // newest first
  size_t total = 0;
  uint64_t now = 0;  // the monotonic clock the ages are taken against

  double Age(uint64_t last_seen) const {
    return last_seen >= now ? 0.0 : static_cast<double>(now - last_seen) / 1e9;
  }
};

struct ConntrackResult {
  Entries<xlb_ct_value> entries;
  std::map<uint32_t, xlb_backend> backends;
};

template <typename V>
Entries<V> Newest(std::vector<std::pair<xlb_ct_key, V>> all, uint64_t limit) {
  Entries<V> e;
  e.now = MonotonicNowNs();
  e.total = all.size();
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.second.last_seen > b.second.last_seen; });
  if (limit != 0 && all.size() > limit) {
    all.resize(limit);
  }
  e.shown = std::move(all);
  return e;
}

std::string ClientText(const xlb_ct_key& k) {
  return HostPort(k.saddr, k.family, ntohs(k.sport));
}

std::string VipText(const xlb_ct_key& k) {
  return HostPort(k.daddr, k.family, ntohs(k.dport));
}

// ---- conntrack --replies ----

std::string ReplyTarget(const xlb_reply& r) {
  return r.kind == XLB_REPLY_REVNAT ? HostPort(r.addr, r.family, ntohs(r.port))
                                    : AddrText(r.addr, r.family);
}

json RepliesJson(const Entries<xlb_reply>& e) {
  json list = json::array();
  for (const auto& [k, r] : e.shown) {
    const bool revnat = r.kind == XLB_REPLY_REVNAT;
    // The reply tuple: from the backend, to the client.
    list.push_back({{"proto", ProtoName(k.proto)},
                    {"backend", ClientText(k)},
                    {"client", VipText(k)},
                    {"kind", revnat                       ? "revnat"
                             : r.kind == XLB_REPLY_TUNNEL ? "tunnel"
                                                          : "?"},
                    {revnat ? "vip" : "origin", ReplyTarget(r)},
                    {"encap", EncapName(r.encap)},
                    {"age_s", e.Age(r.last_seen)}});
  }
  return json{{"total", e.total}, {"shown", e.shown.size()}, {"replies", list}};
}

void PrintReplies(const Entries<xlb_reply>& e) {
  Table t({{"PROTO"}, {"BACKEND"}, {"CLIENT"}, {"KIND"}, {"TO"}, {"ENCAP"}, {"AGE", Align::kRight}});
  for (const auto& [k, r] : e.shown) {
    const bool revnat = r.kind == XLB_REPLY_REVNAT;
    t.Add({ProtoName(k.proto), ClientText(k), VipText(k), revnat ? "revnat" : "tunnel",
           (revnat ? "vip " : "origin ") + ReplyTarget(r), revnat ? "-" : EncapName(r.encap),
           AgeText(e.Age(r.last_seen))});
  }
  t.Print();
  std::printf("%zu of %zu reply entries shown (newest first)\n", e.shown.size(), e.total);
}

// ---- conntrack ----

const xlb_backend* Find(const std::map<uint32_t, xlb_backend>& backends, uint32_t id) {
  auto it = backends.find(id);
  return it != backends.end() ? &it->second : nullptr;
}

std::string BackendAddress(const xlb_backend* b) {
  return b != nullptr ? HostPort(b->addr, b->family, ntohs(b->port)) : "?";
}

json ConntrackJson(const ConntrackResult& r) {
  json list = json::array();
  for (const auto& [k, v] : r.entries.shown) {
    const xlb_backend* b = Find(r.backends, v.backend_id);
    list.push_back({{"proto", ProtoName(k.proto)},
                    {"client", ClientText(k)},
                    {"vip", VipText(k)},
                    {"backend_id", v.backend_id},
                    {"backend", BackendAddress(b)},
                    {"backend_valid", b != nullptr && (b->flags & XLB_BE_F_VALID) != 0},
                    {"cluster_id", b != nullptr ? json(b->cluster_id) : json()},
                    {"service_id", v.service_id},
                    {"state", CtStateName(v.state)},
                    {"age_s", r.entries.Age(v.last_seen)}});
  }
  return json{{"total", r.entries.total}, {"shown", r.entries.shown.size()}, {"entries", list}};
}

void PrintConntrack(const ConntrackResult& r) {
  Table t({{"PROTO"},
           {"CLIENT"},
           {"VIP"},
           {"BACKEND"},
           {"CLUSTER", Align::kRight},
           {"SERVICE", Align::kRight},
           {"STATE"},
           {"AGE", Align::kRight}});
  for (const auto& [k, v] : r.entries.shown) {
    const xlb_backend* b = Find(r.backends, v.backend_id);
    t.Add({ProtoName(k.proto), ClientText(k), VipText(k),
           N(v.backend_id) + " " + BackendAddress(b), b != nullptr ? N(b->cluster_id) : "?",
           N(v.service_id), CtStateName(v.state), AgeText(r.entries.Age(v.last_seen))});
  }
  t.Print();
  std::printf("%zu of %zu conntrack entries shown (newest first; --limit 0 shows all)\n",
              r.entries.shown.size(), r.entries.total);
}

}  // namespace

int Conntrack(const InspectOptions& o) {
  if (o.replies) {
    return Show(
        o,
        [&](const PinnedDatapath& dp) -> Result<Entries<xlb_reply>> {
          XLB_ASSIGN_OR_RETURN(auto replies, dp.Replies());
          return Newest(std::move(replies), o.limit);
        },
        RepliesJson, PrintReplies);
  }
  return Show(
      o,
      [&](const PinnedDatapath& dp) -> Result<ConntrackResult> {
        XLB_ASSIGN_OR_RETURN(auto ct, dp.Conntrack());
        XLB_ASSIGN_OR_RETURN(auto backends, dp.Backends());
        return ConntrackResult{Newest(std::move(ct), o.limit), std::move(backends)};
      },
      ConntrackJson, PrintConntrack);
}

}  // namespace xlb::cli
