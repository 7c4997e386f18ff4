#include "lb_fixture.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "loader/test_run.h"
#include "maps/xlb_hash.h"

namespace xlb::testing {

Addr ParseAddr(std::string_view text) {
  Addr a;
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), a.words.data()) == 1) {
    a.family = XLB_FAMILY_IPV4;
  } else if (inet_pton(AF_INET6, s.c_str(), a.words.data()) == 1) {
    a.family = XLB_FAMILY_IPV6;
  } else {
    std::fprintf(stderr, "bad address literal in test: %s\n", s.c_str());
    std::abort();
  }
  return a;
}

xlb_service_key VipKey(std::string_view addr, uint16_t port, uint8_t proto) {
  const Addr a = ParseAddr(addr);
  xlb_service_key k{};
  std::copy(a.words.begin(), a.words.end(), k.addr);
  k.port = htons(port);
  k.proto = proto;
  k.family = a.family;
  return k;
}

xlb_backend Backend(std::string_view addr, uint16_t port, uint16_t cluster_id) {
  const Addr a = ParseAddr(addr);
  xlb_backend b{};
  std::copy(a.words.begin(), a.words.end(), b.addr);
  b.port = htons(port);
  b.family = a.family;
  b.cluster_id = cluster_id;
  b.flags = XLB_BE_F_VALID;
  return b;
}

Result<void> ServiceWriter::SetBackend(uint32_t id, const xlb_backend& backend) {
  return dp_.backends().Update(id, backend);
}

Result<void> ServiceWriter::SetVipFilterBit(const xlb_service_key& vip) {
  uint32_t word = 0;
  const uint64_t bit = xlb_vip_filter_pos(vip.addr, &word);
  uint64_t& w = filter_[word];
  if (w & bit) return {};
  w |= bit;
  return dp_.vip_filter().Update(word, w);
}

Result<void> ServiceWriter::SetBackends(uint32_t service_id,
                                       std::span<const WeightedBackend> backends) {
  std::vector<MaglevBackend> members;
  uint32_t count = 0;
  for (const auto& b : backends) {
    XLB_TRY(SetBackend(b.id, b.backend));
    char key[64];
    std::snprintf(key, sizeof(key), "%u/%08x%08x%08x%08x:%u", b.backend.cluster_id,
                  b.backend.addr[0], b.backend.addr[1], b.backend.addr[2], b.backend.addr[3],
                  b.backend.port);
    members.push_back({b.id, key, b.weight});
    count += b.weight > 0;
  }
  XLB_ASSIGN_OR_RETURN(const auto table, BuildMaglevTable(members, dp_.maglev_size()));
  XLB_TRY(dp_.InstallMaglevTable(service_id, table));
  for (const auto& vip : vips_[service_id]) {
    XLB_ASSIGN_OR_RETURN(auto svc, dp_.services().Lookup(vip));
    svc.backend_count = count;
    XLB_TRY(dp_.services().Update(vip, svc));
  }
  return {};
}

Result<void> ServiceWriter::AddService(uint32_t service_id, std::span<const xlb_service_key> vips,
                                       std::span<const WeightedBackend> backends,
                                       uint32_t flags) {
  uint32_t count = 0;
  for (const auto& b : backends) count += b.weight > 0;
  // Backends and table first, the entries that make the service reachable last.
  XLB_TRY(SetBackends(service_id, backends));
  for (const auto& vip : vips) {
    XLB_TRY(SetVipFilterBit(vip));
    const xlb_service svc{.id = service_id, .flags = flags, .affinity_timeout = 0,
                          .backend_count = count};
    XLB_TRY(dp_.services().Update(vip, svc));
    vips_[service_id].push_back(vip);
  }
  return {};
}

RunResult RunXdp(int prog_fd, std::span<const uint8_t> frame) {
  auto r = TestRunXdp(prog_fd, frame);
  if (!r) {
    std::fprintf(stderr, "BPF_PROG_TEST_RUN failed: %s\n", r.error().ToString().c_str());
    std::abort();
  }
  return {r->retval, std::move(r->out)};
}

std::array<uint64_t, XLB_REASON_MAX> ReasonCounts(const XdpDatapath& dp) {
  std::array<uint64_t, XLB_REASON_MAX> counts{};
  auto reasons = dp.reasons();
  for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
    auto per_cpu = reasons.Lookup(i);
    if (!per_cpu) {
      std::fprintf(stderr, "reading reasons: %s\n", per_cpu.error().ToString().c_str());
      std::abort();
    }
    for (const auto& c : *per_cpu) counts[i] += c.packets;
  }
  return counts;
}

}  // namespace xlb::testing
