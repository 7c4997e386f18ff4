// xlbctl's inspection commands: what the datapath under a pin dir holds and does, read-only.
// Each prints a human table by default and one JSON document with `-o json`.
#ifndef XLB_USERSPACE_CLI_COMMANDS_H
#define XLB_USERSPACE_CLI_COMMANDS_H

#include <cstdint>
#include <string>
#include <vector>

namespace xlb::cli {

struct InspectOptions {
  std::string pin_dir;
  bool json = false;     // -o json
  bool all = false;      // backends --all: invalidated ones too
  bool replies = false;  // conntrack --replies: the reply map
  uint64_t limit = 100;  // conntrack --limit N; 0 = every entry
  std::string config;    // policies --config FILE
  std::string policy;    // policies --policy PATH
  std::string tcp_flags;  // explain --tcp-flags syn,ack...: the packet's; empty = an ACK
  std::vector<std::string> positional;
};

// Exit status: 0 done, 1 failed (message on stderr), 2 usage.
int Status(const InspectOptions& o);
int Services(const InspectOptions& o);
int Backends(const InspectOptions& o);
int Stats(const InspectOptions& o);
int Conntrack(const InspectOptions& o);
int Explain(const InspectOptions& o);
int Policies(const InspectOptions& o);

// Removal: detaches every xlb program in this network namespace and the links pinned under
// o.pin_dir, then removes the pins (loader/uninstall.h). Exit 1 when something could not be
// removed; nothing there is not a failure.
int Uninstall(const InspectOptions& o);

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_COMMANDS_H
