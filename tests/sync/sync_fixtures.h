// Models and a consistency-checking store for the sync tests. Addresses: 198.18.0.0/15 only.
#ifndef XLB_TESTS_SYNC_SYNC_FIXTURES_H
#define XLB_TESTS_SYNC_SYNC_FIXTURES_H

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "fixtures.h"  // tests/policy: TwoClusters(), AddEndpoints(), PlanText(), kApi
#include "maps/xlb_hash.h"
#include "userspace/sync/map_store.h"
#include "userspace/sync/syncer.h"

namespace xlb::testing {

// A FakeMapStore that checks, after every write, what a packet arriving right then would
// rely on: each service entry's table is installed and its VIP's filter bit set, every
// slot of every table names a valid backend, and the node of every valid tunnelled backend
// is a tunnel peer (its answers would be dropped otherwise).
class CheckingStore : public FakeMapStore {
 public:
  using FakeMapStore::FakeMapStore;

  Result<void> PutBackend(uint32_t id, const xlb_backend& backend) override {
    return Checked(FakeMapStore::PutBackend(id, backend));
  }
  Result<void> InstallTable(uint32_t service_id, std::span<const uint32_t> slots) override {
    return Checked(FakeMapStore::InstallTable(service_id, slots));
  }
  Result<void> RemoveTable(uint32_t service_id) override {
    return Checked(FakeMapStore::RemoveTable(service_id));
  }
  Result<void> PutService(const xlb_service_key& key, const xlb_service& service) override {
    return Checked(FakeMapStore::PutService(key, service));
  }
  Result<void> EraseService(const xlb_service_key& key) override {
    return Checked(FakeMapStore::EraseService(key));
  }
  Result<void> PutVipFilterWord(uint32_t word, uint64_t bits) override {
    return Checked(FakeMapStore::PutVipFilterWord(word, bits));
  }
  Result<void> PutPeer(const xlb_peer_key& key, const xlb_peer& peer) override {
    return Checked(FakeMapStore::PutPeer(key, peer));
  }
  Result<void> ErasePeer(const xlb_peer_key& key) override {
    return Checked(FakeMapStore::ErasePeer(key));
  }
  Result<void> PutAffinityMatch(const xlb_affinity_match_key& key) override {
    return Checked(FakeMapStore::PutAffinityMatch(key));
  }
  Result<void> EraseAffinityMatch(const xlb_affinity_match_key& key) override {
    return Checked(FakeMapStore::EraseAffinityMatch(key));
  }
  Result<void> PutSourceRange(const xlb_src_range_key& key) override {
    return Checked(FakeMapStore::PutSourceRange(key));
  }
  Result<void> EraseSourceRange(const xlb_src_range_key& key) override {
    return Checked(FakeMapStore::EraseSourceRange(key));
  }

  // Every inconsistency seen, one line each, with the write number.
  const std::vector<std::string>& violations() const { return violations_; }

 private:
  Result<void> Checked(Result<void> r) {
    ++writes_seen_;
    const MapContents& c = contents();
    const std::string at = "after write " + std::to_string(writes_seen_) + ": ";
    for (const auto& [key, service] : c.services) {
      if (c.tables.count(service.id) == 0) {
        violations_.push_back(at + "service " + std::to_string(service.id) + " has no table");
      }
      uint32_t word = 0;
      const uint64_t bit = xlb_vip_filter_pos(key.addr, &word);
      auto it = c.vip_filter.find(word);
      if (it == c.vip_filter.end() || (it->second & bit) == 0) {
        violations_.push_back(at + "service " + std::to_string(service.id) +
                              " VIP filter bit clear");
      }
    }
    for (const auto& [id, backend] : c.backends) {
      if ((backend.flags & XLB_BE_F_VALID) == 0 || (backend.flags & XLB_BE_F_TUNNEL) == 0) {
        continue;
      }
      xlb_peer_key node{};
      std::copy(std::begin(backend.tunnel), std::end(backend.tunnel), node.addr);
      node.family = backend.tunnel_family;
      if (c.peers.count(node) == 0) {
        violations_.push_back(at + "backend " + std::to_string(id) +
                              " is tunnelled to a node that is no peer");
      }
    }
    for (const auto& [id, slots] : tables()) {
      std::set<uint32_t> ids(slots.begin(), slots.end());
      for (const uint32_t b : ids) {
        if (b == XLB_ID_NONE) {
          continue;
        }
        auto it = c.backends.find(b);
        if (it == c.backends.end() || (it->second.flags & XLB_BE_F_VALID) == 0) {
          violations_.push_back(at + "table " + std::to_string(id) + " names backend " +
                                std::to_string(b) + ", which is not valid");
        }
      }
    }
    return r;
  }

  uint64_t writes_seen_ = 0;
  std::vector<std::string> violations_;
};

// The issue's VirtualService (tests/policy/fixtures.h), as the sync tests write it.
inline const std::string kIssueVirtualService = IssueVirtualService();

// The plans of `model` without policies: every ready endpoint weighs the same.
inline std::vector<ServiceBackends> DefaultPlans(const Model& model) {
  return PlanBackends(model, Routes{});
}

// A second service, production/web (ClusterIP 198.18.100.20, port 80), with `n` endpoints in
// cluster-a at 198.18.1.101...
inline void AddWebService(Model& m, int n) {
  const NamespacedName web{"production", "web"};
  Service s;
  s.name = web;
  s.cluster_ips = {*IpAddress::Parse("198.18.100.20")};
  s.ports = {ServicePort{"http", 80, Protocol::kTcp, 8080, "", 0, ""}};
  m.PutService(s);
  AddEndpoints(m, web, "cluster-a", 1, n, {}, 101);
}

inline xlb_service_key KeyOf(const std::string& vip, uint16_t port, Protocol protocol) {
  xlb_service_key key{};
  const IpAddress a = *IpAddress::Parse(vip);
  a.ToAbiWords(key.addr);
  key.port = htons(port);
  key.proto = static_cast<uint8_t>(protocol);
  key.family = static_cast<uint8_t>(a.family());
  return key;
}

// Backend id -> address text of the valid backends in `contents`.
inline std::map<uint32_t, std::string> BackendAddresses(const MapContents& contents) {
  std::map<uint32_t, std::string> out;
  for (const auto& [id, b] : contents.backends) {
    if ((b.flags & XLB_BE_F_VALID) == 0) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(b.family == XLB_FAMILY_IPV6 ? AF_INET6 : AF_INET, b.addr, text, sizeof(text));
    out[id] = text;
  }
  return out;
}

}  // namespace xlb::testing

#endif  // XLB_TESTS_SYNC_SYNC_FIXTURES_H
