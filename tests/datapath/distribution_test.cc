// Selection through the real program: weighted shares over many flows, ClientIP affinity,
// and agreement between the kernel's choice and userspace's prediction (xlbctl explain).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include <map>
#include <string>

#include "builder.h"
#include "decoder.h"
#include "lb_fixture.h"
#include "userspace/planner/flow_slot.h"

namespace xlb::testing {
namespace {

constexpr const char* kVip = "198.18.10.1";

class Selection : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dp = XdpDatapath::Load({.pin_dir = "", .max_ct_entries = 1 << 18});
    ASSERT_TRUE(dp) << dp.error().ToString();
    dp_ = std::move(*dp);
    writer_ = std::make_unique<ServiceWriter>(*dp_);
  }

  // The client address of flow i: distinct (address, port) pairs across 198.18.128.0/17.
  static std::string Client(uint32_t i) {
    return "198.18." + std::to_string(128 + (i >> 8) % 128) + "." + std::to_string(i & 0xff);
  }
  static uint16_t Port(uint32_t i) { return static_cast<uint16_t>(10000 + (i >> 15)); }

  // Sends one SYN and returns the backend address the datapath chose.
  std::string Send(const std::string& client, uint16_t sport, const char* vip = kVip) {
    const auto frame = pkt::Packet()
                           .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                           .ipv4(client, vip)
                           .tcp(sport, 80, pkt::kTcpSyn)
                           .build();
    const RunResult r = RunXdp(dp_->prog_fd(), frame);
    EXPECT_EQ(r.verdict, XDP_PASS);
    return pkt::Decode(r.out).dst;
  }

  std::unique_ptr<XdpDatapath> dp_;
  std::unique_ptr<ServiceWriter> writer_;
};

// Backends weighted 7:3; 100,000 distinct flows land within one percentage point of 70/30,
// and the per-backend counters agree with what the packets showed.
TEST_F(Selection, SevenToThreeOverHundredThousandFlows) {
  const xlb_service_key vip = VipKey(kVip, 80, IPPROTO_TCP);
  const std::vector<WeightedBackend> bes = {{1, Backend("198.18.20.1", 80), 7},
                                            {2, Backend("198.18.20.2", 80), 3}};
  ASSERT_TRUE(writer_->AddService(1, std::span(&vip, 1), bes));

  constexpr uint32_t kFlows = 100000;
  std::map<std::string, uint32_t> seen;
  for (uint32_t i = 0; i < kFlows; ++i) ++seen[Send(Client(i), Port(i))];

  ASSERT_EQ(seen.size(), 2u);
  const double share = static_cast<double>(seen["198.18.20.1"]) / kFlows;
  EXPECT_NEAR(share, 0.70, 0.01) << "backend 1 took " << seen["198.18.20.1"];
  auto stats = dp_->backend_stats();
  EXPECT_EQ(stats.LookupSum(1)->new_flows, seen["198.18.20.1"]);
  EXPECT_EQ(stats.LookupSum(2)->new_flows, seen["198.18.20.2"]);
  EXPECT_EQ(dp_->service_stats().LookupSum(1)->new_flows, kFlows);
}

// The same split as a policy gives it: cluster A 70 % over 5 endpoints, cluster B 30 %
// over 5 endpoints (weights 14 and 6 per endpoint).
TEST_F(Selection, ClusterSharesSplitOverEndpoints) {
  const xlb_service_key vip = VipKey(kVip, 80, IPPROTO_TCP);
  std::vector<WeightedBackend> bes;
  for (uint32_t i = 1; i <= 5; ++i) {
    bes.push_back({i, Backend("198.18.21." + std::to_string(i), 80, 1), 14});
    bes.push_back({10 + i, Backend("198.18.22." + std::to_string(i), 80, 2), 6});
  }
  ASSERT_TRUE(writer_->AddService(1, std::span(&vip, 1), bes));

  constexpr uint32_t kFlows = 100000;
  uint32_t cluster_a = 0;
  std::map<std::string, uint32_t> seen;
  for (uint32_t i = 0; i < kFlows; ++i) {
    const std::string dst = Send(Client(i), Port(i));
    ++seen[dst];
    cluster_a += dst.rfind("198.18.21.", 0) == 0;
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_NEAR(static_cast<double>(cluster_a) / kFlows, 0.70, 0.01);
}

// ClientIP affinity hashes the source address only: one client, many ports, one backend;
// many clients still spread over all backends.
TEST_F(Selection, ClientIpAffinity) {
  const xlb_service_key vip = VipKey(kVip, 80, IPPROTO_TCP);
  std::vector<WeightedBackend> bes;
  for (uint32_t i = 1; i <= 4; ++i) bes.push_back({i, Backend("198.18.20." + std::to_string(i), 80)});
  ASSERT_TRUE(writer_->AddService(1, std::span(&vip, 1), bes, XLB_SVC_F_AFFINITY));

  for (uint32_t c = 0; c < 20; ++c) {
    const std::string client = Client(c * 7919);
    const std::string first = Send(client, 20000);
    for (uint16_t port = 20001; port < 20050; ++port) ASSERT_EQ(Send(client, port), first);
  }
  std::map<std::string, uint32_t> seen;
  for (uint32_t i = 0; i < 2000; ++i) ++seen[Send(Client(i), 30000)];
  EXPECT_EQ(seen.size(), 4u);
}

// Userspace computes the same slot as the kernel (maps/xlb_hash.h on both sides), for the
// 5-tuple hash and the affinity hash, IPv4 and IPv6.
TEST_F(Selection, UserspacePredictsTheKernelsChoice) {
  std::vector<WeightedBackend> bes;
  std::vector<MaglevBackend> members;
  for (uint32_t i = 1; i <= 16; ++i) {
    bes.push_back({i, Backend("2001:db8:20::" + std::to_string(i), 80)});
  }
  const xlb_service_key vip6 = VipKey("2001:db8:10::1", 80, IPPROTO_TCP);
  const xlb_service_key vip4 = VipKey(kVip, 80, IPPROTO_TCP);
  std::vector<WeightedBackend> bes4;
  for (uint32_t i = 1; i <= 16; ++i) bes4.push_back({100 + i, Backend("198.18.20." + std::to_string(i), 80)});
  ASSERT_TRUE(writer_->AddService(1, std::span(&vip6, 1), bes));
  ASSERT_TRUE(writer_->AddService(2, std::span(&vip4, 1), bes4, XLB_SVC_F_AFFINITY));
  auto table6 = dp_->ReadMaglevTable(1);
  auto table4 = dp_->ReadMaglevTable(2);
  ASSERT_TRUE(table6 && table4);

  const xlb_config cfg = dp_->options().config;
  for (uint32_t i = 0; i < 500; ++i) {
    // IPv6, 5-tuple hash
    const std::string client6 = "2001:db8:1::" + std::to_string(i + 1);
    const uint16_t sport = static_cast<uint16_t>(30000 + i);
    const auto frame6 = pkt::Packet().eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                            .ipv6(client6, "2001:db8:10::1").tcp(sport, 80, pkt::kTcpSyn).build();
    const std::string got6 = pkt::Decode(RunXdp(dp_->prog_fd(), frame6).out).dst;
    xlb_ct_key k6{};
    const Addr c6 = ParseAddr(client6);
    std::copy(c6.words.begin(), c6.words.end(), k6.saddr);
    std::copy(std::begin(vip6.addr), std::end(vip6.addr), k6.daddr);
    k6.sport = htons(sport);
    k6.dport = htons(80);
    k6.proto = IPPROTO_TCP;
    k6.family = XLB_FAMILY_IPV6;
    const uint32_t id6 = (*table6)[MaglevSlot(k6, false, cfg.hash_seed, cfg.maglev_size)];
    EXPECT_EQ(got6, "2001:db8:20::" + std::to_string(id6)) << "flow " << i;

    // IPv4, affinity hash
    const std::string client4 = Client(i * 31);
    const std::string got4 = Send(client4, sport);
    xlb_ct_key k4{};
    k4.saddr[0] = ParseAddr(client4).words[0];
    k4.family = XLB_FAMILY_IPV4;
    const uint32_t id4 = (*table4)[MaglevSlot(k4, true, cfg.hash_seed, cfg.maglev_size)];
    EXPECT_EQ(got4, "198.18.20." + std::to_string(id4 - 100)) << "flow " << i;
  }
}

}  // namespace
}  // namespace xlb::testing
