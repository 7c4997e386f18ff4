// xlbctl: load, attach, inspect and remove the xlb datapath by hand. The command line and the
// help are command_line.h's; the inspection commands (status, services, backends, stats,
// conntrack, explain, policies) and uninstall live in a file each (commands.h declares them).
#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/log.h"
#include "loader/reasons.h"
#include "loader/sock_loader.h"
#include "loader/tc_loader.h"
#include "loader/xdp_loader.h"
#include "maps/typed_map.h"
#include "userspace/cli/command_line.h"
#include "userspace/cli/commands.h"
#include "userspace/cli/pinned_datapath.h"

namespace {

using xlb::cli::CommandLine;

int Usage(const char* problem) {
  if (problem != nullptr) {
    std::fprintf(stderr, "xlbctl: %s\n", problem);
  }
  std::fputs(xlb::cli::Usage().c_str(), stderr);
  return 2;
}

int Fail(const xlb::Error& error) {
  std::fprintf(stderr, "xlbctl: %s\n", error.ToString().c_str());
  return 1;
}

// The tunnel knobs of --tunnel-addr, --encap and --tunnel-mtu, into the runtime config.
bool TunnelConfig(const CommandLine& args, xlb_config& config, std::string& problem) {
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

int Load(const CommandLine& args) {
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

// No xlb filter there (DetachTc says ENOENT, also when there is no clsact qdisc at all).
bool NoFilter(const xlb::Error& e) {
  return e.err == ENOENT;
}

int DetachTc(const CommandLine& args) {
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

int Detach(const CommandLine& args) {
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

int Unload(const CommandLine& args) {
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
    std::printf("nothing was pinned under %s: nothing removed\n", args.pin_dir.c_str());
  } else {
    std::printf("removed %zu xlb pins under %s\n", pinned, args.pin_dir.c_str());
  }
  return 0;
}

int Reasons(const CommandLine& args) {
  // Opened as the inspection commands open the pins, so "not loaded" reads the same.
  auto dp = xlb::cli::PinnedDatapath::Open(args.pin_dir);
  if (!dp.ok()) {
    return Fail(dp.error());
  }
  auto map = xlb::PerCpuMap<xlb_counter>::FromFd(dp->fd(XLB_MAP_REASONS));
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

int Help(const CommandLine& args) {
  // `xlbctl COMMAND --help` and `xlbctl help COMMAND`: that command's part.
  const std::string& topic =
      args.command == "help" && !args.positional.empty() ? args.positional[0] : args.command;
  const xlb::cli::CommandHelp* command = xlb::cli::FindCommand(topic);
  if (!topic.empty() && topic != "help" && command == nullptr) {
    return Usage(("unknown command " + topic).c_str());
  }
  if (command == nullptr || topic == "help") {
    std::fputs(xlb::cli::Usage().c_str(), stdout);
  } else {
    std::printf("usage:\n%.*s", static_cast<int>(command->usage.size()), command->usage.data());
  }
  return 0;
}

int Main(int argc, char** argv) {
  // Results go to stdout; the loader's info lines would only repeat them.
  if (std::getenv("XLB_LOG") == nullptr) {
    xlb::SetLogLevel(xlb::LogLevel::kWarn);
  }
  const std::vector<std::string> words(argv + 1, argv + argc);
  auto parsed = xlb::cli::ParseCommandLine(words);
  if (!parsed.ok()) {
    return Usage(parsed.error().c_str());
  }
  const CommandLine& args = *parsed;
  if (args.help || args.command == "help") {
    return Help(args);
  }
  using Command = int (*)(const CommandLine&);
  static const std::pair<std::string_view, Command> kNodeCommands[] = {
      {"load", Load},     {"detach", Detach},   {"detach-tc", DetachTc},
      {"unload", Unload}, {"reasons", Reasons},
  };
  for (const auto& [name, command] : kNodeCommands) {
    if (args.command == name) {
      return command(args);
    }
  }
  using Inspect = int (*)(const xlb::cli::InspectOptions&);
  static const std::pair<std::string_view, Inspect> kInspect[] = {
      {"status", xlb::cli::Status},       {"services", xlb::cli::Services},
      {"backends", xlb::cli::Backends},   {"stats", xlb::cli::Stats},
      {"conntrack", xlb::cli::Conntrack}, {"explain", xlb::cli::Explain},
      {"policies", xlb::cli::Policies},   {"uninstall", xlb::cli::Uninstall},
  };
  for (const auto& [name, command] : kInspect) {
    if (args.command == name) {
      if (name != "explain" && !args.positional.empty()) {
        return Usage((args.command + " takes no argument " + args.positional[0]).c_str());
      }
      return command(args.inspect);
    }
  }
  // ParseCommandLine knows only the commands above.
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
