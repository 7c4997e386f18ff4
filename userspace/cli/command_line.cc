#include "userspace/cli/command_line.h"

#include <cstdlib>

#include "maps/xlb_abi.h"

namespace xlb::cli {
namespace {

constexpr CommandHelp kCommands[] = {
    {"load",
     "  xlbctl load [--pin-dir DIR] [--attach IFACE] [--replace] [--native-only]\n"
     "              [--tc IFACE]... [--tunnel-addr ADDR]... [--encap vxlan|gue] [--tunnel-mtu N]\n"
     "      load the datapath and pin its maps (re-using pinned ones); with --attach, attach\n"
     "      XDP to IFACE (the uplink) and leave it attached (--replace: replace a program\n"
     "      already there); with --tc, attach xlb_tc to each pod-side IFACE (clsact ingress;\n"
     "      xlb_tc_egress on its egress).\n"
     "      --tunnel-addr: this node's IPv4 and/or IPv6 tunnel endpoint (outer source,\n"
     "      decapsulation address); --encap: what goes to tunnelled backends (default vxlan)\n"},
    {"detach",
     "  xlbctl detach IFACE [--force]\n"
     "      detach xlb's XDP program from IFACE (--force: whatever program is there), and\n"
     "      xlb_tc_egress from its egress\n"},
    {"detach-tc",
     "  xlbctl detach-tc IFACE\n"
     "      detach xlb_tc from IFACE's clsact ingress and xlb_tc_egress from its egress\n"},
    {"unload",
     "  xlbctl unload [--pin-dir DIR]\n"
     "      remove the pins (socket LB's cgroup links go with theirs); an attached XDP or TC\n"
     "      program keeps running until detached\n"},
    {"uninstall",
     "  xlbctl uninstall [--pin-dir DIR] [-o json]\n"
     "      remove xlb from this node: detach xlb_xdp, xlb_tc and xlb_tc_egress from every\n"
     "      interface of this network namespace and the socket LB links pinned under DIR,\n"
     "      then remove every pin under DIR and DIR; says what it removed (nothing, the\n"
     "      second time). Traffic then flows through the kernel alone\n"},
    {"reasons",
     "  xlbctl reasons [--pin-dir DIR] [-o json]\n"
     "      packets and bytes per verdict reason, summed over CPUs\n"},
    {"status",
     "  xlbctl status [--pin-dir DIR]\n"
     "      pinned maps and their occupancy, the programs using them, their runtime config\n"
     "      (rodata) and where they are attached in this network namespace\n"},
    {"services",
     "  xlbctl services [--pin-dir DIR]\n"
     "      every service entry: VIP:port/proto (* = all ports), id, flags, backends, and the\n"
     "      share of its Maglev table per cluster and per backend\n"},
    {"backends",
     "  xlbctl backends [--pin-dir DIR] [--all]\n"
     "      valid backends (--all: invalidated ones too): address, cluster, routed or tunnelled\n"},
    {"stats",
     "  xlbctl stats [--pin-dir DIR]\n"
     "      packets, bytes and new flows per service, backend and cluster; packets per reason\n"},
    {"conntrack",
     "  xlbctl conntrack [--pin-dir DIR] [--limit N] [--replies]\n"
     "      conntrack entries, newest first (default 100; --limit 0: all); --replies: the\n"
     "      reply map (reverse NAT and tunnel-back entries)\n"},
    {"explain",
     "  xlbctl explain PROTO SRC SPORT DST DPORT [--tcp-flags LIST] [--pin-dir DIR]\n"
     "      what the datapath does with a packet of that flow: the VIP filter, its service,\n"
     "      its conntrack entry, or the Maglev slot and backend a new flow gets (PROTO: tcp or\n"
     "      udp; IPv4 or IPv6; LIST: the packet's TCP flags, e.g. syn or fin,ack; default ack)\n"},
    {"policies",
     "  xlbctl policies --config FILE [--policy PATH]\n"
     "      the config and policies read as xlb-agent reads them: effective weight per\n"
     "      cluster and endpoint of every service port; exit 1 when they are rejected\n"},
    {"help",
     "  xlbctl help [COMMAND]\n"
     "      this text, or COMMAND's part of it (as xlbctl COMMAND --help)\n"},
};

// Where the inspection commands begin in kCommands: the help puts a heading there.
constexpr std::string_view kFirstInspection = "status";

constexpr const char* kFooter =
    "Options may come before or after the command; --help or -h after a command prints its\n"
    "part of this text. DIR defaults to " XLB_PIN_DIR ".\n";

}  // namespace

std::span<const CommandHelp> Commands() {
  return kCommands;
}

const CommandHelp* FindCommand(std::string_view name) {
  for (const CommandHelp& c : kCommands) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

std::string Usage() {
  std::string text = "usage:\n";
  for (const CommandHelp& c : kCommands) {
    if (c.name == kFirstInspection) {
      text += "inspection (read-only; human tables, or one JSON document with -o json):\n";
    }
    text += c.usage;
  }
  return text + kFooter;
}

Result<CommandLine, std::string> ParseCommandLine(std::span<const std::string> args) {
  CommandLine line;
  line.pin_dir = XLB_PIN_DIR;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string problem;
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        problem = a + " needs a value";
        return false;
      }
      out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--pin-dir") {
      value(line.pin_dir);
    } else if (a == "--attach") {
      value(line.attach);
    } else if (a == "--tc" || a == "--tunnel-addr") {
      if (value(v)) {
        (a == "--tc" ? line.tc : line.tunnel_addrs).push_back(v);
      }
    } else if (a == "--encap") {
      value(line.encap);
    } else if (a == "--tunnel-mtu") {
      value(line.tunnel_mtu);
    } else if (a == "-o" || a == "--output") {
      if (value(v) && v != "json" && v != "table") {
        problem = a + " " + v + ": json or table";
      }
      line.inspect.json = v == "json";
    } else if (a == "--all") {
      line.inspect.all = true;
    } else if (a == "--replies") {
      line.inspect.replies = true;
    } else if (a == "--limit") {
      if (value(v)) {
        char* end = nullptr;
        line.inspect.limit = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0') {
          problem = "--limit " + v + ": a number (0 = no limit)";
        }
      }
    } else if (a == "--config") {
      value(line.inspect.config);
    } else if (a == "--policy") {
      value(line.inspect.policy);
    } else if (a == "--tcp-flags") {
      value(line.inspect.tcp_flags);
    } else if (a == "--replace") {
      line.replace = true;
    } else if (a == "--native-only") {
      line.native_only = true;
    } else if (a == "--force") {
      line.force = true;
    } else if (a == "--help" || a == "-h") {
      line.help = true;
    } else if (a.starts_with("-") && a != "-") {
      problem = "unknown option " + a;
    } else if (line.command.empty()) {
      line.command = a;
    } else {
      line.positional.push_back(a);
    }
    if (!problem.empty()) {
      return problem;
    }
  }
  if (line.command.empty() && !line.help) {
    return std::string("missing command");
  }
  if (!line.command.empty() && FindCommand(line.command) == nullptr) {
    return "unknown command " + line.command;
  }
  line.inspect.pin_dir = line.pin_dir;
  line.inspect.positional = line.positional;
  return line;
}

}  // namespace xlb::cli
