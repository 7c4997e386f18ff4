// xlbctl: load, attach, inspect and remove the xlb datapath by hand. The inspection commands
// (status, services, backends, stats, conntrack, explain, policies) live in a file each
// (commands.h declares them); they only read.
#include <arpa/inet.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "loader/log.h"
#include "loader/reasons.h"
#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <span>

#include "loader/sock_loader.h"
#include "maps/typed_map.h"
#include "userspace/cli/commands.h"

namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  xlbctl load [--pin-dir DIR] [--attach IFACE] [--replace] [--native-only]\n"
    "              [--tc IFACE]... [--tunnel-addr ADDR]... [--encap vxlan|gue] [--tunnel-mtu N]\n"
    "      load the datapath and pin its maps (re-using pinned ones); with --attach, attach\n"
    "      XDP to IFACE (the uplink) and leave it attached (--replace: replace a program\n"
    "      already there); with --tc, attach xlb_tc to each pod-side IFACE (clsact ingress;\n"
    "      xlb_tc_egress on its egress).\n"
    "      --tunnel-addr: this node's IPv4 and/or IPv6 tunnel endpoint (outer source,\n"
    "      decapsulation address); --encap: what goes to tunnelled backends (default vxlan)\n"
    "  xlbctl detach IFACE [--force]\n"
    "      detach xlb's XDP program from IFACE (--force: whatever program is there), and\n"
    "      xlb_tc_egress from its egress\n"
    "  xlbctl detach-tc IFACE\n"
    "      detach xlb_tc from IFACE's clsact ingress and xlb_tc_egress from its egress\n"
    "  xlbctl unload [--pin-dir DIR]\n"
    "      remove the pins (socket LB's cgroup links go with theirs); an attached XDP or TC\n"
    "      program keeps running until detached\n"
    "  xlbctl reasons [--pin-dir DIR] [-o json]\n"
    "      packets and bytes per verdict reason, summed over CPUs\n"
    "inspection (read-only; human tables, or one JSON document with -o json):\n"
    "  xlbctl status [--pin-dir DIR]\n"
    "      pinned maps and their occupancy, the programs using them, their runtime config\n"
    "      (rodata) and where they are attached in this network namespace\n"
    "  xlbctl services [--pin-dir DIR]\n"
    "      every service entry: VIP:port/proto (* = all ports), id, flags, backends, and the\n"
    "      share of its Maglev table per cluster and per backend\n"
    "  xlbctl backends [--pin-dir DIR] [--all]\n"
    "      valid backends (--all: invalidated ones too): address, cluster, routed or tunnelled\n"
    "  xlbctl stats [--pin-dir DIR]\n"
    "      packets, bytes and new flows per service, backend and cluster; packets per reason\n"
    "  xlbctl conntrack [--pin-dir DIR] [--limit N] [--replies]\n"
    "      conntrack entries, newest first (default 100; --limit 0: all); --replies: the\n"
    "      reply map (reverse NAT and tunnel-back entries)\n"
    "  xlbctl explain PROTO SRC SPORT DST DPORT [--tcp-flags LIST] [--pin-dir DIR]\n"
    "      what the datapath does with a packet of that flow: the VIP filter, its service,\n"
    "      its conntrack entry, or the Maglev slot and backend a new flow gets (PROTO: tcp or\n"
    "      udp; IPv4 or IPv6; LIST: the packet's TCP flags, e.g. syn or fin,ack; default ack)\n"
    "  xlbctl policies --config FILE [--policy PATH]\n"
    "      the config and policies read as xlb-agent reads them: effective weight per\n"
    "      cluster and endpoint of every service port; exit 1 when they are rejected\n"
    "Options may come before or after the command; --help or -h anywhere prints this.\n"
    "DIR defaults to " XLB_PIN_DIR ".\n";

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::string pin_dir = XLB_PIN_DIR;
  std::string attach;
  std::vector<std::string> tc;
  std::vector<std::string> tunnel_addrs;
  std::string encap = "vxlan";
  std::string tunnel_mtu;
  bool replace = false;
  bool native_only = false;
  bool force = false;
  bool help = false;
  xlb::cli::InspectOptions inspect;
};

int Usage(const char* problem) {
  if (problem != nullptr) {
    std::fprintf(stderr, "xlbctl: %s\n", problem);
  }
  std::fputs(kUsage, stderr);
  return 2;
}

int Fail(const xlb::Error& error) {
  std::fprintf(stderr, "xlbctl: %s\n", error.ToString().c_str());
  return 1;
}

// Options may come before or after the command (`xlbctl -o json status`); the first word that
// is not an option or an option's value is the command. --help or -h anywhere asks for help.
bool Parse(int argc, char** argv, Args& args, std::string& problem) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        problem = std::string(a) + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (a == "--pin-dir") {
      if (!value(args.pin_dir)) {
        return false;
      }
    } else if (a == "--attach") {
      if (!value(args.attach)) {
        return false;
      }
    } else if (a == "--tc" || a == "--tunnel-addr") {
      std::string v;
      if (!value(v)) {
        return false;
      }
      (a == "--tc" ? args.tc : args.tunnel_addrs).push_back(v);
    } else if (a == "--encap") {
      if (!value(args.encap)) {
        return false;
      }
    } else if (a == "--tunnel-mtu") {
      if (!value(args.tunnel_mtu)) {
        return false;
      }
    } else if (a == "-o" || a == "--output") {
      std::string v;
      if (!value(v)) {
        return false;
      }
      if (v != "json" && v != "table") {
        problem = std::string(a) + " " + v + ": json or table";
        return false;
      }
      args.inspect.json = v == "json";
    } else if (a == "--all") {
      args.inspect.all = true;
    } else if (a == "--replies") {
      args.inspect.replies = true;
    } else if (a == "--limit") {
      std::string v;
      if (!value(v)) {
        return false;
      }
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') {
        problem = "--limit " + v + ": a number (0 = no limit)";
        return false;
      }
      args.inspect.limit = n;
    } else if (a == "--config") {
      if (!value(args.inspect.config)) {
        return false;
      }
    } else if (a == "--policy") {
      if (!value(args.inspect.policy)) {
        return false;
      }
    } else if (a == "--tcp-flags") {
      if (!value(args.inspect.tcp_flags)) {
        return false;
      }
    } else if (a == "--replace") {
      args.replace = true;
    } else if (a == "--native-only") {
      args.native_only = true;
    } else if (a == "--force") {
      args.force = true;
    } else if (a == "--help" || a == "-h") {
      args.help = true;
    } else if (a.starts_with("-") && a != "-") {
      problem = "unknown option " + std::string(a);
      return false;
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.emplace_back(a);
    }
  }
  if (args.command.empty() && !args.help) {
    problem = "missing command";
    return false;
  }
  return true;
}

// The tunnel knobs of --tunnel-addr, --encap and --tunnel-mtu, into the runtime config.
bool TunnelConfig(const Args& args, xlb_config& config, std::string& problem) {
  for (const std::string& addr : args.tunnel_addrs) {
    if (inet_pton(AF_INET, addr.c_str(), &config.tunnel_addr4) == 1) {
      continue;
    }
    if (inet_pton(AF_INET6, addr.c_str(), config.tunnel_addr6) != 1) {
      problem = "--tunnel-addr " + addr + ": not an IPv4 or IPv6 address";
      return false;
    }
  }
  if (args.encap == "vxlan") {
    config.encap = XLB_ENCAP_VXLAN;
  } else if (args.encap == "gue") {
    config.encap = XLB_ENCAP_GUE;
  } else {
    problem = "--encap " + args.encap + ": vxlan or gue";
    return false;
  }
  if (!args.tunnel_mtu.empty()) {
    char* end = nullptr;
    const unsigned long mtu = std::strtoul(args.tunnel_mtu.c_str(), &end, 10);
    if (end == args.tunnel_mtu.c_str() || *end != '\0' || mtu < 576 || mtu > 65535) {
      problem = "--tunnel-mtu " + args.tunnel_mtu + ": a number from 576 to 65535";
      return false;
    }
    config.tunnel_mtu = static_cast<uint16_t>(mtu);
  }
  return true;
}

int Load(const Args& args) {
  if (args.pin_dir.empty()) {
    return Usage("load needs a pin dir: without pins the datapath dies with xlbctl");
  }
  xlb::LoadOptions options;
  options.pin_dir = args.pin_dir;
  std::string problem;
  if (!TunnelConfig(args, options.config, problem)) {
    return Usage(problem.c_str());
  }
  auto dp = xlb::XdpDatapath::Load(options);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  std::printf("loaded xlb_xdp, maps pinned under %s (%zu re-used)\n", args.pin_dir.c_str(),
              (*dp)->reused_maps().size());
  if (!args.attach.empty()) {
    xlb::AttachOptions attach;
    attach.replace = args.replace;
    attach.allow_generic = !args.native_only;
    auto a = (*dp)->Attach(std::string_view(args.attach), attach);
    if (!a.ok()) {
      return Fail(a.error());
    }
    std::printf("attached program %u to %s in %s mode\n", a->prog_id(), args.attach.c_str(),
                std::string(xlb::XdpModeName(a->mode())).c_str());
    a->release();  // stays attached after we exit
  }
  if (!args.tc.empty()) {
    auto tc = xlb::TcDatapath::Load(**dp);
    if (!tc.ok()) {
      return Fail(tc.error());
    }
    for (const std::string& iface : args.tc) {
      for (auto dir : {xlb::TcDirection::kIngress, xlb::TcDirection::kEgress}) {
        auto a = (*tc)->Attach(std::string_view(iface), dir);
        if (!a.ok()) {
          return Fail(a.error());
        }
        std::printf("attached program %u to %s (TC %s)\n", a->prog_id(), iface.c_str(),
                    dir == xlb::TcDirection::kIngress ? "ingress" : "egress");
        a->release();
      }
    }
  }
  return 0;
}

// No filter there: none at xlb's handle (ENOENT), or no clsact qdisc at all (EINVAL).
bool NoFilter(const xlb::Error& e) {
  return e.err == ENOENT || e.err == EINVAL;
}

int DetachTc(const Args& args) {
  if (args.positional.size() != 1) {
    return Usage("detach-tc needs one interface");
  }
  auto idx = xlb::IfIndex(args.positional[0]);
  if (!idx.ok()) {
    return Fail(idx.error());
  }
  auto r = xlb::DetachTc(*idx);
  if (!r.ok()) {
    return Fail(r.error());
  }
  // the egress filter of an uplink or pod veth, when there is one
  if (auto e = xlb::DetachTc(*idx, xlb::TcDirection::kEgress); !e.ok() && !NoFilter(e.error())) {
    return Fail(e.error());
  }
  std::printf("detached xlb_tc from %s\n", args.positional[0].c_str());
  return 0;
}

int Detach(const Args& args) {
  if (args.positional.size() != 1) {
    return Usage("detach needs one interface");
  }
  auto idx = xlb::IfIndex(args.positional[0]);
  if (!idx.ok()) {
    return Fail(idx.error());
  }
  auto mode = xlb::DetachXdp(*idx, !args.force);
  if (!mode.ok()) {
    return Fail(mode.error());
  }
  std::printf("detached %s XDP program from %s\n", std::string(xlb::XdpModeName(*mode)).c_str(),
              args.positional[0].c_str());
  // and xlb_tc_egress, which the agent attaches to its uplinks
  if (auto e = xlb::DetachTc(*idx, xlb::TcDirection::kEgress); e.ok()) {
    std::printf("detached xlb_tc_egress from %s\n", args.positional[0].c_str());
  } else if (!NoFilter(e.error())) {
    return Fail(e.error());
  }
  return 0;
}

int Unload(const Args& args) {
  if (args.pin_dir.empty()) {
    return Usage("unload needs a pin dir");
  }
  size_t pinned = 0;
  for (const auto& names : {std::span<const char* const>(xlb::kPinnedMaps),
                            std::span<const char* const>(xlb::kSockLbPins)}) {
    for (const char* name : names) {
      pinned += ::access((args.pin_dir + "/" + name).c_str(), F_OK) == 0 ? 1 : 0;
    }
  }
  auto r = xlb::RemovePins(args.pin_dir);
  if (!r.ok()) {
    return Fail(r.error());
  }
  if (pinned == 0) {
    std::printf("no xlb pins under %s: nothing removed\n", args.pin_dir.c_str());
  } else {
    std::printf("removed %zu xlb pins under %s\n", pinned, args.pin_dir.c_str());
  }
  return 0;
}

int Reasons(const Args& args) {
  auto fd = xlb::OpenPinnedMap(args.pin_dir, XLB_MAP_REASONS);
  if (!fd.ok() && fd.error().err == ENOENT) {
    // as the inspection commands say it (pinned_datapath.cc)
    std::fprintf(stderr, "xlbctl: %s/%s is not pinned: the xlb datapath is not loaded under %s\n",
                 args.pin_dir.c_str(), XLB_MAP_REASONS, args.pin_dir.c_str());
    return 1;
  }
  if (!fd.ok()) {
    return Fail(fd.error());
  }
  auto map = xlb::PerCpuMap<xlb_counter>::FromFd(fd->get());
  if (!map.ok()) {
    return Fail(map.error());
  }
  nlohmann::json doc = nlohmann::json::array();
  if (!args.inspect.json) {
    std::printf("%-20s %-8s %16s %18s  %s\n", "reason", "verdict", "packets", "bytes",
                "description");
  }
  for (const auto& r : xlb::kReasons) {
    auto sum = map->LookupSum(static_cast<uint32_t>(r.reason));
    if (!sum.ok()) {
      return Fail(sum.error());
    }
    if (args.inspect.json) {
      doc.push_back({{"reason", r.name},
                     {"verdict", xlb::VerdictName(r.verdict)},
                     {"packets", sum->packets},
                     {"bytes", sum->bytes},
                     {"description", r.description}});
      continue;
    }
    std::printf("%-20.*s %-8.*s %16" PRIu64 " %18" PRIu64 "  %.*s\n",
                static_cast<int>(r.name.size()), r.name.data(),
                static_cast<int>(xlb::VerdictName(r.verdict).size()),
                xlb::VerdictName(r.verdict).data(), static_cast<uint64_t>(sum->packets),
                static_cast<uint64_t>(sum->bytes), static_cast<int>(r.description.size()),
                r.description.data());
  }
  if (args.inspect.json) {
    std::printf("%s\n", doc.dump(2).c_str());
  }
  return 0;
}

int Main(int argc, char** argv) {
  // Results go to stdout; the loader's info lines would only repeat them.
  if (std::getenv("XLB_LOG") == nullptr) {
    xlb::SetLogLevel(xlb::LogLevel::kWarn);
  }
  Args args;
  std::string problem;
  if (!Parse(argc, argv, args, problem)) {
    return Usage(problem.c_str());
  }
  if (args.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.command == "load") {
    return Load(args);
  }
  if (args.command == "detach") {
    return Detach(args);
  }
  if (args.command == "detach-tc") {
    return DetachTc(args);
  }
  if (args.command == "unload") {
    return Unload(args);
  }
  if (args.command == "reasons") {
    return Reasons(args);
  }
  args.inspect.pin_dir = args.pin_dir;
  args.inspect.positional = args.positional;
  using Command = int (*)(const xlb::cli::InspectOptions&);
  static const std::pair<std::string_view, Command> kInspect[] = {
      {"status", xlb::cli::Status},       {"services", xlb::cli::Services},
      {"backends", xlb::cli::Backends},   {"stats", xlb::cli::Stats},
      {"conntrack", xlb::cli::Conntrack}, {"explain", xlb::cli::Explain},
      {"policies", xlb::cli::Policies},
  };
  for (const auto& [name, command] : kInspect) {
    if (args.command == name) {
      if (name != "explain" && !args.positional.empty()) {
        return Usage((args.command + " takes no argument " + args.positional[0]).c_str());
      }
      return command(args.inspect);
    }
  }
  if (args.command == "help" || args.command == "--help" || args.command == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return Usage(("unknown command " + args.command).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // only allocation failure can get here
    std::fprintf(stderr, "xlbctl: %s\n", e.what());
    return 1;
  }
}
