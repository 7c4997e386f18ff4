// xlb-perf: packets per second through a node, with xlb and with what it replaces.
//
// This kernel has no pktgen, so the generator is BPF_PROG_TEST_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES: the kernel turns every repetition of bench/perf/xlb_perf.bpf.c's
// perf_gen into a real frame sent out of the generator's veth, at the rate of the CPU that
// runs it. Each mode has its own gen -> node -> sink namespaces (perf_topology.h); the modes
// run in one batch, interleaved, each configuration repeated, and the median is reported.
// Every run reads the counters that prove its path (the sink's arrivals by kind, rule hits,
// xlb's reasons) and shows frames that neither arrived nor were counted as dropped; --smoke
// fails unless every path's counters add up exactly.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loader/fd.h"
#include "loader/libbpf_opts.h"
#include "loader/log.h"
#include "perf_tcp.h"
#include "perf_topology.h"

namespace xlb::perf {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::atomic<bool> g_interrupted{false};

constexpr uint32_t kNewFlowPerPacket = 0;  // perf_gen_config.flows

struct Options {
  std::vector<Mode> modes{kAllModes.begin(), kAllModes.end()};
  std::vector<uint32_t> flows{1, 1024, 65536, 1u << 20, kNewFlowPerPacket};
  std::vector<uint32_t> sizes{60, 1514};  // 64- and 1518-byte frames on the wire (with FCS)
  std::vector<uint32_t> cores{1, 2};
  uint32_t runs = 3;
  double seconds = 0.4;    // per measured run
  uint64_t packets = 0;    // instead of seconds: exactly this many frames per run
  bool warm_up = true;     // one unrecorded run per mode and configuration first
  double tcp_seconds = 2;  // 0: no TCP runs
  uint32_t tcp_runs = 3;   // rounds of TCP runs, every mode once per round
  bool smoke = false;      // assert every path's counters exactly
  // Generator threads at SCHED_FIFO: other work on the machine no longer preempts them (the
  // kernel's RT throttling still leaves it 5 % of each CPU).
  bool realtime = false;
  // The kernel's BPF run-time statistics while the batch runs: nanoseconds per packet of each
  // BPF program on the path (costs two clock reads per program run).
  bool bpf_stats = false;
  std::string json_path;
  std::string png_path;
};

std::string Fmt(double v, int prec = 2) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.*f", prec, v);
  return b;
}

std::string FlowsName(uint32_t flows) {
  if (flows == kNewFlowPerPacket) return "new/pkt";
  if (flows >= (1u << 20) && flows % (1u << 20) == 0) return std::to_string(flows >> 20) + "M";
  if (flows >= 1024 && flows % 1024 == 0) return std::to_string(flows >> 10) + "K";
  return std::to_string(flows);
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Sample {
  double seconds = 0;
  PathCounters delta;
  uint64_t arrived = 0;  // of the kind the mode must deliver
  double mpps() const { return seconds > 0 ? arrived / seconds / 1e6 : 0; }
};

struct Cell {
  uint32_t size, cores, flows;
};

// Set once a live-frames run was refused: every later run uses the packet-socket generator.
std::atomic<bool> g_live_refused{false};

bool LiveFramesRefused() {
  return g_live_refused.load();
}

// The generator where the kernel refuses BPF_F_TEST_XDP_LIVE_FRAMES (EPERM, seen on this
// project's kernel after about an hour of tests): perf_gen runs as a plain test run, which stamps
// and counts the frame exactly as in live mode, and the frame it hands back is sent out of the
// generator's veth through an AF_PACKET socket, in batches. The node and the sink see the same
// frames through the same programs; only the generator is slower (a few hundred thousand frames
// a second), so its rates say little about the node's. Returns after `left` frames (0: until
// `done` says so).
void SendThroughPacketSocket(const ModeNet& net, const PerfPrograms& progs,
                             const std::vector<uint8_t>& frame, uint64_t left,
                             const std::function<bool()>& done) {
  UniqueFd sock(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!sock) throw std::runtime_error(std::string("AF_PACKET socket: ") + std::strerror(errno));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = net.gen_ifindex();
  to.sll_halen = ETH_ALEN;
  constexpr size_t kBatch = 64;
  std::vector<std::vector<uint8_t>> out(kBatch, std::vector<uint8_t>(frame.size()));
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  while (!g_interrupted && !done()) {
    size_t n = 0;
    for (; n < kBatch && (left == 0 || n < left); ++n) {
      bpf_test_run_opts opts;
      InitLibbpfOpts(opts);
      opts.data_in = frame.data();
      opts.data_size_in = static_cast<uint32_t>(frame.size());
      opts.data_out = out[n].data();
      opts.data_size_out = static_cast<uint32_t>(out[n].size());
      if (bpf_prog_test_run_opts(progs.gen_fd(), &opts) != 0 || opts.retval != XDP_TX) {
        throw std::runtime_error(std::string("BPF_PROG_TEST_RUN (perf_gen): ") +
                                 std::strerror(errno) + " retval " + std::to_string(opts.retval));
      }
      iov[n] = {out[n].data(), opts.data_size_out};
      msgs[n] = {};
      msgs[n].msg_hdr.msg_name = &to;
      msgs[n].msg_hdr.msg_namelen = sizeof(to);
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
    }
    for (size_t sent = 0; sent < n;) {
      const int r = ::sendmmsg(sock.get(), msgs.data() + sent, static_cast<unsigned>(n - sent), 0);
      if (r < 0 && errno == EINTR) continue;
      // the socket's share of the device queue is full (two generator threads, or big
      // frames): perf_gen has counted these frames as sent, so they wait for room
      if (r < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        continue;
      }
      if (r <= 0) throw std::runtime_error(std::string("sendmmsg: ") + std::strerror(errno));
      sent += static_cast<size_t>(r);
    }
    if (left > 0) {
      left -= n;
      if (left == 0) return;
    }
  }
}

// Sends from `cores` generator threads (CPU 0, 1, ...) until `seconds` passed or, with
// packets > 0, exactly that many frames went; returns the wall time.
double Generate(const ModeNet& net, const PerfPrograms& progs, const std::vector<uint8_t>& frame,
                uint32_t cores, double seconds, uint64_t packets, bool realtime) {
  constexpr uint32_t kChunk = 8192;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> failures(cores);
  const auto deadline_of = [&] {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  Clock::time_point start, deadline;
  for (uint32_t c = 0; c < cores; ++c) {
    threads.emplace_back([&, c] {
      try {
        RunIn(net.gen(), static_cast<int>(c), [&] {
          xdp_md ctx{};
          ctx.data_end = static_cast<uint32_t>(frame.size());
          ctx.ingress_ifindex = static_cast<uint32_t>(net.gen_ifindex());
          uint64_t left = packets > 0 ? packets / cores + (c < packets % cores) : 0;
          if (realtime) {
            const sched_param rt{.sched_priority = 10};
            if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) != 0) {
              throw std::runtime_error("SCHED_FIFO for the generator");
            }
          }
          while (!go) std::this_thread::yield();
          const auto by_packet_socket = [&] {
            SendThroughPacketSocket(net, progs, frame, packets > 0 ? left : 0,
                                    [&] { return packets == 0 && Clock::now() >= deadline; });
          };
          if (g_live_refused) return by_packet_socket();
          while (!g_interrupted) {
            bpf_test_run_opts opts;
            InitLibbpfOpts(opts);
            opts.data_in = frame.data();
            opts.data_size_in = static_cast<uint32_t>(frame.size());
            opts.ctx_in = &ctx;
            opts.ctx_size_in = sizeof(ctx);
            opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
            opts.repeat =
                packets > 0 ? static_cast<uint32_t>(std::min<uint64_t>(left, kChunk)) : kChunk;
            if (opts.repeat == 0) break;
            if (bpf_prog_test_run_opts(progs.gen_fd(), &opts) != 0) {
              if (errno == EINTR) continue;
              if (errno == EPERM) {
                if (!g_live_refused.exchange(true)) {
                  std::fprintf(stderr,
                               "xlb-perf: the kernel refuses live frames (EPERM); generating "
                               "through a packet socket instead (rates are the generator's)\n");
                }
                return by_packet_socket();
              }
              throw std::runtime_error(std::string("BPF_PROG_TEST_RUN (live frames): ") +
                                       std::strerror(errno));
            }
            if (packets > 0) {
              left -= opts.repeat;
            } else if (Clock::now() >= deadline) {
              break;
            }
          }
        });
      } catch (...) {
        failures[c] = std::current_exception();
      }
    });
  }
  // Threads enter their namespace and pin themselves before the clock starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  start = Clock::now();
  deadline = deadline_of();
  go = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& f : failures) {
    if (f) std::rethrow_exception(f);
  }
  return elapsed;
}

// Waits until the sink's counters stop moving: frames still queued in a veth ring when the
// generator returned arrive a moment later.
void Drain(const PerfPrograms& progs) {
  auto last = progs.Arrivals();
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    auto now = progs.Arrivals();
    if (now == last) return;
    last = now;
  }
}

Sample RunOnce(ModeNet& net, PerfPrograms& progs, const Cell& cell, const Options& o) {
  perf_gen_config cfg{};
  const std::vector<uint8_t> frame = net.Frame(cell.size);
  std::memcpy(cfg.frame, frame.data(), std::min<size_t>(frame.size(), PERF_TEMPLATE));
  cfg.ip_off = net.StampedIpOffset();
  cfg.l4_off = static_cast<uint16_t>(cfg.ip_off + 20);
  std::memcpy(&cfg.ip_check, &frame[cfg.ip_off + 10], 2);
  cfg.flows = cell.flows;
  cfg.ncpu = cell.cores;
  progs.SetGenerator(cfg);
  const PathCounters before = net.Read(progs);
  Sample s;
  s.seconds = Generate(net, progs, frame, cell.cores, o.seconds, o.packets, o.realtime);
  Drain(progs);
  s.delta = net.Read(progs) - before;
  s.arrived = s.delta.arrivals[net.ExpectedArrival()];
  return s;
}

uint64_t Path(const Sample& s, const std::string& name) {
  auto it = s.delta.path.find(name);
  return it == s.delta.path.end() ? 0 : it->second;
}

// Drops the path itself counted (netfilter, xlb's drop reasons).
uint64_t CountedDrops(const Sample& s) {
  uint64_t drops =
      s.delta.link_drops + Path(s, "conntrack drop") + Path(s, "conntrack insert_failed");
  for (const auto& [name, v] : s.delta.path) {
    if (name.rfind("drop_", 0) == 0) drops += v;
  }
  return drops;
}

// Frames sent that neither arrived (of any kind) nor were counted as dropped on the way.
int64_t Unaccounted(const Sample& s) {
  uint64_t arrived = 0;
  for (uint64_t a : s.delta.arrivals) arrived += a;
  return static_cast<int64_t>(s.delta.sent) - static_cast<int64_t>(arrived + CountedDrops(s));
}

// The counters of one run, for the proof column and the JSON.
std::string Proof(Mode m, const Sample& s) {
  std::ostringstream p;
  p << "arrived " << s.arrived << "/" << s.delta.sent;
  const uint64_t drops = CountedDrops(s);
  if (drops) p << ", counted drops " << drops;
  if (const int64_t lost = Unaccounted(s)) p << ", UNACCOUNTED " << lost;
  switch (m) {
    case Mode::kIptables:
      p << ", KUBE-SEP +" << Path(s, "KUBE-SEP hits") << ", KUBE-MARK-MASQ +"
        << Path(s, "KUBE-MARK-MASQ hits");
      break;
    case Mode::kNftables:
      p << ", endpoint chains +" << Path(s, "endpoint chain hits");
      break;
    case Mode::kCeiling:
      p << ", redirected +" << Path(s, "forwarded");
      break;
    case Mode::kXlbLocal:
      p << ", fwd_routed +" << Path(s, "fwd_routed") << ", fwd_new_flow +"
        << Path(s, "fwd_new_flow") << ", fwd_established +" << Path(s, "fwd_established");
      break;
    case Mode::kXlbLocalStack:
      p << ", fwd_new_flow +" << Path(s, "fwd_new_flow") << ", fwd_established +"
        << Path(s, "fwd_established");
      break;
    case Mode::kXlbSnat:
      p << ", fwd_snat +" << Path(s, "fwd_snat") << ", drop_snat_ports +"
        << Path(s, "drop_snat_ports");
      break;
    case Mode::kXlbRemote:
      p << ", fwd_encap +" << Path(s, "fwd_encap");
      break;
    case Mode::kXlbDecap:
      p << ", fwd_decap_routed +" << Path(s, "fwd_decap_routed") << ", fwd_decap +"
        << Path(s, "fwd_decap");
      break;
    case Mode::kRoute:
      break;
  }
  std::string sep = "; BPF ns/frame: ";
  for (const auto& [name, runs_ns] : s.delta.bpf_runs_ns) {
    if (runs_ns.first == 0 || runs_ns.second == 0) continue;
    p << sep << name << " " << Fmt(static_cast<double>(runs_ns.second) / runs_ns.first, 0);
    sep = ", ";
  }
  return p.str();
}

// The smoke check: every frame accounted for, and the mode's own counters moved exactly as
// its path says (runs start from empty flow tables, without warm-up).
std::vector<std::string> CheckExact(Mode m, const Sample& s, const Cell& cell) {
  std::vector<std::string> bad;
  const uint64_t sent = s.delta.sent;
  const uint64_t flows =
      cell.flows == kNewFlowPerPacket ? sent : std::min<uint64_t>(cell.flows, sent);
  auto expect = [&](const std::string& what, uint64_t got, uint64_t want) {
    if (got != want)
      bad.push_back(what + " " + std::to_string(got) + ", expected " + std::to_string(want));
  };
  expect("arrivals + counted drops", s.arrived + CountedDrops(s), sent);
  uint64_t others = 0;
  for (size_t k = 0; k < s.delta.arrivals.size(); ++k) others += s.delta.arrivals[k];
  expect("arrivals of another kind", others - s.arrived, 0);
  switch (m) {
    case Mode::kIptables:
      expect("KUBE-SEP hits (new conntracks)", Path(s, "KUBE-SEP hits"), flows);
      expect("KUBE-MARK-MASQ hits", Path(s, "KUBE-MARK-MASQ hits"), flows);
      break;
    case Mode::kNftables:
      expect("endpoint chain hits", Path(s, "endpoint chain hits"), flows);
      break;
    case Mode::kCeiling:
      expect("redirected", Path(s, "forwarded"), sent);
      break;
    case Mode::kXlbLocal:
      // new and established alike: xlb forwards them all (their new flows are the services')
      expect("fwd_routed", Path(s, "fwd_routed"), sent);
      break;
    case Mode::kXlbLocalStack:
      expect("fwd_new_flow", Path(s, "fwd_new_flow"), flows);
      expect("fwd_established", Path(s, "fwd_established"), sent - flows);
      break;
    case Mode::kXlbSnat: {
      // A new flow claims a port with 16 tries; with the backends' ranges under half full a
      // claim still finds all 16 taken now and then (~1 in 20,000 seen), counted.
      const uint64_t no_port = Path(s, "drop_snat_ports");
      expect("fwd_snat + drop_snat_ports", Path(s, "fwd_snat") + no_port, sent);
      if (no_port > sent / 1000)
        bad.push_back("drop_snat_ports " + std::to_string(no_port) + " of " + std::to_string(sent) +
                      ": the SNAT ranges ran out");
      break;
    }
    case Mode::kXlbRemote:
      expect("fwd_encap", Path(s, "fwd_encap"), sent);
      break;
    case Mode::kXlbDecap:
      expect("fwd_decap_routed", Path(s, "fwd_decap_routed"), sent);
      break;
    case Mode::kRoute:
      break;
  }
  if (IsXlb(m)) {
    uint64_t reasons = 0;
    for (const auto& [name, v] : s.delta.path) reasons += v;
    expect("xlb reasons in all", reasons, sent);
  }
  return bad;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void WritePng(const json& results, const Options& o, const std::vector<Cell>& cells) {
  const std::string dat = o.png_path + ".dat", gp = o.png_path + ".gp";
  std::map<std::pair<uint32_t, uint32_t>, int> panels;
  for (const Cell& c : cells) panels.emplace(std::make_pair(c.size, c.cores), 0);
  std::ofstream d(dat);
  int block = 0;
  for (auto& [key, index] : panels) {
    index = block++;
    d << "# size " << key.first << " cores " << key.second << "\nflows";
    for (Mode m : o.modes) d << " " << ModeName(m);
    d << "\n";
    for (uint32_t flows : o.flows) {
      d << FlowsName(flows);
      for (Mode m : o.modes) {
        double mpps = 0;
        for (const auto& r : results) {
          if (r["size"] == key.first && r["cores"] == key.second && r["flows"] == flows &&
              r["mode"] == ModeName(m)) {
            mpps = r["mpps_median"];
          }
        }
        d << " " << mpps;
      }
      d << "\n";
    }
    d << "\n\n";
  }
  d.close();
  std::ofstream g(gp);
  // One panel per frame size (rows) and core count (columns).
  const size_t rows = o.sizes.size(), cols = o.cores.size();
  g << "set terminal pngcairo size " << 720 * cols << "," << 420 * rows << " noenhanced\n"
    << "set output '" << o.png_path << "'\n"
    << "set multiplot layout " << rows << "," << cols << "\n"
    << "set style data histograms\nset style histogram clustered gap 1\n"
    << "set style fill solid 0.8 border -1\nset logscale y\nset yrange [0.05:*]\n"
    << "set ylabel 'Mpps (median)'\nset xlabel 'flows'\nset key outside bottom center horizontal "
       "font ',9'\n"
    << "set grid ytics\n";
  for (auto& [key, index] : panels) {
    g << "set title '" << (key.first + 4) << "-byte frames, " << key.second << " core"
      << (key.second > 1 ? "s" : "") << "'\n"
      << "plot for [i=2:" << o.modes.size() + 1 << "] '" << dat << "' index " << index
      << " using i:xtic(1) title columnheader(i)\n";
  }
  g << "unset multiplot\n";
  g.close();
  const testing::CommandResult r = testing::RunCommand("gnuplot " + gp);
  if (r.status != 0) {
    std::fprintf(stderr, "xlb-perf: gnuplot failed (no PNG): %s\n", r.output.c_str());
    return;
  }
  std::printf("plot: %s (data %s)\n", o.png_path.c_str(), dat.c_str());
}

// The whole batch as one matrix per frame size and core count: Mpps of every mode by flows,
// then each xlb mode as a multiple of iptables and a share of the ceiling.
void PrintSummary(const json& results, const Options& o) {
  auto find = [&](uint32_t size, uint32_t cores, uint32_t flows, Mode m) -> const json* {
    for (const auto& r : results) {
      if (r["size"] == size && r["cores"] == cores && r["flows"] == flows &&
          r["mode"] == ModeName(m)) {
        return &r;
      }
    }
    return nullptr;
  };
  for (uint32_t size : o.sizes) {
    for (uint32_t cores : o.cores) {
      std::printf("\nSummary, %u-byte frames, %u core%s: Mpps (median of %u)\n", size + 4, cores,
                  cores > 1 ? "s" : "", o.runs);
      std::printf("  %-11s", "mode");
      for (uint32_t flows : o.flows) std::printf(" %16s", FlowsName(flows).c_str());
      std::printf("\n");
      for (Mode m : o.modes) {
        std::printf("  %-11s", ModeName(m));
        for (uint32_t flows : o.flows) {
          const json* r = find(size, cores, flows, m);
          std::string cell = r ? Fmt((*r)["mpps_median"].get<double>()) : "-";
          if (r && IsXlb(m) && (*r)["x_iptables"].get<double>() > 0) {
            const double ceiling = (*r)["x_ceiling"].get<double>();
            cell += " (" + Fmt((*r)["x_iptables"].get<double>(), 1) + "x" +
                    (ceiling > 0 ? "," + Fmt(100 * ceiling, 0) + "%" : "") + ")";
          }
          std::printf(" %16s", cell.c_str());
        }
        std::printf("\n");
      }
    }
  }
  std::printf("  (xlb rows: multiple of iptables, share of the ceiling)\n");
}

int Run(const Options& o) {
  const auto batch_start = Clock::now();
  const std::string load_before = LoadAverage();
  utsname u{};
  ::uname(&u);
  std::printf("xlb-perf: kernel %s, %ld CPUs, load average %s\n", u.release,
              ::sysconf(_SC_NPROCESSORS_ONLN), load_before.c_str());
  if (::access("/proc/net/pktgen", F_OK) == 0) {
    std::printf(
        "note: /proc/net/pktgen exists; this runner still uses the live-frames generator\n");
  }
  PerfPrograms progs;
  UniqueFd bpf_stats;  // statistics stay on while this fd is open
  if (o.bpf_stats) {
    bpf_stats = UniqueFd(bpf_enable_stats(BPF_STATS_RUN_TIME));
    if (!bpf_stats.valid()) {
      throw std::runtime_error(std::string("BPF_ENABLE_STATS: ") + std::strerror(errno));
    }
  }
  std::map<Mode, std::unique_ptr<ModeNet>> nets;
  for (Mode m : o.modes) nets[m] = std::make_unique<ModeNet>(m, progs);

  std::vector<Cell> cells;
  for (uint32_t size : o.sizes)
    for (uint32_t cores : o.cores)
      for (uint32_t flows : o.flows) cells.push_back({size, cores, flows});

  json results = json::array();
  std::vector<std::string> failures;
  for (const Cell& cell : cells) {
    if (g_interrupted) break;
    std::map<Mode, std::vector<Sample>> samples;
    for (Mode m : o.modes) {
      nets[m]->ClearFlows();
      if (o.warm_up) RunOnce(*nets[m], progs, cell, o);
    }
    for (uint32_t run = 0; run < o.runs && !g_interrupted; ++run) {
      // Interleaved, and each run starts with another mode, so slow drift of the machine
      // (other people's builds) spreads over all of them.
      for (size_t i = 0; i < o.modes.size() && !g_interrupted; ++i) {
        const Mode m = o.modes[(i + run) % o.modes.size()];
        samples[m].push_back(RunOnce(*nets[m], progs, cell, o));
      }
    }
    if (g_interrupted) break;
    std::map<Mode, double> median;
    for (Mode m : o.modes) {
      std::vector<double> mpps;
      for (const Sample& s : samples[m]) mpps.push_back(s.mpps());
      median[m] = Median(mpps);
    }
    std::printf("\n%u-byte frames (%u + FCS), %u core%s, %s flows: Mpps, median of %u\n",
                cell.size + 4, cell.size, cell.cores, cell.cores > 1 ? "s" : "",
                FlowsName(cell.flows).c_str(), o.runs);
    std::printf("  %-11s %7s %11s %8s %9s  %s\n", "mode", "Mpps", "runs range", "x ipt", "% ceil",
                "proof (last run)");
    for (Mode m : o.modes) {
      const Sample& last = samples[m].back();
      const bool has_ipt = median.count(Mode::kIptables) && median[Mode::kIptables] > 0;
      const bool has_ceil = median.count(Mode::kCeiling) && median[Mode::kCeiling] > 0;
      double lo = samples[m].front().mpps(), hi = lo;
      for (const Sample& s : samples[m]) lo = std::min(lo, s.mpps()), hi = std::max(hi, s.mpps());
      std::printf("  %-11s %7s %11s %8s %9s  %s\n", ModeName(m), Fmt(median[m]).c_str(),
                  (Fmt(lo) + "-" + Fmt(hi)).c_str(),
                  has_ipt ? Fmt(median[m] / median[Mode::kIptables]).c_str() : "-",
                  has_ceil ? Fmt(100 * median[m] / median[Mode::kCeiling], 0).c_str() : "-",
                  Proof(m, last).c_str());
      json runs = json::array();
      for (const Sample& s : samples[m]) {
        json path = json::object();
        for (const auto& [k, v] : s.delta.path)
          if (v) path[k] = v;
        runs.push_back({{"seconds", s.seconds},
                        {"sent", s.delta.sent},
                        {"arrived", s.arrived},
                        {"mpps", s.mpps()},
                        {"link_drops", s.delta.link_drops},
                        {"counted_drops", CountedDrops(s)},
                        {"unaccounted", Unaccounted(s)},
                        {"arrivals_by_kind", s.delta.arrivals},
                        {"path_counters", path},
                        {"bpf_runs_ns", s.delta.bpf_runs_ns}});
        if (o.smoke) {
          for (const std::string& b : CheckExact(m, s, cell)) {
            failures.push_back(std::string(ModeName(m)) + " " + FlowsName(cell.flows) + ": " + b);
          }
        }
      }
      results.push_back({{"mode", ModeName(m)},
                         {"description", ModeDescription(m)},
                         {"size", cell.size},
                         {"cores", cell.cores},
                         {"flows", cell.flows},
                         {"mpps_median", median[m]},
                         {"x_iptables", has_ipt ? median[m] / median[Mode::kIptables] : 0},
                         {"x_ceiling", has_ceil ? median[m] / median[Mode::kCeiling] : 0},
                         {"runs", runs}});
    }
    std::fflush(stdout);
  }

  PrintSummary(results, o);

  json tcp = json::array();
  if (o.tcp_seconds > 0 && !g_interrupted) {
    std::printf("\nTCP through the node (client in gen, server on the backends), %.1f s each:\n",
                o.tcp_seconds);
    std::printf("  %-11s %9s %13s %13s %14s %14s %12s\n", "mode", "conn/s", "conn p50 us",
                "conn p99 us", "request p50 us", "request p99 us", "conn max us");
    std::map<Mode, std::vector<TcpFigures>> rounds;
    for (uint32_t run = 0; run < o.tcp_runs; ++run) {
      for (Mode m : o.modes) {
        if (!nets[m]->ServesTcp() || g_interrupted) continue;
        nets[m]->ClearFlows();
        const TcpFigures f = RunTcp(*nets[m], o.tcp_seconds);
        rounds[m].push_back(f);
        std::printf("  %-11s %9.0f %13.0f %13.0f %14.0f %14.0f %12.0f\n", ModeName(m), f.cps(),
                    f.connect_p50_us, f.connect_p99_us, f.request_p50_us, f.request_p99_us,
                    f.connect_max_us);
        tcp.push_back({{"mode", ModeName(m)},
                       {"run", run + 1},
                       {"connections_per_s", f.cps()},
                       {"connections", f.connections},
                       {"connect_p50_us", f.connect_p50_us},
                       {"connect_p99_us", f.connect_p99_us},
                       {"connect_max_us", f.connect_max_us},
                       {"requests", f.requests},
                       {"request_p50_us", f.request_p50_us},
                       {"request_p99_us", f.request_p99_us}});
        if (o.smoke && f.connections == 0)
          failures.push_back(std::string(ModeName(m)) + " TCP: no connection");
      }
    }
    // Each figure's median over the rounds (interleaved like the UDP runs).
    std::printf("  medians:\n");
    for (const auto& [m, figures] : rounds) {
      auto median_of = [&](auto field) {
        std::vector<double> v;
        for (const TcpFigures& f : figures) v.push_back(field(f));
        return Median(v);
      };
      std::printf("  %-11s %9.0f %13.0f %13.0f %14.0f %14.0f  (of %zu)\n", ModeName(m),
                  median_of([](const TcpFigures& f) { return f.cps(); }),
                  median_of([](const TcpFigures& f) { return f.connect_p50_us; }),
                  median_of([](const TcpFigures& f) { return f.connect_p99_us; }),
                  median_of([](const TcpFigures& f) { return f.request_p50_us; }),
                  median_of([](const TcpFigures& f) { return f.request_p99_us; }), figures.size());
    }
  }

  const double wall = std::chrono::duration<double>(Clock::now() - batch_start).count();
  const std::string load_after = LoadAverage();
  std::printf("\nload average before %s, after %s; batch wall time %.0f s\n", load_before.c_str(),
              load_after.c_str(), wall);
  const char* generator = LiveFramesRefused()
                              ? "perf_gen test runs sent through AF_PACKET (live frames refused: "
                                "the rates above are the generator's, not the node's)"
                              : "live frames (BPF_F_TEST_XDP_LIVE_FRAMES)";
  std::printf("generator: %s\n", generator);
  if (!o.json_path.empty()) {
    json doc = {{"kernel", u.release},
                {"cpus", ::sysconf(_SC_NPROCESSORS_ONLN)},
                {"load_average_before", load_before},
                {"load_average_after", load_after},
                {"wall_seconds", wall},
                {"runs", o.runs},
                {"realtime", o.realtime},
                {"bpf_stats", o.bpf_stats},
                {"seconds_per_run", o.seconds},
                {"packets_per_run", o.packets},
                {"generator", LiveFramesRefused() ? "af_packet" : "live_frames"},
                {"udp", results},
                {"tcp", tcp}};
    std::ofstream(o.json_path) << doc.dump(1) << "\n";
    std::printf("json: %s\n", o.json_path.c_str());
  }
  if (!o.png_path.empty() && !results.empty()) WritePng(results, o, cells);
  if (g_interrupted) {
    std::fprintf(stderr, "xlb-perf: interrupted; namespaces removed\n");
    return 130;
  }
  for (const std::string& f : failures) std::fprintf(stderr, "FAIL %s\n", f.c_str());
  if (o.smoke)
    std::printf("smoke: %s\n", failures.empty() ? "every path's counters add up" : "FAILED");
  return failures.empty() ? 0 : 1;
}

std::vector<uint32_t> ParseList(const std::string& text) {
  std::vector<uint32_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item == "new") {
      out.push_back(kNewFlowPerPacket);
    } else {
      uint32_t mult = 1;
      if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) mult = 1024, item.pop_back();
      if (!item.empty() && (item.back() == 'M' || item.back() == 'm'))
        mult = 1u << 20, item.pop_back();
      out.push_back(static_cast<uint32_t>(std::stoul(item)) * mult);
    }
  }
  return out;
}

void Usage() {
  std::fprintf(
      stderr,
      "usage: xlb-perf [--quick | --full | --smoke] [--modes route,iptables,...]\n"
      "                [--flows 1,1K,64K,1M,new] [--sizes 60,1514] [--cores 1,2]\n"
      "                [--runs N] [--seconds S | --packets N] [--no-warm-up] [--realtime]\n"
      "                [--bpf-stats] [--tcp-runs N]\n"
      "                [--tcp-seconds S] [--json FILE] [--png FILE]\n");
}

}  // namespace
}  // namespace xlb::perf

int main(int argc, char** argv) {
  using namespace xlb::perf;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--full") {
      // the defaults
    } else if (a == "--quick") {
      o.sizes = {60};
      o.cores = {1};
      o.flows = {1, 1024, 65536, kNewFlowPerPacket};
      o.seconds = 0.25;
      o.tcp_seconds = 1;
      o.tcp_runs = 2;
    } else if (a == "--smoke") {
      o.smoke = true;
      o.sizes = {60};
      o.cores = {1};
      o.flows = {1024, kNewFlowPerPacket};
      o.runs = 1;
      o.packets = 20000;
      o.warm_up = false;
      o.tcp_seconds = 0.3;
      o.tcp_runs = 1;
    } else if (a == "--modes") {
      o.modes.clear();
      std::stringstream in(next());
      std::string item;
      while (std::getline(in, item, ',')) {
        bool found = false;
        for (Mode m : kAllModes) {
          if (item == ModeName(m)) o.modes.push_back(m), found = true;
        }
        if (!found) {
          std::fprintf(stderr, "xlb-perf: unknown mode %s\n", item.c_str());
          return 2;
        }
      }
    } else if (a == "--flows") {
      o.flows = ParseList(next());
    } else if (a == "--sizes") {
      o.sizes = ParseList(next());
    } else if (a == "--cores") {
      o.cores = ParseList(next());
    } else if (a == "--runs") {
      o.runs = static_cast<uint32_t>(std::stoul(next()));
    } else if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--packets") {
      o.packets = std::stoull(next());
    } else if (a == "--bpf-stats") {
      o.bpf_stats = true;
    } else if (a == "--realtime") {
      o.realtime = true;
    } else if (a == "--no-warm-up") {
      o.warm_up = false;
    } else if (a == "--tcp-runs") {
      o.tcp_runs = static_cast<uint32_t>(std::stoul(next()));
    } else if (a == "--tcp-seconds") {
      o.tcp_seconds = std::stod(next());
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--png") {
      o.png_path = next();
    } else {
      Usage();
      return 2;
    }
  }
  for (uint32_t size : o.sizes) {
    if (size < PERF_FRAME_MIN || size > 14 + 1500) {
      std::fprintf(stderr, "xlb-perf: frame sizes are %d..1514 bytes (without FCS)\n",
                   PERF_FRAME_MIN);
      return 2;
    }
  }
  // One "attached XDP program" line per veth of every mode says nothing a reader needs.
  xlb::SetLogLevel(xlb::LogLevel::kWarn);
  // SIGINT/SIGTERM stop the generators; the namespaces go with the destructors on the way out.
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_interrupted = true; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  try {
    return Run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-perf: %s\n", e.what());
    return 1;
  }
}
