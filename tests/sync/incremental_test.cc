// Incremental planning and sync: the model's record of what its mutators changed, the
// comparison of two models, and the syncer's tracked state (DesiredStateTracker): fed change
// after change, it must hold exactly what a fresh tracker fed the final model at once
// (BuildDesiredState over the same maps) holds, while planning and diffing only what changed.
// No root.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sync_fixtures.h"
#include "userspace/sync/desired_state_tracker.h"

namespace xlb::testing {
namespace {

const NamespacedName kWeb{"production", "web"};

Service SimpleService(const NamespacedName& name, const std::string& vip, uint16_t port = 80) {
  Service s;
  s.name = name;
  s.cluster_ips = {*IpAddress::Parse(vip)};
  s.ports = {ServicePort{"http", port, Protocol::kTcp, 8080, "", 0, ""}};
  return s;
}

NamespacedName Nth(int i) {
  return {"bench", "svc-" + std::to_string(i)};
}

// `n` services bench/svc-I at 198.19.I/256.I%256, each with `per` endpoints in cluster-a and
// cluster-b (addresses unique per service; n * per < 8192).
Model ManyServices(int n, int per = 2) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  m.PutCluster({2, "cluster-b", false});
  for (int i = 0; i < n; ++i) {
    m.PutService(
        SimpleService(Nth(i), "198.19." + std::to_string(i / 256) + "." + std::to_string(i % 256)));
    for (int c = 1; c <= 2; ++c) {
      std::vector<Endpoint> eps;
      for (int j = 0; j < per; ++j) {
        Endpoint e;
        e.service = Nth(i);
        e.cluster = c == 1 ? "cluster-a" : "cluster-b";
        const int k = i * per + j;  // unique per service and endpoint
        e.addresses = {*IpAddress::Parse("198.18." + std::to_string(c * 32 + k / 256) + "." +
                                         std::to_string(k % 256))};
        e.ports = {{"http", 8080, Protocol::kTcp}};
        eps.push_back(std::move(e));
      }
      m.SetEndpoints(Nth(i), c == 1 ? "cluster-a" : "cluster-b", std::move(eps));
    }
  }
  return m;
}

// The plans of one service without policies.
ServicePlanner DefaultPlanner(const Model& model) {
  return [&model](const NamespacedName& name) -> std::vector<ServiceBackends> {
    const Service* s = model.FindService(name);
    return s != nullptr ? PlanService(model, *s, Routes{}) : std::vector<ServiceBackends>{};
  };
}

std::set<NamespacedName> AllOf(const Model& m) {
  std::set<NamespacedName> out;
  for (const auto& [name, s] : m.services()) {
    out.insert(name);
  }
  return out;
}

// What to re-plan for what the model's mutators recorded.
struct Changes {
  std::set<NamespacedName> services;
  bool nodes = false;
};
Changes Changed(Model& m) {
  ModelChanges c = m.TakeChanges();
  return {c.everything ? AllOf(m) : c.services, c.nodes || c.everything};
}

class IncrementalTest : public ::testing::Test {
 public:
  void SetUp() override { ASSERT_TRUE(syncer_.Adopt().ok()); }

  // Plans `changed` (everything the first time) and syncs; checks the result against a fresh
  // build of the same model.
  SyncResult Step(const Model& model, const Changes& changed) {
    auto planned = syncer_.PlanChanges(model, syncer_.tracking() ? changed.services : AllOf(model),
                                       DefaultPlanner(model));
    EXPECT_TRUE(planned.ok()) << planned.error().ToString();
    if (changed.nodes) {
      syncer_.PlanNodes(model);
    }
    SyncResult r = syncer_.SyncChanges();
    EXPECT_TRUE(r.ok()) << r.error->ToString();
    EXPECT_TRUE(store_.violations().empty()) << store_.violations().front();
    ExpectSameAsFreshBuild(model);
    return r;
  }

  // A fresh tracker (BuildDesiredState), fed the whole model at once and planned by
  // PlanBackends() rather than service by service, over what the store holds (after a
  // successful sync every id is in the store), must equal the long-lived tracked state: the
  // ids the incremental updates handed out are the ones a restarted agent derives from the
  // maps. And the store must hold that state.
  void ExpectSameAsFreshBuild(const Model& model) {
    auto full = syncer_.Plan(model, DefaultPlans(model));
    ASSERT_TRUE(full.ok()) << full.error().ToString();
    const DesiredMaps& tracked = syncer_.tracked()->maps();
    EXPECT_TRUE(full->maps == tracked)
        << "full: " << full->maps.backends.size() << " backends, " << full->maps.tables.size()
        << " tables, " << full->maps.services.size()
        << " keys; tracked: " << tracked.backends.size() << ", " << tracked.tables.size() << ", "
        << tracked.services.size();
    if (!(full->maps == tracked)) {
      for (const auto& [id, b] : full->maps.backends) {
        auto it = tracked.backends.find(id);
        if (it == tracked.backends.end() || !AbiEqual(it->second, b)) {
          ADD_FAILURE() << "backend " << id << " differs";
        }
      }
      for (const auto& [id, r] : full->maps.tables) {
        auto it = tracked.tables.find(id);
        if (it == tracked.tables.end() || !(it->second == r)) {
          ADD_FAILURE() << "table " << id << " differs";
        }
      }
      for (const auto& [key, v] : full->maps.services) {
        auto it = tracked.services.find(key);
        if (it == tracked.services.end() || !AbiEqual(it->second, v)) {
          ADD_FAILURE() << "service entry of id " << v.id << " differs: tracked "
                        << (it == tracked.services.end()
                                ? std::string("none")
                                : std::to_string(it->second.id) + " count " +
                                      std::to_string(it->second.backend_count))
                        << " full count " << v.backend_count << " port " << ntohs(key.port)
                        << " addr " << std::hex << key.addr[0] << std::dec;
        }
      }
      if (full->maps.vip_filter != tracked.vip_filter) {
        ADD_FAILURE() << "VIP filter differs";
      }
      for (const auto& k : full->maps.affinity_match) {
        if (tracked.affinity_match.count(k) == 0) {
          ADD_FAILURE() << "affinity match " << k.service_id << "/" << k.backend_id
                        << " not tracked";
        }
      }
      for (const auto& k : full->maps.source_ranges) {
        if (tracked.source_ranges.count(k) == 0) {
          ADD_FAILURE() << "source range of " << k.service_id << " not tracked";
        }
      }
      if (full->maps.peers.size() != tracked.peers.size()) {
        ADD_FAILURE() << "peers differ: full " << full->maps.peers.size() << ", tracked "
                      << tracked.peers.size();
      }
      if (full->maps.affinity_match.size() != tracked.affinity_match.size()) {
        ADD_FAILURE() << "affinity matches differ: full " << full->maps.affinity_match.size()
                      << ", tracked " << tracked.affinity_match.size();
      }
      if (full->maps.source_ranges.size() != tracked.source_ranges.size()) {
        ADD_FAILURE() << "source ranges differ: full " << full->maps.source_ranges.size()
                      << ", tracked " << tracked.source_ranges.size();
      }
    }
    EXPECT_EQ(full->problems, syncer_.tracked()->Problems());
    MapContents want = *full->maps.Contents();
    MapContents have = store_.contents();
    std::erase_if(have.backends,
                  [](const auto& b) { return (b.second.flags & XLB_BE_F_VALID) == 0; });
    EXPECT_TRUE(want == have);
  }

  // Small tables: the checking store looks at every slot of every table after each write.
  CheckingStore store_{StoreLimits{251, XLB_MAX_SERVICES, XLB_MAX_BACKENDS}};
  Syncer syncer_{store_};
};

TEST(ModelChanges, MutatorsRecordTheServicesTheyTouch) {
  Model m = TwoClusters();
  EXPECT_TRUE(m.TakeChanges().everything);  // nothing of a new model is planned yet
  EXPECT_TRUE(m.TakeChanges().empty());

  AddEndpoints(m, kApi, "cluster-a", 1, 1, {}, 9);
  m.PutService(SimpleService(kWeb, "198.18.100.20"));
  ModelChanges c = m.TakeChanges();
  EXPECT_FALSE(c.everything);
  EXPECT_EQ(c.services, (std::set<NamespacedName>{kApi, kWeb}));

  m.SetEndpoints(kWeb, "cluster-b", {});
  EXPECT_EQ(m.TakeChanges().services, std::set<NamespacedName>{kWeb});

  m.RemoveService(kApi);
  c = m.TakeChanges();
  EXPECT_EQ(c.services, std::set<NamespacedName>{kApi});
  EXPECT_EQ(m.FindService(kApi), nullptr);
  EXPECT_TRUE(m.EndpointsOf(kApi).empty());  // its endpoints went with it

  m.PutCluster({3, "cluster-c", false});
  EXPECT_TRUE(m.TakeChanges().everything);
  m.SetLocalNode({"node-1", {*IpAddress::Parse("198.18.0.1")}});
  EXPECT_TRUE(m.TakeChanges().everything);
  EXPECT_TRUE(m.SetLocalCluster("cluster-b"));
  EXPECT_TRUE(m.TakeChanges().everything);
}

TEST(ModelChanges, DiffModelsNamesChangedAddedAndRemovedServices) {
  Model before = TwoClusters();
  AddWebService(before, 2);
  Model after = before;
  EXPECT_TRUE(DiffModels(before, after).empty());

  AddEndpoints(after, kApi, "cluster-b", 2, 1, {}, 7);  // api changed
  after.RemoveService(kWeb);                            // web gone
  after.PutService(SimpleService({"production", "new"}, "198.18.100.30"));
  ModelChanges c = DiffModels(before, after);
  EXPECT_FALSE(c.everything);
  EXPECT_EQ(c.services,
            (std::set<NamespacedName>{kApi, kWeb, NamespacedName{"production", "new"}}));

  Model other_node = before;
  other_node.SetLocalNode({"n", {*IpAddress::Parse("198.18.0.9")}});
  EXPECT_TRUE(DiffModels(before, other_node).everything);
  Model other_cluster = before;
  other_cluster.PutCluster({9, "cluster-z", false});
  EXPECT_TRUE(DiffModels(before, other_cluster).everything);
}

// Node addresses are a set per cluster, and setting the same set again is no change (a Node's
// status updates rewrite its addresses all the time).
TEST(ModelChanges, NodeAddressesAreSortedOnceEachAndOnlyADifferenceIsAChange) {
  auto ip = [](const char* s) { return *IpAddress::Parse(s); };
  Model m = TwoClusters();
  m.TakeChanges();
  EXPECT_TRUE(m.SetNodeAddresses(
      "cluster-a", {ip("198.18.1.3"), ip("2001:db8::3"), ip("198.18.1.2"), ip("198.18.1.3")}));
  ModelChanges c = m.TakeChanges();
  EXPECT_TRUE(c.nodes);
  EXPECT_FALSE(c.everything);
  EXPECT_TRUE(c.services.empty());
  EXPECT_FALSE(c.empty());
  EXPECT_EQ(m.node_addresses().at("cluster-a"),
            (std::vector<IpAddress>{ip("198.18.1.2"), ip("198.18.1.3"), ip("2001:db8::3")}));
  EXPECT_FALSE(
      m.SetNodeAddresses("cluster-a", {ip("198.18.1.2"), ip("2001:db8::3"), ip("198.18.1.3")}));
  EXPECT_TRUE(m.TakeChanges().empty());
  EXPECT_FALSE(m.SetNodeAddresses("cluster-b", {}));  // nothing to forget

  Model before = m;
  EXPECT_FALSE(DiffModels(before, m).nodes);
  EXPECT_TRUE(m.SetNodeAddresses("cluster-a", {}));
  EXPECT_EQ(m.node_addresses().count("cluster-a"), 0u);
  ModelChanges diff = DiffModels(before, m);
  EXPECT_TRUE(diff.nodes);
  EXPECT_FALSE(diff.everything);
  EXPECT_TRUE(diff.services.empty());

  ModelChanges merged;
  merged.Merge(ModelChanges{.everything = true, .services = {}, .nodes = false});
  merged.Merge(diff);
  EXPECT_TRUE(merged.nodes) << "a merge keeps the nodes flag, also into everything";
}

TEST(PlanService, EqualsPlanBackendsServiceByService) {
  Model m = TwoClusters();
  AddWebService(m, 3);
  Service dual = SimpleService({"production", "dual"}, "198.18.100.40");
  dual.cluster_ips.push_back(*IpAddress::Parse("2001:db8::40"));
  m.PutService(dual);
  m.PutService(SimpleService({"production", "empty"}, "198.18.100.50"));
  std::vector<ServiceBackends> pieces;
  for (const auto& [name, s] : m.services()) {
    for (ServiceBackends& p : PlanService(m, s, Routes{})) {
      pieces.push_back(std::move(p));
    }
  }
  const std::vector<ServiceBackends> whole = DefaultPlans(m);
  ASSERT_EQ(pieces.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(pieces[i].service, whole[i].service);
    EXPECT_EQ(pieces[i].port, whole[i].port);
    EXPECT_EQ(pieces[i].family, whole[i].family);
    ASSERT_EQ(pieces[i].backends.size(), whole[i].backends.size());
    for (size_t j = 0; j < whole[i].backends.size(); ++j) {
      EXPECT_EQ(pieces[i].backends[j].key, whole[i].backends[j].key);
      EXPECT_EQ(pieces[i].backends[j].weight, whole[i].backends[j].weight);
    }
  }
}

TEST(IdPool, HandsOutTheLowestFreeIdAndNeverZero) {
  IdPool pool(130);
  EXPECT_TRUE(pool.taken(0));
  pool.Take(1);
  pool.Take(3);
  EXPECT_EQ(pool.TakeLowest(), 2u);
  EXPECT_EQ(pool.TakeLowest(), 4u);
  pool.Free(1);
  EXPECT_EQ(pool.TakeLowest(), 1u);
  for (uint32_t id = 5; id < 130; ++id) {
    EXPECT_EQ(pool.TakeLowest(), id);
  }
  EXPECT_EQ(pool.TakeLowest(), std::nullopt);
  pool.Free(77);
  EXPECT_EQ(pool.TakeLowest(), 77u);
}

TEST_F(IncrementalTest, OneEndpointChangeTouchesOneServiceAndWritesThreeEntries) {
  Model m = ManyServices(100);
  const SyncResult first = Step(m, Changed(m));
  EXPECT_EQ(first.writes[WriteKind::kTable], 100u);
  EXPECT_EQ(first.writes[WriteKind::kBackend], 400u);

  // One endpoint of one service goes, as an EndpointSlice update would say.
  std::vector<Endpoint> eps(m.EndpointsOf(Nth(17)).begin(), m.EndpointsOf(Nth(17)).end());
  std::erase_if(eps, [](const Endpoint& e) { return e.cluster != "cluster-b"; });
  eps.pop_back();
  m.SetEndpoints(Nth(17), "cluster-b", eps);
  const ModelChanges c = m.TakeChanges();
  ASSERT_EQ(c.services, std::set<NamespacedName>{Nth(17)});

  ASSERT_TRUE(syncer_.PlanChanges(m, c.services, DefaultPlanner(m)).ok());
  // Only that service's entries are looked at: O(changed), not O(all).
  EXPECT_EQ(syncer_.tracked()->last_group(), std::set<NamespacedName>{Nth(17)});
  EXPECT_EQ(syncer_.unsynced().tables.size(), 1u);
  EXPECT_EQ(syncer_.unsynced().backends.size(), 4u);
  EXPECT_EQ(syncer_.unsynced().services.size(), 1u);
  const SyncResult r = syncer_.SyncChanges();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.writes.total(), 3u) << r.writes.ToString();
  EXPECT_EQ(r.writes[WriteKind::kTable], 1u);
  EXPECT_EQ(r.writes[WriteKind::kBackend], 1u);  // invalidated
  EXPECT_EQ(r.writes[WriteKind::kService], 1u);  // backend_count
  EXPECT_TRUE(syncer_.unsynced().empty());
  ExpectSameAsFreshBuild(m);

  // Nothing changed: nothing planned, nothing written.
  ASSERT_TRUE(syncer_.PlanChanges(m, {}, DefaultPlanner(m)).ok());
  EXPECT_EQ(syncer_.SyncChanges().writes.total(), 0u);
}

// One random change: services come and go (sometimes on another service's VIP, with a
// NodePort, dual-stack, with session affinity, a second port, an SCTP port), endpoints come and
// go (addresses shared between services, terminating ones), the local node moves (its address
// sometimes one of the VIPs), a service's affinity flips, a cluster's node list changes (its
// addresses sometimes those of endpoints' nodes); LoadBalancer IPs with source ranges and
// Local traffic policies split services into internal and external tables.
void ChangeAtRandom(Model& m, std::mt19937& rng) {
  const NamespacedName name = Nth(static_cast<int>(rng() % 44));  // some do not exist yet
  switch (rng() % 10) {
    case 0:
      m.RemoveService(name);
      break;
    case 1: {
      Service s = SimpleService(name, "198.19.0." + std::to_string(rng() % 48),
                                rng() % 5 == 0 ? 30000 : 80);
      if (rng() % 2 == 0) {
        s.ports[0].node_port = static_cast<uint16_t>(30000 + rng() % 3);
      }
      if (rng() % 3 == 0) {
        s.cluster_ips.push_back(*IpAddress::Parse("2001:db8::" + std::to_string(rng() % 40)));
      }
      if (rng() % 4 == 0) {
        s.affinity = SessionAffinity::kClientIP;
        s.affinity_timeout_s = 60;
      }
      if (rng() % 3 == 0) {  // a LoadBalancer IP, behind source ranges, external policy Local
        s.load_balancer_ips = {*IpAddress::Parse("198.19.1." + std::to_string(rng() % 48))};
        if (rng() % 2 == 0) {
          s.load_balancer_source_ranges = {*IpPrefix::Parse("198.18.0.0/15")};
        }
        if (rng() % 2 == 0) {
          s.external_policy = ServiceTrafficPolicy::kLocal;
        }
      }
      if (rng() % 5 == 0) {
        s.internal_policy = ServiceTrafficPolicy::kLocal;
      }
      if (rng() % 6 == 0) {
        s.ports.push_back(ServicePort{"dns", 53, Protocol::kUdp, 8053, "", 0, ""});
      } else if (rng() % 10 == 0) {
        s.ports.push_back(ServicePort{"sctp", 9999, Protocol::kSctp, 9999, "", 0, ""});
      }
      m.PutService(s);
      break;
    }
    case 2:
      m.SetEndpoints(name, "cluster-b", {});
      break;
    case 3: {
      LocalNode node{"node-1", {*IpAddress::Parse(rng() % 3 == 0 ? "198.19.0.5" : "198.18.0.1")}};
      if (rng() % 2 == 0) {
        node.addresses.push_back(*IpAddress::Parse("2001:db8::1"));
      }
      m.SetLocalNode(node);
      break;
    }
    case 4:
      if (const Service* s = m.FindService(name)) {
        Service flipped = *s;
        flipped.affinity = s->affinity == SessionAffinity::kClientIP ? SessionAffinity::kNone
                                                                     : SessionAffinity::kClientIP;
        if (rng() % 2 == 0) {
          flipped.external_policy = s->external_policy == ServiceTrafficPolicy::kLocal
                                        ? ServiceTrafficPolicy::kCluster
                                        : ServiceTrafficPolicy::kLocal;
        }
        m.PutService(flipped);
      }
      break;
    case 5: {  // cluster-a's nodes are 198.18.0.1, .2, .5; cluster-b's .3, .4, .6
      const bool a = rng() % 2 == 0;
      std::vector<IpAddress> nodes;
      for (int node : a ? std::array{1, 2, 5} : std::array{3, 4, 6}) {
        if (rng() % 2 == 0) {
          nodes.push_back(*IpAddress::Parse("198.18.0." + std::to_string(node)));
        }
      }
      m.SetNodeAddresses(a ? "cluster-a" : "cluster-b", std::move(nodes));
      break;
    }
    default: {  // an endpoint comes or goes
      Endpoint e;
      e.service = name;
      e.cluster = rng() % 2 ? "cluster-a" : "cluster-b";
      const int octet = static_cast<int>(rng() % 60);
      e.addresses = {*IpAddress::Parse("198.18.50." + std::to_string(octet))};
      e.ports = {{"http", 8080, Protocol::kTcp}};
      if (rng() % 4 == 0) {
        e.conditions.terminating = true;
      }
      // On this node or not (Local policies). A pod is on one node whichever service it
      // serves, and a node is in one cluster (its peer entry's).
      const int node = octet % 2 + (e.cluster == "cluster-a" ? 1 : 3);
      e.node_name = "node-" + std::to_string(node);
      e.node_address = *IpAddress::Parse("198.18.0." + std::to_string(node));
      m.AddEndpoint(e);
      break;
    }
  }
}

// The long-lived tracked state, fed one random change after another, equals a fresh build of
// the same model after every step (Step() checks).
void RandomChangesMatchAFreshBuild(IncrementalTest& test, uint32_t seed, int steps) {
  Model m = ManyServices(40, 3);
  m.SetLocalNode({"node-1", {*IpAddress::Parse("198.18.0.1")}});
  test.Step(m, Changed(m));
  std::mt19937 rng(seed);
  for (int step = 0; step < steps; ++step) {
    ChangeAtRandom(m, rng);
    SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step));
    test.Step(m, Changed(m));
    if (::testing::Test::HasFailure()) {
      break;
    }
  }
}

// A change of node addresses alone re-plans no service: PlanNodes() writes the peers it adds
// or removes, nothing else.
TEST_F(IncrementalTest, ANodeListChangeWritesOnlyThePeersItChanges) {
  Model m = TwoClusters(2);
  m.SetNodeAddresses("cluster-b", {*IpAddress::Parse("198.18.0.29")});
  Step(m, Changed(m));
  m.SetNodeAddresses("cluster-b",
                     {*IpAddress::Parse("198.18.0.29"), *IpAddress::Parse("2001:db8::30")});
  Changes c = Changed(m);
  EXPECT_TRUE(c.nodes);
  EXPECT_TRUE(c.services.empty());
  SyncResult r = Step(m, c);
  EXPECT_EQ(r.writes.total(), 1u) << r.writes.ToString();
  EXPECT_EQ(r.writes[WriteKind::kPeer], 1u) << r.writes.ToString();
  m.SetNodeAddresses("cluster-b", {});
  r = Step(m, Changed(m));
  EXPECT_EQ(r.writes.total(), 2u) << r.writes.ToString();
  EXPECT_EQ(r.writes[WriteKind::kPeerRemoval], 2u) << r.writes.ToString();
}

TEST_F(IncrementalTest, RandomChangesMatchAFullBuildAfterEveryStep) {
  RandomChangesMatchAFreshBuild(*this, 7, 120);
}

class RandomChangesTest : public IncrementalTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(RandomChangesTest, MatchAFreshBuildAfterEveryStep) {
  RandomChangesMatchAFreshBuild(*this, GetParam(), 80);
}

INSTANTIATE_TEST_SUITE_P(Seeds, RandomChangesTest, ::testing::Values(1u, 2u, 3u, 4u, 5u, 6u));

// The first plan names every service: more than 512 tables are planned by two planners at
// once, each service by exactly one of them, and each table gets its own service's backends.
TEST_F(IncrementalTest, ALongPlanIsReadByTwoPlannersEachServiceOnce) {
  constexpr int kServices = 600;
  Model m = ManyServices(kServices);
  const ServicePlanner plain = DefaultPlanner(m);
  std::mutex mu;
  std::map<NamespacedName, int> calls;
  std::set<std::thread::id> threads;
  std::map<std::string, NamespacedName> owner;  // backend key -> its service
  const ServicePlanner counting = [&](const NamespacedName& name) {
    std::vector<ServiceBackends> plans = plain(name);
    const std::lock_guard lock(mu);
    ++calls[name];
    threads.insert(std::this_thread::get_id());
    for (const ServiceBackends& plan : plans) {
      for (const WeightedBackend& b : plan.backends) {
        owner.emplace(b.key, name);
      }
    }
    return plans;
  };
  ASSERT_TRUE(syncer_.PlanChanges(m, AllOf(m), counting).ok());
  EXPECT_EQ(threads.size(), 2u);
  ASSERT_EQ(calls.size(), static_cast<size_t>(kServices));
  for (const auto& [name, n] : calls) {
    EXPECT_EQ(n, 1) << name.ToString();
  }
  // Every table lists the four backends of one service, and every service has one table.
  const DesiredMaps& maps = syncer_.tracked()->maps();
  ASSERT_EQ(maps.tables.size(), static_cast<size_t>(kServices));
  std::set<NamespacedName> tabled;
  for (const auto& [id, recipe] : maps.tables) {
    ASSERT_EQ(recipe.members.size(), 4u) << "table " << id;
    const NamespacedName& first = owner.at(recipe.members.front().key);
    for (const MaglevBackend& member : recipe.members) {
      EXPECT_EQ(owner.at(member.key), first) << "table " << id;
    }
    tabled.insert(first);
  }
  EXPECT_EQ(tabled.size(), static_cast<size_t>(kServices));
  const SyncResult r = syncer_.SyncChanges();
  ASSERT_TRUE(r.ok()) << r.error->ToString();
  ExpectSameAsFreshBuild(m);
}

TEST_F(IncrementalTest, LosingAVipToAnEarlierServiceAndGettingItBack) {
  Model m;
  m.PutCluster({1, "cluster-a", true});
  const NamespacedName a{"production", "a"}, b{"production", "b"};
  m.PutService(SimpleService(b, "198.18.100.60"));
  AddEndpoints(m, b, "cluster-a", 1, 2);
  Step(m, Changed(m));
  const uint32_t b_id = syncer_.tracked()->Find(b, 80)->id;

  // a (first by name) now wants b's VIP: b loses it and its table, though b did not change.
  m.PutService(SimpleService(a, "198.18.100.60"));
  AddEndpoints(m, a, "cluster-a", 1, 1, {}, 50);
  Step(m, Changed(m));
  EXPECT_EQ(syncer_.tracked()->Find(b, 80), nullptr);
  ASSERT_NE(syncer_.tracked()->Find(a, 80), nullptr);

  // a goes: b gets its VIP back.
  m.RemoveService(a);
  Step(m, Changed(m));
  ASSERT_NE(syncer_.tracked()->Find(b, 80), nullptr);
  EXPECT_NE(syncer_.tracked()->Find(b, 80)->id, 0u);
  (void)b_id;
}

TEST_F(IncrementalTest, FreedIdIsReusedOnlyAfterTheSyncThatFreedIt) {
  Model m = TwoClusters(2);
  AddWebService(m, 1);
  Step(m, Changed(m));
  const uint32_t web_backend = syncer_.tracked()->Find(kWeb, 80)->backend_ids.at(0);

  // web's endpoint goes and a new one of api comes in the same plan: the new one must not
  // take the id just freed.
  m.SetEndpoints(kWeb, "cluster-a", {});
  AddEndpoints(m, kApi, "cluster-a", 1, 1, {}, 40);
  Step(m, Changed(m));
  std::set<uint32_t> api_ids;
  for (uint32_t id : syncer_.tracked()->Find(kApi, 8080)->backend_ids) {
    api_ids.insert(id);
  }
  EXPECT_EQ(api_ids.count(web_backend), 0u);

  // A later one may.
  AddEndpoints(m, kApi, "cluster-a", 1, 1, {}, 41);
  Step(m, Changed(m));
  api_ids.clear();
  for (uint32_t id : syncer_.tracked()->Find(kApi, 8080)->backend_ids) {
    api_ids.insert(id);
  }
  EXPECT_EQ(api_ids.count(web_backend), 1u);
}

TEST_F(IncrementalTest, FailedWriteIsRetriedByTheNextSyncEvenAfterMoreChanges) {
  Model m = ManyServices(20);
  Step(m, Changed(m));
  AddEndpoints(m, Nth(3), "cluster-a", 1, 1, {}, 90);
  store_.FailWrite(WriteKind::kTable);
  ASSERT_TRUE(syncer_.PlanChanges(m, Changed(m).services, DefaultPlanner(m)).ok());
  EXPECT_FALSE(syncer_.SyncChanges().ok());
  EXPECT_FALSE(syncer_.unsynced().empty());

  AddEndpoints(m, Nth(5), "cluster-a", 1, 1, {}, 91);
  const SyncResult r = Step(m, Changed(m));
  EXPECT_EQ(r.writes[WriteKind::kTable], 2u);  // the failed one and the new one
}

TEST_F(IncrementalTest, RestartedSyncerWritesNothingAfterIncrementalSyncs) {
  Model m = ManyServices(30);
  Step(m, Changed(m));
  for (int i = 0; i < 5; ++i) {
    AddEndpoints(m, Nth(i * 3), "cluster-b", 2, 1, {}, 100 + i);
    m.RemoveService(Nth(i * 5 + 1));
    Step(m, Changed(m));
  }
  Syncer restarted(store_);
  ASSERT_TRUE(restarted.Adopt().ok());
  ASSERT_TRUE(restarted.PlanChanges(m, AllOf(m), DefaultPlanner(m)).ok());
  const SyncResult r = restarted.SyncChanges();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.writes.total(), 0u) << r.writes.ToString();
  EXPECT_TRUE(restarted.tracked()->maps() == syncer_.tracked()->maps());
}

TEST_F(IncrementalTest, FirstIncrementalSyncRemovesWhatTheMapsHoldAndNothingWants) {
  Model m = TwoClusters();
  AddWebService(m, 2);
  Step(m, Changed(m));
  // A restart with a config that lost web: the first sync drops web's entries.
  Model fewer = TwoClusters();
  Syncer restarted(store_);
  ASSERT_TRUE(restarted.Adopt().ok());
  ASSERT_TRUE(restarted.PlanChanges(fewer, AllOf(fewer), DefaultPlanner(fewer)).ok());
  const SyncResult r = restarted.SyncChanges();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.writes[WriteKind::kTableRemoval], 1u);
  EXPECT_EQ(r.writes[WriteKind::kServiceRemoval], 1u);
  EXPECT_EQ(r.writes[WriteKind::kBackend], 2u);  // invalidated
  EXPECT_EQ(store_.contents().tables.size(), 1u);
}

}  // namespace
}  // namespace xlb::testing
