// The syncer against the real maps of a loaded XdpDatapath, pinned in a directory of its own:
// read-back equals what was written, a reloaded datapath on the same pins adopted by a new
// syncer needs no write for the same state, and a packet through the real program reaches a
// backend of the synced service. Root (CI is root): without it these fail, they do not skip.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "builder.h"
#include "decoder.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "sync_fixtures.h"
#include "test_env.h"
#include "userspace/planner/flow_slot.h"
#include "userspace/sync/bpf_map_store.h"
#include "userspace/sync/desired_state_tracker.h"

namespace xlb::testing {
namespace {

class BpfSync : public ::testing::Test {
 protected:
  // Smaller than the defaults so that adopting (one lookup per id) stays quick; the same on
  // every load, as re-using pins requires.
  LoadOptions Options() const {
    LoadOptions o;
    o.pin_dir = pins_.path();
    o.max_services = 64;
    o.max_backends = 256;
    o.max_ct_entries = 1024;
    return o;
  }

  std::unique_ptr<XdpDatapath> Load() {
    auto dp = XdpDatapath::Load(Options());
    EXPECT_TRUE(dp.ok()) << dp.error().ToString();
    return dp.ok() ? std::move(*dp) : nullptr;
  }

  PinDir pins_;  // removed with every pin by its destructor, also after a failed assertion
};

TEST_F(BpfSync, ReadBackEqualsWhatWasWrittenAndAReloadNeedsNoWrite) {
  Model m = TwoClusters(2);
  AddWebService(m, 3);
  MapContents written;
  {
    auto dp = Load();
    ASSERT_NE(dp, nullptr);
    BpfMapStore store(*dp);
    Syncer syncer(store);
    ASSERT_TRUE(syncer.Adopt().ok());
    EXPECT_TRUE(syncer.held().services.empty());
    auto desired = syncer.Plan(m, DefaultPlans(m));
    ASSERT_TRUE(desired.ok()) << desired.error().ToString();
    const SyncResult r = syncer.Sync(*desired);
    ASSERT_TRUE(r.ok()) << r.error->ToString();
    // 7 backends, 2 tables, 3 service entries, and their filter words.
    EXPECT_EQ(r.writes[WriteKind::kBackend], 7u);
    EXPECT_EQ(r.writes[WriteKind::kTable], 2u);
    EXPECT_EQ(r.writes[WriteKind::kService], 3u);
    EXPECT_EQ(r.writes[WriteKind::kVipFilterWord], desired->maps.vip_filter.size());
    // Every endpoint's node is a tunnel peer in the real map (read back below, and adopted
    // with the rest after the reload).
    EXPECT_FALSE(desired->maps.peers.empty());
    EXPECT_EQ(r.writes[WriteKind::kPeer], desired->maps.peers.size());

    auto read = store.ReadAll();
    ASSERT_TRUE(read.ok()) << read.error().ToString();
    EXPECT_EQ(*read, *desired->maps.Contents());

    // One endpoint of web goes: an invalidated entry stays behind, also across the reload.
    Model later = TwoClusters(2);
    AddWebService(later, 2);
    auto smaller = syncer.Plan(later, DefaultPlans(later));
    ASSERT_TRUE(smaller.ok());
    const SyncResult r2 = syncer.Sync(*smaller);
    ASSERT_TRUE(r2.ok()) << r2.error->ToString();
    EXPECT_EQ(r2.writes[WriteKind::kBackend], 1u);
    EXPECT_EQ(r2.writes[WriteKind::kTable], 1u);
    m = later;
    auto read2 = store.ReadAll();
    ASSERT_TRUE(read2.ok());
    written = *read2;
    EXPECT_EQ(written, syncer.held());
  }  // the agent exits; the pins keep the maps

  auto dp = Load();
  ASSERT_NE(dp, nullptr);
  EXPECT_FALSE(dp->reused_maps().empty());
  BpfMapStore store(*dp);
  Syncer restarted(store);
  ASSERT_TRUE(restarted.Adopt().ok());
  EXPECT_EQ(restarted.held(), written);
  auto desired = restarted.Plan(m, DefaultPlans(m));
  ASSERT_TRUE(desired.ok());
  const SyncResult r = restarted.Sync(*desired);
  ASSERT_TRUE(r.ok()) << r.error->ToString();
  EXPECT_EQ(r.writes.total(), 0u) << r.writes.ToString();
  auto after = store.ReadAll();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, written);
}

// The agent's incremental path on real maps: every table the mmap fill wrote reads back slot
// for slot through the loader's own reader (batch lookups, not the mapping), an endpoint change
// writes only its entries, and a restarted syncer on the pins writes nothing.
TEST_F(BpfSync, IncrementalSyncFillsTablesThatReadBackSlotForSlot) {
  Model m = TwoClusters(3);
  AddWebService(m, 4);
  auto planner = [&m](const NamespacedName& name) {
    const Service* s = m.FindService(name);
    return s != nullptr ? PlanService(m, *s, Routes{}) : std::vector<ServiceBackends>{};
  };
  std::set<NamespacedName> all = {kApi, NamespacedName{"production", "web"}};
  auto dp = Load();
  ASSERT_NE(dp, nullptr);
  {
    BpfMapStore store(*dp);
    Syncer syncer(store);
    ASSERT_TRUE(syncer.Adopt().ok());
    ASSERT_TRUE(syncer.PlanChanges(m, all, planner).ok());
    const SyncResult first = syncer.SyncChanges();
    ASSERT_TRUE(first.ok()) << first.error->ToString();
    EXPECT_EQ(first.writes[WriteKind::kTable], 2u);
    auto check_tables = [&] {
      for (const auto& [id, recipe] : syncer.tracked()->maps().tables) {
        auto read = dp->ReadMaglevTable(id);
        ASSERT_TRUE(read.ok()) << read.error().ToString();
        EXPECT_EQ(*read, *recipe.Build()) << "table of service " << id;
      }
    };
    check_tables();

    m.TakeChanges();
    AddEndpoints(m, kApi, "cluster-b", 2, 1, {}, 9);
    ASSERT_TRUE(syncer.PlanChanges(m, m.TakeChanges().services, planner).ok());
    const SyncResult change = syncer.SyncChanges();
    ASSERT_TRUE(change.ok()) << change.error->ToString();
    // Two VIPs; the new endpoint's node becomes a tunnel peer.
    EXPECT_EQ(change.writes.ToString(), "backend=1 table=1 service=2 peer=1");
    check_tables();
  }
  BpfMapStore store(*dp);
  Syncer restarted(store);
  ASSERT_TRUE(restarted.Adopt().ok());
  ASSERT_TRUE(restarted.PlanChanges(m, all, planner).ok());
  const SyncResult r = restarted.SyncChanges();
  ASSERT_TRUE(r.ok()) << r.error->ToString();
  EXPECT_EQ(r.writes.total(), 0u) << r.writes.ToString();
}

// Backends go in with batch updates; an entry the kernel refuses (an id beyond the map) stops
// the call there, and `written` says how many are in.
TEST_F(BpfSync, BackendBatchesSayHowManyWentIn) {
  auto dp = Load();
  ASSERT_NE(dp, nullptr);
  BpfMapStore store(*dp);
  std::vector<MapStore::BackendWrite> writes;
  for (uint32_t id = 1; id < 256; ++id) {
    xlb_backend b{};
    b.addr[0] = htonl(0xc6120000u + id);  // 198.18.0.id
    b.port = htons(8080);
    b.family = XLB_FAMILY_IPV4;
    b.flags = XLB_BE_F_VALID;
    writes.push_back({id, b});
  }
  size_t written = 0;
  auto r = store.PutBackends(writes, written);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(written, writes.size());
  for (const auto& w : writes) {
    auto got = dp->backends().Lookup(w.id);
    ASSERT_TRUE(got.ok()) << w.id;
    EXPECT_EQ(got->addr[0], w.backend.addr[0]) << w.id;
  }

  std::vector<MapStore::BackendWrite> bad(writes.begin(), writes.begin() + 10);
  bad[6].id = 256;  // max_backends is 256: ids 1..255
  bad[2].backend.port = htons(9090);
  r = store.PutBackends(bad, written);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(written, 6u);
  EXPECT_NE(r.error().what.find("backend 256"), std::string::npos) << r.error().ToString();
  EXPECT_EQ(ntohs(dp->backends().Lookup(3)->port), 9090);  // before the refused one: in
}

// A SYN to the synced ClusterIP is DNATed to the backend the synced table names for its slot.
TEST_F(BpfSync, PacketToTheSyncedVipReachesABackendOfTheService) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  m.PutService(ApiService());
  AddEndpoints(m, kApi, "cluster-a", 1, 3);  // local: routed, DNAT only
  auto dp = Load();
  ASSERT_NE(dp, nullptr);
  BpfMapStore store(*dp);
  Syncer syncer(store);
  ASSERT_TRUE(syncer.Adopt().ok());
  auto desired = syncer.Plan(m, DefaultPlans(m));
  ASSERT_TRUE(desired.ok());
  ASSERT_TRUE(syncer.Sync(*desired).ok());

  const uint32_t service_id = desired->Find(kApi, 8080)->id;
  auto table = dp->ReadMaglevTable(service_id);
  ASSERT_TRUE(table.ok()) << table.error().ToString();
  const auto addresses = BackendAddresses(syncer.held());
  const xlb_config cfg = dp->options().config;
  std::set<std::string> seen;
  for (uint16_t i = 0; i < 64; ++i) {
    const uint16_t sport = static_cast<uint16_t>(40000 + i);
    const auto frame = pkt::Packet()
                           .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                           .ipv4("198.18.128.1", "198.18.100.10")
                           .tcp(sport, 8080, pkt::kTcpSyn)
                           .build();
    auto run = TestRunXdp(dp->prog_fd(), frame);
    ASSERT_TRUE(run.ok()) << run.error().ToString();
    EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS));
    const pkt::Decoded d = pkt::Decode(run->out);
    ASSERT_TRUE(d.ok()) << d.error;
    EXPECT_EQ(d.src, "198.18.128.1");
    EXPECT_EQ(d.dport, 8080);
    EXPECT_EQ(d.ip_csum, pkt::Csum::kValid);
    EXPECT_EQ(d.l4_csum, pkt::Csum::kValid);

    xlb_ct_key key{};
    IpAddress::Parse("198.18.128.1")->ToAbiWords(key.saddr);
    IpAddress::Parse("198.18.100.10")->ToAbiWords(key.daddr);
    key.sport = htons(sport);
    key.dport = htons(8080);
    key.proto = IPPROTO_TCP;
    key.family = XLB_FAMILY_IPV4;
    const uint32_t backend = (*table)[MaglevSlot(key, false, cfg.hash_seed, cfg.maglev_size)];
    ASSERT_EQ(addresses.count(backend), 1u) << "slot names backend " << backend;
    EXPECT_EQ(d.dst, addresses.at(backend)) << Describe(d);
    seen.insert(d.dst);
  }
  EXPECT_EQ(seen.size(), 3u);  // 64 flows over 3 equal backends reach each of them
}

// A SYN to the node's address on the synced nodePort is DNATed, like one to the ClusterIP, to
// the backend the port's table names for its slot.
TEST_F(BpfSync, PacketToTheNodeAddressOnTheNodePortReachesABackendOfTheService) {
  constexpr uint16_t kNodePort = 30080;
  Model m;
  m.PutCluster({1, "cluster-a", true});
  Service api = ApiService();
  api.ports.front().node_port = kNodePort;
  m.PutService(api);
  AddEndpoints(m, kApi, "cluster-a", 1, 3);
  // Without a node name every endpoint of the local cluster is this node's: DNAT only (named,
  // the fixture's endpoints on other nodes would be tunnelled, and this load has no tunnel
  // address).
  m.SetLocalNode({"", {*IpAddress::Parse("198.18.0.11")}});
  auto dp = Load();
  ASSERT_NE(dp, nullptr);
  BpfMapStore store(*dp);
  Syncer syncer(store);
  ASSERT_TRUE(syncer.Adopt().ok());
  auto desired = syncer.Plan(m, DefaultPlans(m));
  ASSERT_TRUE(desired.ok());
  EXPECT_TRUE(desired->problems.empty());
  ASSERT_TRUE(syncer.Sync(*desired).ok());

  const uint32_t service_id = desired->Find(kApi, 8080)->id;
  auto read = store.ReadAll();
  ASSERT_TRUE(read.ok()) << read.error().ToString();
  ASSERT_EQ(read->services.count(KeyOf("198.18.0.11", kNodePort, Protocol::kTcp)), 1u);
  EXPECT_EQ(read->services.at(KeyOf("198.18.0.11", kNodePort, Protocol::kTcp)).id, service_id);
  auto table = dp->ReadMaglevTable(service_id);
  ASSERT_TRUE(table.ok()) << table.error().ToString();
  const auto addresses = BackendAddresses(syncer.held());
  const xlb_config cfg = dp->options().config;
  std::set<std::string> seen;
  for (uint16_t i = 0; i < 64; ++i) {
    const uint16_t sport = static_cast<uint16_t>(40000 + i);
    const auto frame = pkt::Packet()
                           .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                           .ipv4("198.18.128.1", "198.18.0.11")
                           .tcp(sport, kNodePort, pkt::kTcpSyn)
                           .build();
    auto run = TestRunXdp(dp->prog_fd(), frame);
    ASSERT_TRUE(run.ok()) << run.error().ToString();
    EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS));
    const pkt::Decoded d = pkt::Decode(run->out);
    ASSERT_TRUE(d.ok()) << d.error;
    EXPECT_EQ(d.src, "198.18.128.1");
    EXPECT_EQ(d.dport, 8080);  // the endpoints' port
    EXPECT_EQ(d.ip_csum, pkt::Csum::kValid);
    EXPECT_EQ(d.l4_csum, pkt::Csum::kValid);

    xlb_ct_key key{};
    IpAddress::Parse("198.18.128.1")->ToAbiWords(key.saddr);
    IpAddress::Parse("198.18.0.11")->ToAbiWords(key.daddr);
    key.sport = htons(sport);
    key.dport = htons(kNodePort);
    key.proto = IPPROTO_TCP;
    key.family = XLB_FAMILY_IPV4;
    const uint32_t backend = (*table)[MaglevSlot(key, false, cfg.hash_seed, cfg.maglev_size)];
    ASSERT_EQ(addresses.count(backend), 1u) << "slot names backend " << backend;
    EXPECT_EQ(d.dst, addresses.at(backend)) << Describe(d);
    seen.insert(d.dst);
  }
  EXPECT_EQ(seen.size(), 3u);

  // A packet to the node address on another port is not the service's.
  const auto other = pkt::Packet()
                         .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                         .ipv4("198.18.128.1", "198.18.0.11")
                         .tcp(40000, 22, pkt::kTcpSyn)
                         .build();
  auto run = TestRunXdp(dp->prog_fd(), other);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS));
  const pkt::Decoded d = pkt::Decode(run->out);
  ASSERT_TRUE(d.ok()) << d.error;
  EXPECT_EQ(d.dst, "198.18.0.11");
  EXPECT_EQ(d.dport, 22);
}

}  // namespace
}  // namespace xlb::testing
