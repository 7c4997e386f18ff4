// xlb-bench: nanoseconds per packet of the real xlb_xdp program, through BPF_PROG_TEST_RUN.
//
// BPF_PROG_TEST_RUN with `repeat` runs a program on one buffer again and again, so a program
// that rewrites the packet (DNAT) would see its own output from the second repetition on.
// The benchmark wrapper (bpf/xlb_bench.bpf.c) restores the original frame before every
// repetition, optionally stamps a fresh source address, and tail-calls the program under
// test. Its own cost is measured by pointing it at the floor program instead:
//
//   t(xlb_xdp) = t(wrapper -> xlb_xdp) - t(wrapper -> floor) + t(floor)
//
// where the floor is the cheapest XDP program (return XDP_PASS), run directly. Every number
// comes with proof that the path under test is the one that ran: xlb's per-reason counters
// must rise by exactly `repeat` for the expected reason and not move for any other.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bench_wrapper.h"
#include "builder.h"
#include "decoder.h"
#include "lb_fixture.h"
#include "loader/libbpf_opts.h"
#include "loader/reasons.h"
#include "loader/result.h"
#include "loader/test_run.h"
#include "loader/xdp_loader.h"
#include "maps/xlb_abi.h"
#include "maps/xlb_hash.h"

namespace xlb::bench {
namespace {

using pkt::Bytes;
using testing::Backend;
using testing::ServiceWriter;
using testing::VipKey;
using testing::WeightedBackend;

// Conntrack is sized so that a new-flow run (one entry per repetition) stays far from LRU
// eviction: the entry count after each run is checked against `repeat`.
constexpr uint32_t kDefaultCtEntries = 1u << 20;
constexpr uint32_t kDefaultNewFlowRepeat = 200'000;
constexpr uint32_t kBackends = 10;
constexpr uint16_t kVipPort = 80;
constexpr uint16_t kBackendPort = 8080;
constexpr uint16_t kClientPort = 40000;

// Katran's published BPF_PROG_TEST_RUN figures, on the same kind of machine.
constexpr double kKatranTrivialNs = 12;

struct Family {
  const char* name;
  uint8_t family;
  const char* client;
  const char* vip;
  const char* not_vip;  // a destination whose VIP filter bit is clear
  uint32_t stamp_off;   // the low 32 bits of the source address in the frame
  uint32_t service_id;
  uint32_t first_backend_id;
  std::string (*backend_addr)(uint32_t i);
};

std::string BackendAddr4(uint32_t i) {
  return "198.18.20." + std::to_string(i);
}
std::string BackendAddr6(uint32_t i) {
  return "2001:db8:20::" + std::to_string(i);
}

const Family kIpv4 = {.name = "IPv4",
                      .family = XLB_FAMILY_IPV4,
                      .client = "198.18.0.1",
                      .vip = "198.18.10.1",
                      .not_vip = "198.18.99.1",
                      .stamp_off = 14 + 12,  // Ethernet, then saddr in the IPv4 header
                      .service_id = 1,
                      .first_backend_id = 1,
                      .backend_addr = BackendAddr4};
const Family kIpv6 = {.name = "IPv6",
                      .family = XLB_FAMILY_IPV6,
                      .client = "2001:db8:1::1",
                      .vip = "2001:db8:10::1",
                      .not_vip = "2001:db8:99::1",
                      .stamp_off = 14 + 8 + 12,  // the last word of the IPv6 saddr
                      .service_id = 2,
                      .first_backend_id = 1 + kBackends,
                      .backend_addr = BackendAddr6};

enum class Kind { kNotVip, kVipOtherPort, kNewFlow, kEstablished };

struct Scenario {
  std::string name;
  const Family* family;
  Kind kind;
  Bytes frame;
  uint32_t stamp_off = 0;  // 0: the frame is restored unchanged
  xlb_reason expected;
  uint32_t repeat = 0;
  double target_x = 0;   // our goal, as a multiple of the floor; 0: none
  double katran_ns = 0;  // Katran's figure; 0: none
};

struct Options {
  uint32_t runs = 7;
  uint32_t repeat = 1'000'000;
  uint32_t new_flow_repeat = 0;  // 0: min(repeat, kDefaultNewFlowRepeat)
  uint32_t ct_entries = kDefaultCtEntries;
  bool json = false;
  int cpu = -1;        // pin to this CPU; -1: leave scheduling alone
  std::string filter;  // run only the scenarios whose name contains this
};

// One measured run of one scenario: three BPF_PROG_TEST_RUN calls.
struct Sample {
  uint32_t floor_ns = 0;       // floor program, directly
  uint32_t wrap_floor_ns = 0;  // wrapper -> floor
  uint32_t wrap_xlb_ns = 0;    // wrapper -> xlb_xdp
  // xlb_xdp directly, without the wrapper: only where the program leaves the packet as it
  // was (non-service), so that direct repetitions are all alike. 0: not measured.
  uint32_t direct_ns = 0;
  int64_t xlb_ns() const {
    return int64_t{wrap_xlb_ns} - int64_t{wrap_floor_ns} + int64_t{floor_ns};
  }
  int64_t wrapper_ns() const { return int64_t{wrap_floor_ns} - int64_t{floor_ns}; }
  double x_floor() const { return floor_ns > 0 ? static_cast<double>(xlb_ns()) / floor_ns : 0; }
};

struct ScenarioResult {
  const Scenario* scenario;
  std::vector<Sample> samples;
  std::string check;  // the counter proof, for the table
};

// Everything xlb counts that a benchmark run could move.
struct Counters {
  std::array<xlb_counter, XLB_REASON_MAX> reasons{};
  std::array<xlb_flow_counter, 3> services{};  // by service id; 0 unused
};

Result<Counters> ReadCounters(const XdpDatapath& dp) {
  Counters c;
  auto reasons = dp.reasons();
  for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
    auto sum = reasons.LookupSum(i);
    if (!sum.ok()) {
      return std::move(sum).take_error();
    }
    c.reasons[i] = *sum;
  }
  auto services = dp.service_stats();
  for (uint32_t id = 1; id < c.services.size(); ++id) {
    auto sum = services.LookupSum(id);
    if (!sum.ok()) {
      return std::move(sum).take_error();
    }
    c.services[id] = *sum;
  }
  return c;
}

// Empties one hash map of xlb_ct_key keys and returns how many entries it held.
template <typename Value>
Result<uint64_t> ClearFlowMap(int fd, const char* name) {
  constexpr uint32_t kChunk = 16384;
  std::vector<xlb_ct_key> keys(kChunk);
  std::vector<Value> values(kChunk);
  uint64_t total = 0;
  uint32_t in_batch = 0, out_batch = 0;
  bool first = true;
  for (;;) {
    bpf_map_batch_opts opts{};
    InitLibbpfOpts(opts);
    uint32_t count = kChunk;
    int ret = bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &in_batch, &out_batch,
                                              keys.data(), values.data(), &count, &opts);
    if (ret < 0 && ret != -ENOENT) {
      return Error::FromRet(ret, std::string("bpf_map_lookup_and_delete_batch(") + name + ")");
    }
    total += count;
    if (ret == -ENOENT) {
      return total;
    }
    in_batch = out_batch;
    first = false;
  }
}

// Empties conntrack and the reply map (a new flow writes one entry in each) and returns how
// many conntrack entries there were; the reply map must have held as many.
Result<uint64_t> ClearConntrack(const XdpDatapath& dp) {
  auto ct = ClearFlowMap<xlb_ct_value>(dp.conntrack().fd(), XLB_MAP_CT);
  if (!ct.ok()) {
    return ct;
  }
  auto replies = ClearFlowMap<xlb_reply>(dp.replies().fd(), XLB_MAP_REPLY);
  if (!replies.ok()) {
    return replies;
  }
  if (*replies != *ct) {
    return Error{EPROTO, std::to_string(*ct) + " conntrack entries but " +
                             std::to_string(*replies) + " reply entries"};
  }
  return ct;
}

// Frames of exactly kFrameLen bytes: the headers, then payload up to the length.
Bytes Frame(const Family& f, const char* dst, uint16_t dport, uint8_t tcp_flags) {
  auto packet = [&] {
    pkt::Packet p;
    p.eth("02:00:00:00:00:01", "02:00:00:00:00:02");
    if (f.family == XLB_FAMILY_IPV4) {
      p.ipv4(f.client, dst);
    } else {
      p.ipv6(f.client, dst);
    }
    p.tcp(kClientPort, dport, tcp_flags,
          {.seq = 1000, .ack = (tcp_flags & pkt::kTcpAck) ? 1u : 0u});
    return p;
  };
  const size_t headers = packet().build().size();
  return packet().payload(Bytes(kFrameLen - headers, 'x')).build();
}

std::vector<Scenario> Scenarios(const Options& o) {
  const uint32_t new_flow_repeat =
      o.new_flow_repeat ? o.new_flow_repeat : std::min(o.repeat, kDefaultNewFlowRepeat);
  std::vector<Scenario> out;
  for (const Family* f : {&kIpv4, &kIpv6}) {
    const std::string fam = f->name;
    out.push_back({fam + " non-service (dst not a VIP)", f, Kind::kNotVip,
                   Frame(*f, f->not_vip, kVipPort, pkt::kTcpAck), 0, XLB_PASS_NO_SERVICE, o.repeat,
                   2.5, 64});
    out.push_back({fam + " non-service (VIP addr, port not served)", f, Kind::kVipOtherPort,
                   Frame(*f, f->vip, 81, pkt::kTcpAck), 0, XLB_PASS_NO_SERVICE, o.repeat, 0, 0});
    out.push_back({fam + " new flow (SYN, CT miss+Maglev+CT insert+DNAT)", f, Kind::kNewFlow,
                   Frame(*f, f->vip, kVipPort, pkt::kTcpSyn), f->stamp_off, XLB_FWD_NEW_FLOW,
                   new_flow_repeat, 12, 330});
    out.push_back({fam + " established (ACK, CT hit+DNAT)", f, Kind::kEstablished,
                   Frame(*f, f->vip, kVipPort, pkt::kTcpAck), 0, XLB_FWD_ESTABLISHED, o.repeat, 6,
                   130});
  }
  return out;
}

class Bench {
 public:
  static Result<std::unique_ptr<Bench>> Load(const Options& o) {
    auto b = std::unique_ptr<Bench>(new Bench());
    auto dp = XdpDatapath::Load({.pin_dir = "", .max_ct_entries = o.ct_entries});
    if (!dp.ok()) {
      return std::move(dp).take_error();
    }
    b->dp_ = std::move(*dp);
    auto floor = XdpFloor::Load();
    if (!floor.ok()) {
      return std::move(floor).take_error();
    }
    b->floor_ = std::move(*floor);
    auto wrapper = BenchWrapper::Load();
    if (!wrapper.ok()) {
      return std::move(wrapper).take_error();
    }
    b->wrapper_ = std::move(*wrapper);
    b->writer_ = std::make_unique<ServiceWriter>(*b->dp_);
    for (const Family* f : {&kIpv4, &kIpv6}) {
      XLB_TRY(b->AddService(*f));
    }
    return b;
  }

  // Spins the floor program for about `ms` milliseconds before anything is measured: the
  // first scenario otherwise catches the CPU still waking up (floor 10 ns instead of 7).
  Result<void> WarmUp(const Bytes& frame, uint32_t ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      auto r = TestRunXdp(floor_->prog_fd(), frame, 1'000'000);
      if (!r.ok()) {
        return std::move(r).take_error().Within("warm-up");
      }
    }
    return {};
  }

  // One scenario: optional set-up, a warm-up run (checked, not reported), then `runs` runs.
  // The warm-up is full-sized: a new-flow run empties conntrack, and the kernel puts the
  // deleted entries back on the LRU free list in hash order, so every later run inserts into
  // scattered memory. Without a full warm-up, the first run would still find the free list
  // in allocation order and come out ~30% cheaper than the rest.
  Result<ScenarioResult> Run(const Scenario& s, const Options& o) {
    ScenarioResult r{&s, {}, {}};
    XLB_TRY(CheckFrame(s));
    if (s.kind == Kind::kEstablished) {
      XLB_TRY(Prime(s));
    }
    auto warm = RunOnce(s, o.repeat, s.repeat);
    if (!warm.ok()) {
      return std::move(warm).take_error().Within("warm-up");
    }
    for (uint32_t i = 0; i < o.runs; ++i) {
      auto sample = RunOnce(s, o.repeat, s.repeat);
      if (!sample.ok()) {
        return std::move(sample).take_error().Within("run " + std::to_string(i + 1));
      }
      r.samples.push_back(*sample);
    }
    r.check = std::string(ReasonName(s.expected)) + " +" + std::to_string(s.repeat) +
              (o.runs > 1 ? " ×" + std::to_string(o.runs) : "") + ", others 0";
    if (s.kind == Kind::kNewFlow) {
      r.check += "; CT +" + std::to_string(s.repeat);
    }
    return r;
  }

 private:
  Bench() = default;

  Result<void> AddService(const Family& f) {
    const xlb_service_key vip = VipKey(f.vip, kVipPort, IPPROTO_TCP);
    std::vector<WeightedBackend> backends;
    for (uint32_t i = 1; i <= kBackends; ++i) {
      backends.push_back({f.first_backend_id + i - 1, Backend(f.backend_addr(i), kBackendPort)});
      backend_addrs_.insert(f.backend_addr(i));
    }
    auto added = writer_->AddService(f.service_id, std::span(&vip, 1), backends);
    if (!added.ok()) {
      return std::move(added).take_error().Within(std::string(f.name) + " service");
    }
    // The non-service scenario measures the VIP filter's fast exit: its bit must be clear.
    const auto addr = testing::ParseAddr(f.not_vip);
    uint32_t word = 0;
    const uint64_t bit = xlb_vip_filter_pos(addr.words.data(), &word);
    auto w = dp_->vip_filter().Lookup(word);
    if (!w.ok()) {
      return std::move(w).take_error();
    }
    if (*w & bit) {
      return Error{EINVAL, std::string(f.not_vip) +
                               " collides with a VIP in the VIP filter; "
                               "pick another non-service address"};
    }
    return {};
  }

  // The frame is what the scenario says: kFrameLen bytes, source address at the stamp.
  Result<void> CheckFrame(const Scenario& s) const {
    if (s.frame.size() != kFrameLen) {
      return Error{EINVAL, s.name + ": frame of " + std::to_string(s.frame.size()) + " bytes"};
    }
    if (s.stamp_off != 0) {
      const auto client = testing::ParseAddr(s.family->client);
      const uint32_t low = client.words[s.family->family == XLB_FAMILY_IPV4 ? 0 : 3];
      if (std::memcmp(&s.frame[s.stamp_off], &low, 4) != 0) {
        return Error{EINVAL, s.name + ": stamp offset " + std::to_string(s.stamp_off) +
                                 " is not the source address's low word"};
      }
    }
    return {};
  }

  // Established: one packet straight through xlb_xdp creates the conntrack entry.
  Result<void> Prime(const Scenario& s) {
    XLB_TRY(ClearConntrack(*dp_));
    auto before = ReadCounters(*dp_);
    if (!before.ok()) {
      return std::move(before).take_error();
    }
    auto run = TestRunXdp(dp_->prog_fd(), s.frame, 1);
    if (!run.ok()) {
      return std::move(run).take_error().Within(s.name + ": priming");
    }
    auto after = ReadCounters(*dp_);
    if (!after.ok()) {
      return std::move(after).take_error();
    }
    return CheckDeltas(s, *before, *after, XLB_FWD_NEW_FLOW, 1, "priming");
  }

  Result<TestRunResult> Measure(int prog_fd, const Scenario& s, uint32_t repeat, const char* what) {
    auto r = TestRunXdp(prog_fd, s.frame, repeat);
    if (!r.ok()) {
      return std::move(r).take_error().Within(s.name + ": " + what);
    }
    if (r->retval != XDP_PASS) {
      return Error{EPROTO, s.name + ": " + what + " returned XDP verdict " +
                               std::to_string(r->retval) + ", expected XDP_PASS"};
    }
    return r;
  }

  // floor, wrapper -> floor (repeat), then wrapper -> xlb_xdp (xlb_repeat) with the proof.
  Result<Sample> RunOnce(const Scenario& s, uint32_t repeat, uint32_t xlb_repeat) {
    Sample sample;
    auto stamps = BenchWrapper::StampsPerCpu();
    if (!stamps.ok()) {
      return std::move(stamps).take_error();
    }
    if (s.stamp_off != 0 && std::max(repeat, xlb_repeat) >= *stamps) {
      return Error{EINVAL, s.name + ": repeat beyond the " + std::to_string(*stamps) +
                               " distinct stamps per CPU"};
    }
    if (s.kind == Kind::kNewFlow) {
      auto cleared = ClearConntrack(*dp_);
      if (!cleared.ok()) {
        return std::move(cleared).take_error();
      }
    }

    auto floor = Measure(floor_->prog_fd(), s, repeat, "floor");
    if (!floor.ok()) {
      return std::move(floor).take_error();
    }
    sample.floor_ns = floor->duration_ns;

    XLB_TRY(wrapper_->SetFrame(s.frame, s.stamp_off));
    XLB_TRY(wrapper_->SetTarget(floor_->prog_fd()));
    auto wrap_floor = Measure(wrapper_->prog_fd(), s, repeat, "wrapper -> floor");
    if (!wrap_floor.ok()) {
      return std::move(wrap_floor).take_error();
    }
    sample.wrap_floor_ns = wrap_floor->duration_ns;

    XLB_TRY(wrapper_->SetFrame(s.frame, s.stamp_off));  // restarts the stamps
    XLB_TRY(wrapper_->SetTarget(dp_->prog_fd()));
    auto before = ReadCounters(*dp_);
    if (!before.ok()) {
      return std::move(before).take_error();
    }
    auto wrap_xlb = Measure(wrapper_->prog_fd(), s, xlb_repeat, "wrapper -> xlb_xdp");
    if (!wrap_xlb.ok()) {
      return std::move(wrap_xlb).take_error();
    }
    auto after = ReadCounters(*dp_);
    if (!after.ok()) {
      return std::move(after).take_error();
    }
    sample.wrap_xlb_ns = wrap_xlb->duration_ns;

    XLB_TRY(CheckDeltas(s, *before, *after, s.expected, xlb_repeat, "wrapper -> xlb_xdp"));
    XLB_TRY(CheckOutput(s, wrap_xlb->out));

    // A cross-check of the subtraction where one is possible: a packet xlb does not touch
    // can be run directly, every repetition seeing the original.
    if (s.expected == XLB_PASS_NO_SERVICE) {
      auto before_direct = ReadCounters(*dp_);
      if (!before_direct.ok()) {
        return std::move(before_direct).take_error();
      }
      auto direct = Measure(dp_->prog_fd(), s, xlb_repeat, "xlb_xdp direct");
      if (!direct.ok()) {
        return std::move(direct).take_error();
      }
      auto after_direct = ReadCounters(*dp_);
      if (!after_direct.ok()) {
        return std::move(after_direct).take_error();
      }
      XLB_TRY(
          CheckDeltas(s, *before_direct, *after_direct, s.expected, xlb_repeat, "xlb_xdp direct"));
      XLB_TRY(CheckOutput(s, direct->out));
      sample.direct_ns = direct->duration_ns;
    }
    if (s.kind == Kind::kNewFlow) {
      // Every repetition was a new flow: one conntrack entry each, none evicted.
      auto entries = ClearConntrack(*dp_);
      if (!entries.ok()) {
        return std::move(entries).take_error();
      }
      if (*entries != xlb_repeat) {
        return Error{EPROTO, s.name + ": conntrack holds " + std::to_string(*entries) +
                                 " entries after " + std::to_string(xlb_repeat) + " new flows"};
      }
    }
    return sample;
  }

  // The expected reason rose by exactly `repeat` packets of kFrameLen bytes; no other reason
  // moved; the service counters agree with the verdict.
  Result<void> CheckDeltas(const Scenario& s, const Counters& before, const Counters& after,
                           xlb_reason expected, uint64_t repeat, const char* what) const {
    std::string moved;
    for (uint32_t i = 0; i < XLB_REASON_MAX; ++i) {
      const uint64_t dp = after.reasons[i].packets - before.reasons[i].packets;
      const uint64_t db = after.reasons[i].bytes - before.reasons[i].bytes;
      const uint64_t want = i == static_cast<uint32_t>(expected) ? repeat : 0;
      if (dp != want || db != want * kFrameLen) {
        moved += std::string(moved.empty() ? "" : ", ") + std::string(ReasonName(i)) + " +" +
                 std::to_string(dp) + " (" + std::to_string(db) + " bytes; expected +" +
                 std::to_string(want) + ")";
      }
    }
    const bool forwarded = expected == XLB_FWD_NEW_FLOW || expected == XLB_FWD_ESTABLISHED;
    for (uint32_t id = 1; id < after.services.size(); ++id) {
      const uint64_t dp = after.services[id].packets - before.services[id].packets;
      const uint64_t dn = after.services[id].new_flows - before.services[id].new_flows;
      const bool ours = forwarded && id == s.family->service_id;
      const uint64_t want_p = ours ? repeat : 0;
      const uint64_t want_n = ours && expected == XLB_FWD_NEW_FLOW ? repeat : 0;
      if (dp != want_p || dn != want_n) {
        moved += std::string(moved.empty() ? "" : ", ") + "service " + std::to_string(id) +
                 " packets +" + std::to_string(dp) + " new_flows +" + std::to_string(dn) +
                 " (expected +" + std::to_string(want_p) + "/+" + std::to_string(want_n) + ")";
      }
    }
    if (!moved.empty()) {
      return Error{EPROTO, s.name + ": " + what + ": counter check failed, expected " +
                               std::string(ReasonName(expected)) + " +" + std::to_string(repeat) +
                               " and nothing else; moved: " + moved};
    }
    return {};
  }

  // What the last repetition left: untouched for non-service, DNAT to a backend otherwise.
  Result<void> CheckOutput(const Scenario& s, const Bytes& out) const {
    if (s.expected == XLB_PASS_NO_SERVICE) {
      if (out != s.frame) {
        return Error{EPROTO, s.name + ": a non-service packet was modified"};
      }
      return {};
    }
    const pkt::Decoded d = pkt::Decode(out);
    if (!d.ok() || backend_addrs_.count(d.dst) == 0 || d.dport != kBackendPort) {
      return Error{EPROTO, s.name + ": output is not DNATed to a backend: " + pkt::Describe(d)};
    }
    // Without a stamp the input checksums were right, so the rewritten ones must be too.
    if (s.stamp_off == 0 &&
        (d.l4_csum != pkt::Csum::kValid || (d.version == 4 && d.ip_csum != pkt::Csum::kValid))) {
      return Error{EPROTO, s.name + ": DNATed packet with a bad checksum: " + pkt::Describe(d)};
    }
    return {};
  }

  std::unique_ptr<XdpDatapath> dp_;
  std::unique_ptr<XdpFloor> floor_;
  std::unique_ptr<BenchWrapper> wrapper_;
  std::unique_ptr<ServiceWriter> writer_;
  std::set<std::string> backend_addrs_;
};

// Reporting ----------------------------------------------------------------------------

template <typename T>
double Median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? static_cast<double>(v[n / 2])
               : (static_cast<double>(v[n / 2 - 1]) + static_cast<double>(v[n / 2])) / 2;
}

struct Summary {
  double median_ns, x_floor, floor_ns, wrapper_ns, wrap_xlb_ns, direct_ns;
  int64_t min_ns, max_ns;
};

Summary Summarize(const ScenarioResult& r) {
  std::vector<int64_t> ns, wrapper;
  std::vector<double> x;
  std::vector<uint32_t> floor, wrap_xlb, direct;
  for (const Sample& s : r.samples) {
    ns.push_back(s.xlb_ns());
    x.push_back(s.x_floor());
    floor.push_back(s.floor_ns);
    wrapper.push_back(s.wrapper_ns());
    wrap_xlb.push_back(s.wrap_xlb_ns);
    direct.push_back(s.direct_ns);
  }
  return {Median(ns),
          Median(x),
          Median(floor),
          Median(wrapper),
          Median(wrap_xlb),
          Median(direct),
          *std::min_element(ns.begin(), ns.end()),
          *std::max_element(ns.begin(), ns.end())};
}

struct Machine {
  std::string kernel, cpu;
  long nproc{};
};

Machine ReadMachine() {
  Machine m;
  utsname u{};
  m.kernel = uname(&u) == 0 ? u.release : "?";
  m.cpu = "?";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        m.cpu = line.substr(line.find_first_not_of(" \t", colon + 1));
      }
      break;
    }
  }
  m.nproc = sysconf(_SC_NPROCESSORS_ONLN);
  return m;
}

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string TargetCell(const Scenario& s, double x) {
  if (s.target_x == 0) {
    return "—";
  }
  const std::string goal = "≤ " + Fmt("%.1f", s.target_x) + "×";
  if (x <= s.target_x) {
    return goal + " met";
  }
  return goal + " MISSED by " + Fmt("%.1f", x / s.target_x) + "×";
}

std::string KatranCell(const Scenario& s) {
  if (s.katran_ns == 0) {
    return "—";
  }
  return Fmt("%.1f", s.katran_ns / kKatranTrivialNs) + "× (" + Fmt("%.0f", s.katran_ns) + " ns)";
}

void PrintMarkdown(const std::vector<ScenarioResult>& results, const Machine& m,
                   const std::string& command, const Options& o, double seconds) {
  std::printf("# xlb datapath benchmark (BPF_PROG_TEST_RUN)\n\n");
  std::printf("machine: kernel %s, CPU %s, nproc %ld\n", m.kernel.c_str(), m.cpu.c_str(), m.nproc);
  std::printf("command: %s\n\n", command.c_str());
  std::printf(
      "ns/packet of xlb_xdp = t(wrapper -> xlb_xdp) - t(wrapper -> floor) + t(floor), per run;\n"
      "every frame %u bytes, restored by the wrapper before each repetition. %u runs per\n"
      "scenario; median/min/max over runs; \"× floor\" is the median over runs of t / t(floor)\n"
      "of the same run. The kernel reports an integer average ns per repetition, so each of\n"
      "the three terms is truncated to 1 ns (floor and wrapper runs use repeat %u).\n\n",
      kFrameLen, o.runs, o.repeat);
  std::printf(
      "| scenario | median ns | min | max | × floor | target | Katran × | counter check |\n"
      "|---|---:|---:|---:|---:|---|---|---|\n");
  for (const ScenarioResult& r : results) {
    const Summary sm = Summarize(r);
    std::printf("| %s | %.1f | %lld | %lld | %.2f× | %s | %s | %s |\n", r.scenario->name.c_str(),
                sm.median_ns, static_cast<long long>(sm.min_ns), static_cast<long long>(sm.max_ns),
                sm.x_floor, TargetCell(*r.scenario, sm.x_floor).c_str(),
                KatranCell(*r.scenario).c_str(), r.check.c_str());
  }
  std::printf(
      "\nWhat was subtracted (medians over runs, ns/packet): wrapper cost = t(wrapper -> floor) "
      "- t(floor).\n\n"
      "| scenario | repeat (xlb) | floor | wrapper cost | wrapper -> xlb_xdp (raw) | "
      "xlb_xdp direct |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  for (const ScenarioResult& r : results) {
    const Summary sm = Summarize(r);
    std::printf("| %s | %u | %.1f | %.1f | %.1f | %s |\n", r.scenario->name.c_str(),
                r.scenario->repeat, sm.floor_ns, sm.wrapper_ns, sm.wrap_xlb_ns,
                sm.direct_ns > 0 ? Fmt("%.1f", sm.direct_ns).c_str() : "—");
  }
  std::printf(
      "\nxlb_xdp direct: the same packet run without the wrapper, possible only where xlb leaves "
      "it\nunchanged (non-service); a check on the subtraction, not used in the first table.\n");
  std::printf(
      "\nKatran × = Katran's BPF_PROG_TEST_RUN figure over its trivial-XDP floor (%.0f ns).\n"
      "Service: 1 VIP per family, TCP port %u, %u backends, Maglev table %u slots; conntrack "
      "LRU %u entries, emptied before every new-flow run.\n",
      kKatranTrivialNs, kVipPort, kBackends, XLB_MAGLEV_DEFAULT_SIZE, o.ct_entries);
  std::printf("total run time: %.1f s\n", seconds);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      continue;
    }
    out += c;
  }
  return out + "\"";
}

void PrintJson(const std::vector<ScenarioResult>& results, const Machine& m,
               const std::string& command, const Options& o, double seconds) {
  std::printf("{\n  \"machine\": {\"kernel\": %s, \"cpu\": %s, \"nproc\": %ld},\n",
              JsonString(m.kernel).c_str(), JsonString(m.cpu).c_str(), m.nproc);
  std::printf("  \"command\": %s,\n  \"runs\": %u,\n  \"repeat\": %u,\n  \"frame_len\": %u,\n",
              JsonString(command).c_str(), o.runs, o.repeat, kFrameLen);
  std::printf("  \"katran_trivial_ns\": %.0f,\n  \"seconds\": %.2f,\n  \"scenarios\": [\n",
              kKatranTrivialNs, seconds);
  for (size_t i = 0; i < results.size(); ++i) {
    const ScenarioResult& r = results[i];
    const Scenario& s = *r.scenario;
    const Summary sm = Summarize(r);
    std::printf(
        "    {\"name\": %s, \"repeat\": %u, \"median_ns\": %.1f, \"min_ns\": %lld, "
        "\"max_ns\": %lld, \"x_floor\": %.3f, \"target_x\": %.1f, \"katran_ns\": %.0f, "
        "\"floor_ns\": %.1f, \"wrapper_ns\": %.1f, \"check\": %s,\n     \"samples\": [",
        JsonString(s.name).c_str(), s.repeat, sm.median_ns, static_cast<long long>(sm.min_ns),
        static_cast<long long>(sm.max_ns), sm.x_floor, s.target_x, s.katran_ns, sm.floor_ns,
        sm.wrapper_ns, JsonString(r.check).c_str());
    for (size_t j = 0; j < r.samples.size(); ++j) {
      const Sample& x = r.samples[j];
      std::printf("%s{\"floor\": %u, \"wrapper_floor\": %u, \"wrapper_xlb\": %u, \"direct\": %u}",
                  j ? ", " : "", x.floor_ns, x.wrap_floor_ns, x.wrap_xlb_ns, x.direct_ns);
    }
    std::printf("]}%s\n", i + 1 < results.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
}

// Command line -------------------------------------------------------------------------

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: xlb-bench [--runs N] [--repeat N] [--new-flow-repeat N] [--ct-entries N]\n"
               "                 [--cpu N] [--filter TEXT] [--json]\n"
               "  --runs N             measured runs per scenario (default 7)\n"
               "  --repeat N           repetitions per BPF_PROG_TEST_RUN (default 1000000)\n"
               "  --new-flow-repeat N  repetitions of new-flow runs, at most half the conntrack "
               "size\n"
               "                       (default min(repeat, %u))\n"
               "  --ct-entries N       conntrack (LRU) size (default %u)\n"
               "  --cpu N              pin the benchmark to CPU N\n"
               "  --filter TEXT        only the scenarios whose name contains TEXT\n"
               "  --json               JSON instead of Markdown\n"
               "Needs root (loads BPF programs).\n",
               kDefaultNewFlowRepeat, kDefaultCtEntries);
}

std::optional<uint32_t> ParseCount(const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v == 0 || v > UINT32_MAX) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<Options> ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "xlb-bench: %s needs a value\n", argv[i]);
      return std::nullopt;
    }
    // --filter takes text and --cpu takes 0; every other count must be positive.
    const char* value = argv[++i];
    if (arg == "--filter") {
      o.filter = value;
      continue;
    }
    if (arg == "--cpu") {
      char* end = nullptr;
      const long cpu = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) {
        std::fprintf(stderr, "xlb-bench: bad --cpu %s\n", value);
        return std::nullopt;
      }
      o.cpu = static_cast<int>(cpu);
      continue;
    }
    const auto n = ParseCount(value);
    if (!n) {
      std::fprintf(stderr, "xlb-bench: %s wants a positive count, not %s\n", argv[i - 1], value);
      return std::nullopt;
    }
    if (arg == "--runs") {
      o.runs = *n;
    } else if (arg == "--repeat") {
      o.repeat = *n;
    } else if (arg == "--new-flow-repeat") {
      o.new_flow_repeat = *n;
    } else if (arg == "--ct-entries") {
      o.ct_entries = *n;
    } else {
      std::fprintf(stderr, "xlb-bench: unknown option %s\n", argv[i - 1]);
      return std::nullopt;
    }
  }
  const uint32_t new_flow =
      o.new_flow_repeat ? o.new_flow_repeat : std::min(o.repeat, kDefaultNewFlowRepeat);
  if (new_flow > o.ct_entries / 2) {
    std::fprintf(stderr,
                 "xlb-bench: %u new flows per run: every one is a conntrack entry, and at most "
                 "%u (half of --ct-entries %u) stay clear of LRU eviction\n",
                 new_flow, o.ct_entries / 2, o.ct_entries);
    return std::nullopt;
  }
  return o;
}

// The argument as a shell would need it to read it back: 'new flow', not new flow.
std::string ShellQuote(std::string_view arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_./=:,+@%") == std::string_view::npos;
  if (plain) {
    return std::string(arg);
  }
  std::string out = "'";
  for (char c : arg) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

int Main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  const auto options = ParseArgs(argc, argv);
  if (!options) {
    Usage(stderr);
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; ++i) {
    command += (i ? " " : "") + ShellQuote(argv[i]);
  }

  if (options->cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options->cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "xlb-bench: sched_setaffinity(cpu %d): %s\n", options->cpu,
                   std::strerror(errno));
      return 1;
    }
  }

  auto bench = Bench::Load(*options);
  if (!bench.ok()) {
    std::fprintf(stderr, "xlb-bench: loading: %s\n", bench.error().ToString().c_str());
    return 1;
  }
  const std::vector<Scenario> scenarios = Scenarios(*options);
  if (auto warm = (*bench)->WarmUp(scenarios.front().frame, 300); !warm.ok()) {
    std::fprintf(stderr, "xlb-bench: %s\n", warm.error().ToString().c_str());
    return 1;
  }
  std::vector<ScenarioResult> results;
  for (const Scenario& s : scenarios) {
    if (s.name.find(options->filter) == std::string::npos) {
      continue;
    }
    auto r = (*bench)->Run(s, *options);
    if (!r.ok()) {
      // EPROTO: our own check failed, and the message says all there is to say.
      const Error& e = r.error();
      std::fprintf(stderr, "xlb-bench: FAILED: %s\n",
                   (e.err == EPROTO ? e.what : e.ToString()).c_str());
      return 1;
    }
    results.push_back(std::move(*r));
  }
  if (results.empty()) {
    std::fprintf(stderr, "xlb-bench: no scenario matches --filter %s\n", options->filter.c_str());
    return 2;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Machine machine = ReadMachine();
  if (options->json) {
    PrintJson(results, machine, command, *options, seconds);
  } else {
    PrintMarkdown(results, machine, command, *options, seconds);
  }
  return 0;
}

}  // namespace
}  // namespace xlb::bench

int main(int argc, char** argv) {
  try {
    return xlb::bench::Main(argc, argv);
  } catch (const std::exception& e) {  // only allocation failure can get here
    std::fprintf(stderr, "xlb-bench: %s\n", e.what());
    return 1;
  }
}
