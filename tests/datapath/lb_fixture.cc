#include "lb_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
  // One BPF_MAP_LOOKUP_BATCH for every reason and CPU: the packet fuzzer reads the counters
  // after each of a million frames.
  static const int ncpus = libbpf_num_possible_cpus();
  std::vector<uint32_t> keys(XLB_REASON_MAX);
  std::vector<xlb_counter> values(static_cast<size_t>(XLB_REASON_MAX) * ncpus);
  uint32_t out_batch = 0;
  uint32_t count = XLB_REASON_MAX;
  const int err = bpf_map_lookup_batch(dp.reasons().fd(), nullptr, &out_batch, keys.data(),
                                       values.data(), &count, nullptr);
  if ((err != 0 && errno != ENOENT) || count != XLB_REASON_MAX) {
    std::fprintf(stderr, "reading reasons: %s (%u of %d)\n", std::strerror(errno), count,
                 XLB_REASON_MAX);
    std::abort();
  }
  std::array<uint64_t, XLB_REASON_MAX> counts{};
  for (uint32_t i = 0; i < count; ++i) {
    for (int c = 0; c < ncpus; ++c) counts[keys[i]] += values[static_cast<size_t>(i) * ncpus + c].packets;
  }
  return counts;
}

}  // namespace xlb::testing
