// xlbctl's inspection commands against a real datapath: loaded into a pin dir of its own,
// synced from a config file and a 70/30 VirtualService the way xlb-agent syncs them, with
// TCP packets run through the real xlb_xdp (BPF_PROG_TEST_RUN) so that conntrack and the
// counters hold something. What xlbctl prints is checked against what the test knows
// independently: the table read back through the loader, the packets it sent, and the
// backend each output packet was DNATed to (decoded by tests/pkt, not by xlb code).
// Root (CI is root): without it these fail, they do not skip.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "builder.h"
#include "decoder.h"
#include "loader/tc_loader.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "sync_fixtures.h"
#include "temp_dir.h"
#include "test_env.h"
#include "userspace/model/config_source.h"
#include "userspace/policy/policy_store.h"
#include "userspace/sync/bpf_map_store.h"

namespace xlb::testing {
namespace {

using json = nlohmann::json;

// cluster-a (local): two endpoints of api-service, three of sticky (ClientIP affinity);
// cluster-b: two routed endpoints of api-service (no node: reached by routing, so every flow
// is DNAT + XDP_PASS and its output packet names its backend) and one tunnelled endpoint of
// web (its node has an address).
constexpr const char* kConfig = R"(apiVersion: xlb.dev/v1alpha1
kind: Config
clusters:
- name: cluster-a
  id: 1
  local: true
  nodes:
  - name: node-a1
    addresses: [198.18.0.11]
- name: cluster-b
  id: 2
  nodes:
  - name: node-b1
    addresses: [198.18.0.21]
services:
- name: api-service
  namespace: production
  clusterIP: 198.18.100.10
  ports:
  - name: http
    port: 8080
- name: web
  namespace: production
  clusterIP: 198.18.100.20
  ports:
  - port: 80
    targetPort: 8080
- name: sticky
  namespace: production
  clusterIP: 198.18.100.30
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 600
  ports:
  - port: 443
endpointSlices:
- service: sticky
  namespace: production
  cluster: cluster-a
  endpoints:
  - addresses: [198.18.1.21]
  - addresses: [198.18.1.22]
  - addresses: [198.18.1.23]
- service: api-service
  namespace: production
  cluster: cluster-a
  endpoints:
  - addresses: [198.18.1.1]
    nodeName: node-a1
  - addresses: [198.18.1.2]
    nodeName: node-a1
- service: api-service
  namespace: production
  cluster: cluster-b
  endpoints:
  - addresses: [198.18.2.1]
  - addresses: [198.18.2.2]
- service: web
  namespace: production
  cluster: cluster-b
  endpoints:
  - addresses: [198.18.2.10]
    nodeName: node-b1
)";

constexpr const char* kBadPolicy = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api-service
  namespace: production
spec:
  hosts:
  - api-service
  http:
  - route:
    - destination:
        host: api-service.production.svc.cluster.local
      weight: -5
    - destination:
        host: api-service.production.svc.clusterset.local
      weight: 30
)";

constexpr uint32_t kMaglevSize = 251;
constexpr uint32_t kSeed = 0x5eed1234;
constexpr const char* kClient = "198.18.128.1";
constexpr const char* kVip = "198.18.100.10";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string Xlbctl(const std::string& args) {
  return std::string(XLBCTL) + " " + args + " 2>&1";
}

class XlbctlInspect : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(config_, kConfig);
    WriteFile(policy_, kIssueVirtualService);
    WriteFile(bad_policy_, kBadPolicy);
    LoadOptions o;
    o.pin_dir = pins_.path();
    o.config.maglev_size = kMaglevSize;
    o.config.hash_seed = kSeed;
    o.max_services = 64;
    o.max_backends = 256;
    o.max_ct_entries = 1024;
    auto dp = XdpDatapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.error().ToString();
    dp_ = std::move(*dp);

    // What xlb-agent does: the config, the policies through a PolicyStore, Plan, Sync.
    auto model = LoadConfigFile(config_);
    ASSERT_TRUE(model.ok()) << ToString(model.error());
    PolicyStore policies;
    auto accepted = policies.ReplaceFromPath(policy_, *model);
    ASSERT_TRUE(accepted.ok()) << ToString(accepted.error());
    ConfigErrors problems;
    const auto plans = policies.Plan(*model, problems);
    ASSERT_TRUE(problems.empty()) << ToString(problems);
    store_ = std::make_unique<BpfMapStore>(*dp_);
    syncer_ = std::make_unique<Syncer>(*store_);
    ASSERT_TRUE(syncer_->Adopt().ok());
    auto desired = syncer_->Plan(*model, plans);
    ASSERT_TRUE(desired.ok()) << desired.error().ToString();
    const SyncResult r = syncer_->Sync(*desired);
    ASSERT_TRUE(r.ok()) << r.error->ToString();
    api_id_ = desired->Find(kApi, 8080)->id;
    for (const auto& [id, address] : BackendAddresses(syncer_->held())) {
      backend_of_[address] = id;
    }
  }

  // Runs one packet of the flow from sport to api-service (or another VIP and port);
  // returns the address it was DNATed to.
  std::string Send(uint16_t sport, uint8_t flags, const std::string& client = kClient,
                   const std::string& vip = kVip, uint16_t dport = 8080) {
    const pkt::Bytes frame = pkt::Packet()
                                 .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                                 .ipv4(client, vip)
                                 .tcp(sport, dport, flags)
                                 .build();
    auto run = TestRunXdp(dp_->prog_fd(), frame);
    EXPECT_TRUE(run.ok()) << run.error().ToString();
    if (!run.ok()) {
      return "";
    }
    EXPECT_EQ(run->retval, static_cast<uint32_t>(XDP_PASS));
    const pkt::Decoded d = pkt::Decode(run->out);
    EXPECT_TRUE(d.ok()) << d.error;
    EXPECT_EQ(d.src, client);
    EXPECT_EQ(d.dport, dport);  // the endpoints listen on the service's port
    EXPECT_EQ(d.ip_csum, pkt::Csum::kValid);
    EXPECT_EQ(d.l4_csum, pkt::Csum::kValid);
    if (vip == kVip) {
      ++packets_;
      bytes_ += frame.size();
      ++per_backend_[d.dst];
    }
    return d.dst;
  }

  json RunJson(const std::string& args) {
    const CommandResult r = RunCommand(Xlbctl(args + " --pin-dir " + pins_.path() + " -o json"));
    EXPECT_EQ(r.status, 0) << args << ":\n" << r.output;
    json doc = json::parse(r.output, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(doc.is_discarded()) << args << ":\n" << r.output;
    return doc;
  }

  // XLB_CLI_TEST_SHOW=1 prints each human output, to see what an operator sees.
  CommandResult RunHuman(const std::string& args) {
    CommandResult r = RunCommand(Xlbctl(args + " --pin-dir " + pins_.path()));
    if (std::getenv("XLB_CLI_TEST_SHOW") != nullptr) {
      std::printf("$ xlbctl %s\n%s\n", args.c_str(), r.output.c_str());
    }
    return r;
  }

  uint16_t ClusterOf(const std::string& address) const {
    return address.rfind("198.18.1.", 0) == 0 ? 1 : 2;
  }

  PinDir pins_;  // declared first: removed last, after the datapath is gone
  pkt::TempDir files_{"xlb-cli"};
  const std::string config_ = files_.File("config.yaml");
  const std::string policy_ = files_.File("api-service.yaml");
  const std::string bad_policy_ = files_.File("bad.yaml");
  std::unique_ptr<XdpDatapath> dp_;
  std::unique_ptr<BpfMapStore> store_;
  std::unique_ptr<Syncer> syncer_;
  uint32_t api_id_ = 0;
  std::map<std::string, uint32_t> backend_of_;  // address -> backend id
  uint64_t packets_ = 0;
  uint64_t bytes_ = 0;
  std::map<std::string, uint64_t> per_backend_;  // DNAT destination -> packets
};

TEST_F(XlbctlInspect, ServicesShowTheSlotSharesOfTheTable) {
  const json doc = RunJson("services");
  const json* api = nullptr;
  for (const json& s : doc["services"]) {
    if (s["vip"] == kVip && s["port"] == 8080) {
      api = &s;
    }
  }
  ASSERT_NE(api, nullptr) << doc.dump(2);
  EXPECT_EQ((*api)["proto"], "tcp");
  EXPECT_EQ((*api)["id"], api_id_);
  EXPECT_EQ((*api)["backend_count"], 4);
  const json& table = (*api)["table"];
  EXPECT_EQ(table["size"], kMaglevSize);
  EXPECT_EQ(table["empty_slots"], 0);

  // The shares, computed here from the table the loader reads back.
  auto slots = dp_->ReadMaglevTable(api_id_);
  ASSERT_TRUE(slots.ok()) << slots.error().ToString();
  std::map<uint16_t, double> expect;
  for (uint32_t id : *slots) {
    for (const auto& [address, bid] : backend_of_) {
      if (bid == id) {
        expect[ClusterOf(address)] += 100.0 / kMaglevSize;
      }
    }
  }
  std::map<uint16_t, double> shown;
  for (const json& c : table["clusters"]) {
    shown[c["cluster_id"].get<uint16_t>()] = c["share"].get<double>();
  }
  ASSERT_EQ(shown.size(), 2u) << table.dump(2);
  EXPECT_NEAR(shown[1], expect[1], 1e-9);
  EXPECT_NEAR(shown[2], expect[2], 1e-9);
  EXPECT_NEAR(shown[1], 70.0, 0.5);
  EXPECT_NEAR(shown[2], 30.0, 0.5);
  uint32_t backend_slots = 0;
  for (const json& b : table["backends"]) {
    backend_slots += b["slots"].get<uint32_t>();
  }
  EXPECT_EQ(backend_slots, kMaglevSize);

  const CommandResult human = RunHuman("services");
  ASSERT_EQ(human.status, 0) << human.output;
  EXPECT_EQ(human.output.rfind("SERVICE  ", 0), 0u) << human.output;
  EXPECT_NE(human.output.find("CLUSTER SHARE"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("198.18.100.10:8080/tcp"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("affinity(600s)"), std::string::npos) << human.output;
}

TEST_F(XlbctlInspect, BackendsSayRoutedOrTunnelled) {
  const json doc = RunJson("backends");
  std::map<std::string, json> by_address;
  for (const json& b : doc["backends"]) {
    by_address[b["address"]] = b;
  }
  ASSERT_EQ(by_address.size(), 8u) << doc.dump(2);
  EXPECT_EQ(by_address["198.18.1.1"]["cluster_id"], 1);
  EXPECT_EQ(by_address["198.18.1.1"]["path"], "routed");
  EXPECT_EQ(by_address["198.18.2.1"]["cluster_id"], 2);
  EXPECT_EQ(by_address["198.18.2.1"]["path"], "routed");
  EXPECT_EQ(by_address["198.18.2.10"]["path"], "tunnel");
  EXPECT_EQ(by_address["198.18.2.10"]["tunnel"], "198.18.0.21");
  for (const auto& [address, b] : by_address) {
    EXPECT_EQ(b["id"], backend_of_[address]) << address;
    EXPECT_EQ(b["valid"], true) << address;
  }
  const CommandResult human = RunHuman("backends");
  ASSERT_EQ(human.status, 0) << human.output;
  EXPECT_NE(human.output.find("ID  ADDRESS"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("tunnel 198.18.0.21"), std::string::npos) << human.output;
}

TEST_F(XlbctlInspect, StatsConntrackAndExplainAgreeWithThePacketsSent) {
  // Eight new flows, and an ACK on the first, which moves it to established.
  std::map<uint16_t, std::string> chosen;  // sport -> backend address
  for (uint16_t i = 0; i < 8; ++i) {
    chosen[40000 + i] = Send(40000 + i, pkt::kTcpSyn);
  }
  EXPECT_EQ(Send(40000, pkt::kTcpAck), chosen[40000]);

  const json stats = RunJson("stats");
  ASSERT_EQ(stats["services"].size(), 3u) << stats.dump(2);
  for (const json& s : stats["services"]) {
    const bool api = s["id"] == api_id_;
    EXPECT_EQ(s["packets"], api ? packets_ : 0) << s.dump();
    EXPECT_EQ(s["bytes"], api ? bytes_ : 0) << s.dump();
    EXPECT_EQ(s["new_flows"], api ? 8 : 0) << s.dump();
    if (api) {
      EXPECT_EQ(s["vips"], json::array({"198.18.100.10:8080/tcp"}));
    }
  }
  std::map<uint16_t, uint64_t> per_cluster;
  for (const auto& [address, n] : per_backend_) {
    per_cluster[ClusterOf(address)] += n;
  }
  for (const json& b : stats["backends"]) {
    const std::string address = b["address"].get<std::string>();
    const std::string host = address.substr(0, address.find(':'));
    EXPECT_EQ(b["packets"], per_backend_.count(host) ? per_backend_[host] : 0) << b.dump();
  }
  for (const json& c : stats["clusters"]) {
    EXPECT_EQ(c["packets"], per_cluster[c["cluster_id"].get<uint16_t>()]) << c.dump();
  }
  std::map<std::string, uint64_t> reasons;
  for (const json& r : stats["reasons"]) {
    reasons[r["reason"]] = r["packets"];
  }
  EXPECT_EQ(reasons["fwd_new_flow"], 8u);
  EXPECT_EQ(reasons["fwd_established"], 1u);
  EXPECT_EQ(stats["drops"], 0);

  const json ct = RunJson("conntrack");
  EXPECT_EQ(ct["total"], 8);
  const json* first = nullptr;
  for (const json& e : ct["entries"]) {
    if (e["client"] == std::string(kClient) + ":40000") {
      first = &e;
    }
  }
  ASSERT_NE(first, nullptr) << ct.dump(2);
  EXPECT_EQ((*first)["proto"], "tcp");
  EXPECT_EQ((*first)["vip"], std::string(kVip) + ":8080");
  EXPECT_EQ((*first)["backend"], chosen[40000] + ":8080");
  EXPECT_EQ((*first)["backend_id"], backend_of_[chosen[40000]]);
  EXPECT_EQ((*first)["cluster_id"], ClusterOf(chosen[40000]));
  EXPECT_EQ((*first)["state"], "established");
  EXPECT_EQ((*first)["service_id"], api_id_);
  EXPECT_EQ(RunJson("conntrack --limit 3")["shown"], 3);
  const json replies = RunJson("conntrack --replies");
  EXPECT_EQ(replies["total"], 8);
  for (const json& r : replies["replies"]) {
    EXPECT_EQ(r["kind"], "revnat");
    EXPECT_EQ(r["vip"], std::string(kVip) + ":8080");
    // seven half-open flows (the REVNAT entry inside each) and one established, each under the
    // tuple its backend answers with
    const std::string client = r["client"];
    const auto port = static_cast<uint16_t>(std::stoi(client.substr(client.rfind(':') + 1)));
    EXPECT_EQ(client, std::string(kClient) + ":" + std::to_string(port)) << r.dump();
    EXPECT_EQ(r["backend"], chosen[port] + ":8080") << r.dump();
  }
  int half_open = 0;
  for (const json& e : ct["entries"]) half_open += e["state"] == "syn_sent";
  EXPECT_EQ(half_open, 7) << ct.dump(2);

  // A tracked flow: a conntrack hit on the backend the program chose.
  const std::string tracked = std::string("explain tcp ") + kClient + " 40000 " + kVip + " 8080";
  const json hit = RunJson(tracked);
  EXPECT_EQ(hit["decision"], "conntrack_hit") << hit.dump(2);
  EXPECT_EQ(hit["backend"]["address"], chosen[40000]);
  EXPECT_EQ(hit["service"]["id"], api_id_);
  EXPECT_EQ(hit["service"]["match"], "exact");
  const CommandResult hit_text = RunHuman(tracked);
  ASSERT_EQ(hit_text.status, 0) << hit_text.output;
  EXPECT_NE(hit_text.output.find("conntrack: hit -> backend " +
                                 std::to_string(backend_of_[chosen[40000]]) + " (" + chosen[40000] +
                                 ":8080, cluster " + std::to_string(ClusterOf(chosen[40000]))),
            std::string::npos)
      << hit_text.output;

  // New flows: the prediction first, then the packet; the program picks what was predicted.
  for (uint16_t sport = 50000; sport < 50012; ++sport) {
    const json guess = RunJson("explain tcp " + std::string(kClient) + " " + std::to_string(sport) +
                               " " + kVip + " 8080");
    ASSERT_EQ(guess["decision"], "maglev") << guess.dump(2);
    EXPECT_EQ(guess["maglev"]["seed"], kSeed);
    EXPECT_EQ(guess["maglev"]["maglev_size"], kMaglevSize);
    EXPECT_EQ(guess["maglev"]["hash_fn"], "xlb_hash_flow");
    const std::string predicted = guess["backend"]["address"];
    EXPECT_EQ(guess["maglev"]["cluster_id"], ClusterOf(predicted));
    EXPECT_EQ(Send(sport, pkt::kTcpSyn), predicted) << "sport " << sport;
  }
  const CommandResult fresh =
      RunHuman(std::string("explain tcp ") + kClient + " 60000 " + kVip + " 8080");
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  EXPECT_NE(fresh.output.find("no conntrack entry: xlb_hash_flow(seed 0x5eed1234)"),
            std::string::npos)
      << fresh.output;
  EXPECT_NE(fresh.output.find("of 251 -> backend"), std::string::npos) << fresh.output;
  EXPECT_NE(fresh.output.find("% of the table"), std::string::npos) << fresh.output;

  // ClientIP affinity: the client address alone picks the slot, whatever its port.
  for (int host = 1; host <= 8; ++host) {
    const std::string client = "198.18.129." + std::to_string(host);
    const json guess = RunJson("explain tcp " + client + " 41000 198.18.100.30 443");
    ASSERT_EQ(guess["decision"], "maglev") << guess.dump(2);
    EXPECT_EQ(guess["maglev"]["hash_fn"], "xlb_hash_client");
    EXPECT_EQ(guess["service"]["flags"], json::array({"affinity"}));
    EXPECT_EQ(guess["service"]["affinity_timeout"], 600);
    const std::string predicted = guess["backend"]["address"];
    EXPECT_EQ(Send(41000, pkt::kTcpSyn, client, "198.18.100.30", 443), predicted) << client;
    EXPECT_EQ(Send(41001, pkt::kTcpSyn, client, "198.18.100.30", 443), predicted) << client;
  }

  const json none = RunJson(std::string("explain udp ") + kClient + " 1 " + kVip + " 8080");
  EXPECT_EQ(none["decision"], "not_a_service");
  const CommandResult none_text =
      RunHuman(std::string("explain tcp ") + kClient + " 1 198.18.100.99 80");
  EXPECT_NE(none_text.output.find("not a service"), std::string::npos) << none_text.output;

  const CommandResult human = RunHuman("stats");
  ASSERT_EQ(human.status, 0) << human.output;
  EXPECT_NE(human.output.find("BACKEND  ADDRESS"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("fwd_new_flow"), std::string::npos) << human.output;
  const CommandResult ct_human = RunHuman("conntrack");
  EXPECT_NE(ct_human.output.find("PROTO  CLIENT"), std::string::npos) << ct_human.output;
}

TEST_F(XlbctlInspect, StatusShowsOccupancyAndTheRodataConfig) {
  Send(40000, pkt::kTcpSyn);
  Send(40001, pkt::kTcpSyn);
  const json doc = RunJson("status");
  EXPECT_EQ(doc["pin_dir"], pins_.path());
  ASSERT_EQ(doc["maps"].size(), kPinnedMaps.size());
  for (const json& m : doc["maps"]) {
    EXPECT_EQ(m["pinned"], true) << m.dump();
  }
  const json& occ = doc["occupancy"];
  EXPECT_EQ(occ["service_entries"], 3);
  EXPECT_EQ(occ["service_ids"], 3);
  EXPECT_EQ(occ["maglev_tables"], 3);
  EXPECT_EQ(occ["backends_valid"], 8);
  EXPECT_EQ(occ["backends_invalid"], 0);
  EXPECT_EQ(occ["backends_max"], 256);
  EXPECT_EQ(occ["conntrack_entries"], 2);
  EXPECT_EQ(occ["conntrack_max"], 1024);
  EXPECT_EQ(occ["reply_entries"], 2);
  ASSERT_TRUE(doc["config"].is_object()) << doc.dump(2);
  EXPECT_EQ(doc["config"]["maglev_size"], kMaglevSize);
  EXPECT_EQ(doc["config"]["hash_seed"], kSeed);
  EXPECT_EQ(doc["config"]["ct_tcp_timeout_s"], 3600);
  EXPECT_EQ(doc["config"]["encap"], "vxlan");
  EXPECT_EQ(doc["config"]["tunnel_mtu"], 1500);
  // The program is ours: the one this test loaded.
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(dp_->prog_fd(), &info, &len), 0);
  EXPECT_EQ(doc["config_from_prog_id"], info.id);
  bool listed = false;
  for (const json& p : doc["programs"]) {
    listed = listed || (p["id"] == info.id && p["name"] == "xlb_xdp");
  }
  EXPECT_TRUE(listed) << doc["programs"].dump(2);

  const CommandResult human = RunHuman("status");
  ASSERT_EQ(human.status, 0) << human.output;
  EXPECT_NE(human.output.find("MAP              PINNED"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("OCCUPANCY"), std::string::npos) << human.output;
  EXPECT_NE(human.output.find("hash_seed         0x5eed1234"), std::string::npos) << human.output;
}

// Attached in a namespace of its own: xdp on one end of a veth pair, xlb_tc on the other.
TEST_F(XlbctlInspect, StatusFindsTheXdpAndTcAttachmentsOfItsPrograms) {
  Netns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  ASSERT_TRUE(ns.AddVethPair("xlbt0", "xlbt1")) << ns.error();
  auto tc = TcDatapath::Load(*dp_);
  ASSERT_TRUE(tc.ok()) << tc.error().ToString();
  uint32_t xdp_id = 0, tc_id = 0;
  std::string problem;
  ASSERT_TRUE(ns.RunInside([&] {
    auto x = dp_->Attach(std::string_view("xlbt0"));
    auto t = (*tc)->Attach(std::string_view("xlbt1"));
    if (!x.ok() || !t.ok()) {
      problem = !x.ok() ? x.error().ToString() : t.error().ToString();
      return;
    }
    xdp_id = x->prog_id();
    tc_id = t->prog_id();
    // Released: the namespace goes with its interfaces; a detach from another namespace's
    // thread would name the wrong ifindex.
    x->release();
    t->release();
  }));
  ASSERT_TRUE(problem.empty()) << problem;

  const CommandResult r = RunCommand("nsenter --net=" + ns.Path() + " " +
                                     Xlbctl("status -o json --pin-dir " + pins_.path()));
  ASSERT_EQ(r.status, 0) << r.output;
  const json doc = json::parse(r.output);
  std::map<std::string, json> by_interface;
  for (const json& a : doc["attachments"]) {
    by_interface[a["interface"]] = a;
  }
  ASSERT_EQ(by_interface.size(), 2u) << doc.dump(2);
  EXPECT_EQ(by_interface["xlbt0"]["prog_id"], xdp_id);
  EXPECT_EQ(by_interface["xlbt0"]["hook"].get<std::string>().rfind("xdp/", 0), 0u);
  EXPECT_EQ(by_interface["xlbt1"]["prog_id"], tc_id);
  EXPECT_EQ(by_interface["xlbt1"]["hook"], "tc/ingress");
  EXPECT_EQ(doc["config_from_prog_id"], xdp_id);
  std::set<std::string> names;
  for (const json& p : doc["programs"]) {
    names.insert(p["name"].get<std::string>());
    EXPECT_EQ(p["config"]["hash_seed"], kSeed) << p.dump();  // xlb_tc shares the config
  }
  EXPECT_EQ(names, (std::set<std::string>{"xlb_xdp", "xlb_tc"}));

  const CommandResult human =
      RunCommand("nsenter --net=" + ns.Path() + " " + Xlbctl("status --pin-dir " + pins_.path()));
  EXPECT_NE(human.output.find("xlbt1 (tc/ingress)"), std::string::npos) << human.output;
}

TEST_F(XlbctlInspect, PoliciesShowEffectiveWeightsAndRejectABadSet) {
  CommandResult r =
      RunCommand(Xlbctl("policies --config " + config_ + " --policy " + policy_ + " -o json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const json doc = json::parse(r.output);
  const json* api = nullptr;
  for (const json& p : doc["ports"]) {
    if (p["service"] == "production/api-service" && p["port"] == 8080) {
      api = &p;
    }
  }
  ASSERT_NE(api, nullptr) << doc.dump(2);
  std::map<std::string, double> shares;
  for (const json& c : (*api)["clusters"]) {
    shares[c["cluster"]] = c["share"];
  }
  EXPECT_NEAR(shares["cluster-a"], 70.0, 1e-9);
  EXPECT_NEAR(shares["cluster-b"], 30.0, 1e-9);
  std::map<std::string, uint32_t> weights;
  for (const json& e : (*api)["endpoints"]) {
    weights[e["address"]] = e["weight"];
  }
  EXPECT_EQ(weights,
            (std::map<std::string, uint32_t>{
                {"198.18.1.1", 7}, {"198.18.1.2", 7}, {"198.18.2.1", 3}, {"198.18.2.2", 3}}));

  r = RunCommand(Xlbctl("policies --config " + config_ + " --policy " + policy_));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("SERVICE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("70.00 %"), std::string::npos) << r.output;

  r = RunCommand(Xlbctl("policies --config " + config_ + " --policy " + bad_policy_));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(bad_policy_ + ": document 1: spec.http[0].route[0].weight"),
            std::string::npos)
      << r.output;
}

TEST(XlbctlInspectErrors, MissingPinsNameThePathAndSayTheDatapathIsNotLoaded) {
  PinDir dir;  // never created
  for (const char* command : {"status", "services", "backends", "stats", "conntrack"}) {
    const CommandResult r = RunCommand(Xlbctl(std::string(command) + " --pin-dir " + dir.path()));
    EXPECT_EQ(r.status, 1) << command << ": " << r.output;
    EXPECT_NE(r.output.find(dir.path()), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("not loaded"), std::string::npos) << r.output;
  }
  EXPECT_EQ(RunCommand(Xlbctl("explain tcp 198.18.0.1 1")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("explain sctp 198.18.0.1 1 198.18.0.2 2")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("services -o yaml")).status, 2);
}

}  // namespace
}  // namespace xlb::testing
