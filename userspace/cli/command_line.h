// xlbctl's command line: the commands with their help, and the one parser (xlbctl itself, and
// tests/deploy for the commands the manifests run). Options may come before or after the
// command (`xlbctl -o json status`); --help or -h anywhere asks for help.
#ifndef XLB_USERSPACE_CLI_COMMAND_LINE_H
#define XLB_USERSPACE_CLI_COMMAND_LINE_H

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/cli/commands.h"
#include "util/result.h"

namespace xlb::cli {

struct CommandLine {
  std::string command;  // one of Commands(); empty only with help
  std::vector<std::string> positional;
  std::string pin_dir;  // XLB_PIN_DIR unless --pin-dir
  std::string attach;
  std::vector<std::string> tc;
  std::vector<std::string> tunnel_addrs;
  std::string encap = "vxlan";
  std::string tunnel_mtu;
  bool replace = false;
  bool native_only = false;
  bool force = false;
  bool help = false;
  InspectOptions inspect;
};

struct CommandHelp {
  std::string_view name;
  std::string_view usage;  // "  xlbctl NAME ARGS\n      what it does\n"
};

// Every command, in the order the help lists them.
std::span<const CommandHelp> Commands();
const CommandHelp* FindCommand(std::string_view name);  // nullptr when unknown
// The whole help: every command, then what holds for all of them.
std::string Usage();

// args: the words after the program name. The error says what is wrong (an unknown option or
// command, an option without its value, a bad -o); the caller prints it with the usage.
Result<CommandLine, std::string> ParseCommandLine(std::span<const std::string> args);

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_COMMAND_LINE_H
