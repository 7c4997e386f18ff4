// xlbctl explain against the real program: for a few thousand random flows and map states
// (conntrack entries fresh, expired, closing with a SYN and without, SYN_SENT, missing;
// backends valid and invalid; exact-port and all-ports services; services without backends or
// without a table; addresses outside the VIP filter; source ranges, rejecting services, ClientIP
// affinity entries that bind and that do not), ExplainPacket (the function `xlbctl
// explain` prints) predicts what happens to one packet, then the packet goes through xlb_xdp
// (BPF_PROG_TEST_RUN) and the outcome is read back independently: the verdict, the output
// packet's destination (decoded by tests/pkt) and the conntrack entry left behind.
//
// Time: entries are aged against CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns's clock) read at
// run time, with timeouts of a few seconds in the loaded config, so expired entries exist on
// a machine booted seconds ago; a fresh entry is at least 50 ms old (more than one tick of the
// coarse clock) and at least a second from its timeout, so the verdict cannot flip between the
// prediction and the packet. Root (CI is root): without it this fails, it does not skip.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "builder.h"
#include "decoder.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "maps/xlb_rules.h"
#include "test_env.h"
#include "userspace/cli/explain.h"
#include "userspace/cli/pinned_datapath.h"

namespace xlb::testing {
namespace {

using cli::Decision;

constexpr uint32_t kMaglevSize = 251;
constexpr uint32_t kFlows = 3000;

struct Address {
  std::string text;
  uint8_t family;
  std::array<__be32, 4> words{};
};

Address Addr(const std::string& text) {
  Address a{text, XLB_FAMILY_IPV4};
  if (inet_pton(AF_INET, text.c_str(), a.words.data()) != 1) {
    a.family = XLB_FAMILY_IPV6;
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), a.words.data()), 1) << text;
  }
  return a;
}

// Where a flow goes: a VIP and port, and what the test set up there.
struct Destination {
  Address vip;
  uint8_t proto;
  uint16_t port;  // 0: a random port (the all-ports entry, or nothing)
  std::vector<uint32_t> backends;  // the backend ids conntrack entries may name
};

class ExplainAgreement : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadOptions o;
    o.pin_dir = pins_.path();
    o.config.maglev_size = kMaglevSize;
    o.config.hash_seed = 0x0a11ce55;
    // Seconds, so that an expired entry exists seconds after boot.
    o.config.ct_tcp_timeout_s = 5;
    o.config.ct_syn_timeout_s = 3;
    o.config.ct_udp_timeout_s = 4;
    o.config.ct_close_timeout_s = 2;
    o.max_services = 16;
    o.max_backends = 64;
    o.max_ct_entries = 4 * kFlows;  // no LRU eviction during the test
    auto dp = XdpDatapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.error().ToString();
    dp_ = std::move(*dp);
    config_ = o.config;

    // Backends 1..12 IPv4, 13..24 IPv6, all routed (DNAT + XDP_PASS names them).
    for (uint32_t id = 1; id <= 24; ++id) {
      const Address a = Addr(id <= 12 ? "198.18.1." + std::to_string(id)
                                      : "2001:db8:1::" + std::to_string(id));
      xlb_backend b{};
      std::memcpy(b.addr, a.words.data(), sizeof(b.addr));
      b.family = a.family;
      b.port = htons(static_cast<uint16_t>(8000 + id));
      b.cluster_id = id % 2 + 1;
      b.flags = XLB_BE_F_VALID;
      backends_[id] = b;
      ASSERT_TRUE(dp_->backends().Update(id, b).ok());
    }
    const std::vector<uint32_t> v4a = {1, 2, 3, 4, 5, 6}, v4b = {7, 8, 9, 10, 11, 12},
                                v6 = {13, 14, 15, 16, 17, 18, 19, 20};
    // id, vip, proto, port (0 = all ports), flags, members (empty: backend_count 0), table
    AddService(1, "198.18.100.1", IPPROTO_TCP, 80, 0, v4a, true);
    AddService(2, "198.18.100.1", IPPROTO_TCP, 0, 0, v4b, true);
    AddService(3, "198.18.100.2", IPPROTO_UDP, 53, XLB_SVC_F_AFFINITY, v4a, true);
    AddService(4, "2001:db8:100::1", IPPROTO_TCP, 443, 0, v6, true);
    AddService(5, "198.18.100.3", IPPROTO_TCP, 80, 0, {}, true);
    AddService(6, "198.18.100.4", IPPROTO_TCP, 80, 0, v4b, false);
    AddService(7, "2001:db8:100::2", IPPROTO_UDP, 0, XLB_SVC_F_AFFINITY, v6, true);
    // In the services map, but left out of the VIP filter: the datapath never sees them.
    AddService(8, "198.18.100.5", IPPROTO_TCP, 80, 0, v4a, true, /*in_filter=*/false);
    AddService(9, "2001:db8:100::3", IPPROTO_TCP, 80, 0, v6, true, /*in_filter=*/false);
    // loadBalancerSourceRanges: about half the test's clients are inside.
    AddService(10, "198.18.100.6", IPPROTO_TCP, 80, XLB_SVC_F_SOURCE_RANGES, v4a, true);
    AddSourceRange(10, "198.18.128.0", 25);
    AddService(11, "2001:db8:100::5", IPPROTO_TCP, 80, XLB_SVC_F_SOURCE_RANGES, v6, true);
    AddSourceRange(11, "2001:db8:128::", 120);
    // No endpoints: rejected, not dropped.
    AddService(12, "198.18.100.7", IPPROTO_TCP, 80, XLB_SVC_F_REJECT, {}, true);
    AddService(13, "2001:db8:100::4", IPPROTO_UDP, 53, XLB_SVC_F_REJECT, {}, true);
    // ClientIP affinity: every backend of service 3 takes new flows, half of service 7's.
    for (uint32_t id : v4a) {
      ASSERT_TRUE(dp_->affinity_match().Update({.service_id = 3, .backend_id = id}, 0).ok());
    }
    for (uint32_t id : v6) {
      if (id % 2 == 0) {
        ASSERT_TRUE(dp_->affinity_match().Update({.service_id = 7, .backend_id = id}, 0).ok());
      }
    }
    for (const auto& [word, bits] : filter_) {
      ASSERT_TRUE(dp_->vip_filter().Update(word, bits).ok());
    }
    destinations_.push_back({Addr("198.18.100.1"), IPPROTO_TCP, 80, v4a});
    destinations_.push_back({Addr("198.18.100.1"), IPPROTO_TCP, 0, v4b});
    destinations_.push_back({Addr("198.18.100.2"), IPPROTO_UDP, 53, v4a});
    destinations_.push_back({Addr("198.18.100.2"), IPPROTO_UDP, 0, v4a});  // no such port
    destinations_.push_back({Addr("2001:db8:100::1"), IPPROTO_TCP, 443, v6});
    destinations_.push_back({Addr("198.18.100.3"), IPPROTO_TCP, 80, v4a});
    destinations_.push_back({Addr("198.18.100.4"), IPPROTO_TCP, 80, v4b});
    destinations_.push_back({Addr("2001:db8:100::2"), IPPROTO_UDP, 0, v6});
    destinations_.push_back({Addr("198.18.100.5"), IPPROTO_TCP, 80, v4a});
    destinations_.push_back({Addr("2001:db8:100::3"), IPPROTO_TCP, 80, v6});
    destinations_.push_back({Addr("198.18.100.9"), IPPROTO_TCP, 80, v4a});  // no service
    destinations_.push_back({Addr("198.18.100.6"), IPPROTO_TCP, 80, v4a});
    destinations_.push_back({Addr("2001:db8:100::5"), IPPROTO_TCP, 80, v6});
    destinations_.push_back({Addr("198.18.100.7"), IPPROTO_TCP, 80, v4a});
    destinations_.push_back({Addr("2001:db8:100::4"), IPPROTO_UDP, 53, v6});

    auto pinned = cli::PinnedDatapath::Open(pins_.path());
    ASSERT_TRUE(pinned.ok()) << pinned.error().ToString();
    pinned_ = std::make_unique<cli::PinnedDatapath>(std::move(*pinned));
  }

  void AddSourceRange(uint32_t id, const std::string& prefix, uint32_t bits) {
    const Address a = Addr(prefix);
    xlb_src_range_key k{};
    k.prefixlen = XLB_SRC_RANGE_PREFIX_BASE + bits;
    k.service_id = id;
    k.family = a.family;
    std::memcpy(k.addr, a.words.data(), sizeof(k.addr));
    ASSERT_TRUE(dp_->source_ranges().Update(k, 0).ok());
  }

  void AddService(uint32_t id, const std::string& vip, uint8_t proto, uint16_t port,
                  uint16_t flags, const std::vector<uint32_t>& members, bool table,
                  bool in_filter = true) {
    const Address a = Addr(vip);
    xlb_service_key key{};
    std::memcpy(key.addr, a.words.data(), sizeof(key.addr));
    key.port = htons(port);
    key.proto = proto;
    key.family = a.family;
    xlb_service svc{};
    svc.id = id;
    svc.flags = flags;
    svc.affinity_timeout = (flags & XLB_SVC_F_AFFINITY) ? 600 : 0;
    svc.backend_count = static_cast<uint16_t>(members.size());
    ASSERT_TRUE(dp_->services().Update(key, svc).ok());
    if (table) {
      // Every member, and a few empty slots: those drop new flows.
      std::vector<uint32_t> slots(kMaglevSize);
      for (uint32_t i = 0; i < kMaglevSize; ++i) {
        slots[i] = members.empty() || i % 17 == 0 ? XLB_ID_NONE : members[rng_() % members.size()];
      }
      ASSERT_TRUE(dp_->InstallMaglevTable(id, slots).ok());
    }
    if (in_filter) {
      uint32_t word = 0;
      const uint64_t bit = xlb_vip_filter_pos(a.words.data(), &word);
      filter_[word] |= bit;
    }
  }

  PinDir pins_;  // declared first: removed last, after the datapath is gone
  std::unique_ptr<XdpDatapath> dp_;
  std::unique_ptr<cli::PinnedDatapath> pinned_;
  xlb_config config_{};
  std::map<uint32_t, xlb_backend> backends_;
  std::map<uint32_t, uint64_t> filter_;
  std::vector<Destination> destinations_;
  std::mt19937 rng_{20261206};
};

// How the test ages a conntrack entry before the packet.
enum class EntryAge { kMissing, kFresh, kExpired };

TEST_F(ExplainAgreement, ExplainNamesTheBackendTheProgramPicks) {
  std::map<std::string, int> seen;  // outcome kinds, to show the test covered them
  auto drop_count = [&](int reason) {
    auto sum = dp_->reasons().LookupSum(static_cast<uint32_t>(reason));
    EXPECT_TRUE(sum.ok());
    return sum.ok() ? sum->packets : 0;
  };
  for (uint32_t n = 0; n < kFlows; ++n) {
    // Now and then some backends go invalid, others come back.
    if (n % 40 == 0) {
      for (auto& [id, b] : backends_) {
        b.flags = rng_() % 4 == 0 ? 0 : XLB_BE_F_VALID;
        ASSERT_TRUE(dp_->backends().Update(id, b).ok());
      }
      // And now and then every client's affinity entry is idle past the timeout (600 s).
      if (rng_() % 3 == 0) {
        auto aff = dp_->affinity();
        ASSERT_TRUE(aff.ForEach([&](const xlb_affinity_key& k, xlb_affinity v) {
                         v.last_seen -= 601 * XLB_NSEC_PER_SEC;
                         ASSERT_TRUE(aff.Update(k, v).ok());
                       })
                        .ok());
      }
    }
    const Destination& d = destinations_[rng_() % destinations_.size()];
    const bool v6 = d.vip.family == XLB_FAMILY_IPV6;
    const Address client = Addr(v6 ? "2001:db8:128::" + std::to_string(1 + rng_() % 200)
                                   : "198.18.128." + std::to_string(1 + rng_() % 200));
    const uint16_t sport = static_cast<uint16_t>(10000 + n);  // a tuple of its own
    const uint16_t dport = d.port != 0 ? d.port : static_cast<uint16_t>(1000 + rng_() % 9000);
    static constexpr uint8_t kFlags[] = {
        XLB_TCP_SYN, XLB_TCP_ACK, XLB_TCP_SYN | XLB_TCP_ACK, XLB_TCP_FIN | XLB_TCP_ACK,
        XLB_TCP_RST, 0x08 | XLB_TCP_ACK};
    const uint8_t flags = d.proto == IPPROTO_TCP ? kFlags[rng_() % 6] : 0;

    cli::ExplainQuery q;
    q.key.family = d.vip.family;
    q.key.proto = d.proto;
    std::memcpy(q.key.saddr, client.words.data(), sizeof(q.key.saddr));
    std::memcpy(q.key.daddr, d.vip.words.data(), sizeof(q.key.daddr));
    q.key.sport = htons(sport);
    q.key.dport = htons(dport);
    q.tcp_flags = flags;

    // The entry: missing, fresh or expired, in a random state, on a random backend.
    const auto age = static_cast<EntryAge>(rng_() % 3);
    (void)dp_->conntrack().Erase(q.key);
    if (age != EntryAge::kMissing) {
      xlb_ct_value v{};
      v.backend_id = d.backends[rng_() % d.backends.size()];
      v.service_id = 1;
      v.flags = rng_() % 2 ? XLB_CT_F_SOURCE_RANGES : 0;  // began under source ranges or not
      v.state = d.proto == IPPROTO_TCP ? static_cast<uint8_t>(XLB_CT_SYN_SENT + rng_() % 3)
                                       : XLB_CT_ESTABLISHED;
      const uint64_t timeout_ns =
          uint64_t{xlb_ct_timeout_s(&config_, d.proto, v.state)} * XLB_NSEC_PER_SEC;
      const uint64_t now = cli::MonotonicNowNs();
      const uint64_t ms = 1000000;
      const uint64_t ago = age == EntryAge::kFresh
                               ? 50 * ms + rng_() % (timeout_ns - XLB_NSEC_PER_SEC - 50 * ms)
                               : timeout_ns + XLB_NSEC_PER_SEC + rng_() % (5000 * ms);
      v.last_seen = now > ago ? now - ago : 1;  // a machine booted moments ago: clamp
      ASSERT_TRUE(dp_->conntrack().Update(q.key, v).ok());
    }

    auto e = cli::ExplainPacket(*pinned_, &config_, q, cli::MonotonicNowNs());
    ASSERT_TRUE(e.ok()) << e.error().ToString();
    ASSERT_FALSE(e->config_missing);

    pkt::Packet p;
    p.eth("02:00:00:00:00:01", "02:00:00:00:00:02");
    if (v6) {
      p.ipv6(client.text, d.vip.text);
    } else {
      p.ipv4(client.text, d.vip.text);
    }
    if (d.proto == IPPROTO_TCP) {
      p.tcp(sport, dport, flags);
    } else {
      p.udp(sport, dport);
    }
    const pkt::Bytes frame = p.build();
    const uint64_t no_backend = drop_count(XLB_DROP_NO_BACKEND);
    const uint64_t no_table = drop_count(XLB_DROP_NO_TABLE);
    const uint64_t source_range = drop_count(XLB_DROP_SOURCE_RANGE);
    const uint64_t rejected = drop_count(XLB_FWD_REJECT);
    auto run = TestRunXdp(dp_->prog_fd(), frame);
    ASSERT_TRUE(run.ok()) << run.error().ToString();

    std::string why = std::string(cli::DecisionName(e->decision)) + " for " + client.text + ":" +
                      std::to_string(sport) + " -> " + d.vip.text + ":" + std::to_string(dport) +
                      " flags " + std::to_string(flags) + " entry " +
                      (e->conntrack ? e->conntrack->stale_because : "none");
    std::string kind = cli::DecisionName(e->decision);
    switch (e->decision) {
      case Decision::kNotAService:
        EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS)) << why;
        EXPECT_EQ(run->out, frame) << why;
        kind += e->in_vip_filter ? "/no_entry" : "/vip_filter";
        break;
      case Decision::kNoBackend:
      case Decision::kNoTable:
        EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_DROP)) << why;
        EXPECT_EQ(drop_count(XLB_DROP_NO_BACKEND) - no_backend,
                  e->decision == Decision::kNoBackend ? 1u : 0u)
            << why;
        EXPECT_EQ(drop_count(XLB_DROP_NO_TABLE) - no_table,
                  e->decision == Decision::kNoTable ? 1u : 0u)
            << why;
        break;
      case Decision::kSourceRange:
        EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_DROP)) << why;
        EXPECT_EQ(drop_count(XLB_DROP_SOURCE_RANGE) - source_range, 1u) << why;
        if (e->source_range->established) kind += "/established";
        break;
      case Decision::kReject: {
        EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_TX)) << why;
        EXPECT_EQ(drop_count(XLB_FWD_REJECT) - rejected, 1u) << why;
        const pkt::Decoded out = pkt::Decode(run->out);
        ASSERT_TRUE(out.ok()) << out.error;
        EXPECT_EQ(out.src, d.vip.text) << why;
        EXPECT_EQ(out.dst, client.text) << why;
        break;
      }
      case Decision::kConntrackHit:
      case Decision::kMaglev:
      case Decision::kAffinity: {
        ASSERT_NE(e->backend_id, XLB_ID_NONE) << why;
        const xlb_backend& b = backends_.at(e->backend_id);
        EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS)) << why;
        const pkt::Decoded out = pkt::Decode(run->out);
        ASSERT_TRUE(out.ok()) << out.error;
        char text[INET6_ADDRSTRLEN];
        inet_ntop(v6 ? AF_INET6 : AF_INET, b.addr, text, sizeof(text));
        EXPECT_EQ(out.dst, text) << why;
        EXPECT_EQ(out.dport, ntohs(b.port)) << why;
        auto entry = dp_->conntrack().Lookup(q.key);
        if (!entry.ok()) {  // a SYN's: half-open, under the client's side of the tuple
          xlb_half_key hkey{};
          xlb_half_key_of(&q.key, &hkey);
          auto half = dp_->half_open_conntrack().Lookup(hkey);
          ASSERT_TRUE(half.ok()) << why;
          EXPECT_TRUE(xlb_half_is_flow(&*half, &q.key)) << why;
          entry = half->ct;
        }
        ASSERT_TRUE(entry.ok()) << why;
        EXPECT_EQ(entry->backend_id, e->backend_id) << why;
        // The entry's state after the packet, by the same rules.
        const uint8_t state =
            e->decision == Decision::kConntrackHit
                ? xlb_ct_next_state(e->conntrack->entry.state, d.proto, flags)
                : xlb_ct_new_state(d.proto, flags);
        EXPECT_EQ(entry->state, state) << why;
        if (e->conntrack) {
          static const char* const kStale[] = {"kept", "expired", "reopened", "backend_invalid"};
          kind += std::string("/") + kStale[static_cast<int>(e->conntrack->stale)];
        }
        if (e->source_range) kind += "+source_range_allowed";
        if (e->affinity && !e->affinity->binds) kind += "+affinity_not_binding";
        // A new flow of an affine service leaves the client's entry on its backend.
        if (e->decision != Decision::kConntrackHit && e->service &&
            (e->service->flags & XLB_SVC_F_AFFINITY)) {
          xlb_affinity_key ak{};
          xlb_affinity_key_of(&q.key, e->service->id, &ak);
          auto entry = dp_->affinity().Lookup(ak);
          ASSERT_TRUE(entry.ok()) << why;
          EXPECT_EQ(entry->backend_id, e->backend_id) << why;
        }
        break;
      }
    }
    ++seen[kind];
  }
  std::string summary;
  for (const auto& [kind, count] : seen) {
    summary += "  " + kind + ": " + std::to_string(count) + "\n";
  }
  // Every kind of outcome happened, so no rule went unchecked.
  for (const char* kind :
       {"not_a_service/no_entry", "not_a_service/vip_filter", "no_backend", "no_table",
        "conntrack_hit/kept", "maglev", "maglev/expired", "maglev/reopened",
        "maglev/backend_invalid"}) {
    EXPECT_TRUE(seen.count(kind)) << "no flow ended as " << kind << "; outcomes:\n" << summary;
  }
  for (const char* part :
       {"source_range_drop", "source_range_drop/established", "+source_range_allowed", "reject",
        "affinity", "+affinity_not_binding"}) {
    bool found = false;
    for (const auto& [kind, count] : seen) {
      // "+..." anywhere in the kind, a decision at its start
      found = found ||
              (part[0] == '+' ? kind.find(part) != std::string::npos : kind.rfind(part, 0) == 0);
    }
    EXPECT_TRUE(found) << "no flow ended as " << part << "; outcomes:\n" << summary;
  }
  std::printf("outcomes over %u flows:\n%s", kFlows, summary.c_str());
}

}  // namespace
}  // namespace xlb::testing
