// The two-cluster testbed for tests: client, router, nodeA/nodeB, four server pods and a
// client pod of cluster A (clientA), each a network namespace of its own (the topology and
// the address plan are scripts/testbed.sh, which this drives), with xlb-echo running in
// every server pod; optionally (Options::node_c) a third node without xlb, nodeC, whose pod
// podC1 is reachable only through a stock Linux vxlan device.
//
//   auto tb = xlb::testbed::Testbed::Up();            // throws std::runtime_error on failure
//   auto r = tb->Probe("client", "tcp", xlb::testbed::Address("podA1", Family::kV4), 20);
//
// Everything is removed by the destructor, also when an assertion failed half-way. If the
// test process dies without running it (a crash, SIGKILL, Ctrl-C), a watchdog process that
// Up() leaves behind notices and runs `testbed.sh down` for the prefix. Needs root, as CI
// has: without it Up() throws, so the test fails rather than skips.
#ifndef XLB_TESTS_TESTBED_TESTBED_H
#define XLB_TESTS_TESTBED_TESTBED_H

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace xlb::testbed {

enum class Family { kV4, kV6 };
const char* FamilyName(Family f);  // "ipv4" / "ipv6"

// --- the address plan (scripts/testbed.sh has the table) ---

// client, router, nodeA, nodeB, podA1, podA2, clientA, podB1, podB2: the base testbed.
const std::vector<std::string>& Roles();
// podA1, podA2, podB1, podB2: the server pods, which are also the echo servers' ids.
const std::vector<std::string>& Pods();
// What Options::node_c adds: nodeC and its server pod podC1.
const std::vector<std::string>& NodeCRoles();
// What Options::multi_node adds: nodeA2, nodeA3 (no xlb), nodeB2, podA21, clientA2, podA31,
// clientB, podB21, clientB2.
const std::vector<std::string>& MultiNodeRoles();
// Where Options::multi_node runs xlb-echo besides Pods(): the new server pods, every client
// pod (a pod can be its own backend: hairpin) and nodeA2's host namespace (a host address).
const std::vector<std::string>& MultiNodeEchoRoles();
// The node of a pod ("nodeA" for podA1/podA2/clientA, "nodeA2" for podA21/clientA2, ...);
// a node is its own node; "" for the client and the router.
std::string NodeOf(std::string_view pod);
// The role's main address: a pod's or the client's (the source of all their traffic),
// a node's transit address (its tunnel endpoint), the router's on the client net. A node
// or the router may use another of its addresses as source, depending on the route.
std::string Address(std::string_view role, Family f);
// Where VIP n (1..254) lives: 198.18.100.n, 2001:db8:100::n; routed to nodeA. `net` 1..3
// picks the reserved ranges 198.18.10{net}.0/24, routed to nodeA with Options::multi_node.
std::string Vip(Family f, int n = 1, int net = 0);
inline constexpr const char* kVipNet4 = "198.18.100.0/24";
inline constexpr const char* kVipNet6 = "2001:db8:100::/64";
inline constexpr uint16_t kEchoPort = 8080;

// --- processes ---

struct CommandResult {
  int exit_code = -1;  // -1 unless it exited
  int signal = 0;      // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0 && !timed_out; }
  std::string Describe() const;  // status and output, for failure messages
};

// Runs argv (argv[0] looked up in PATH) in the network namespace at ns_path, or in this
// process's own when ns_path is empty, and waits at most `timeout`, then SIGKILLs it.
// Runs fn on a thread that has entered the network namespace at ns_path (a network namespace
// is per thread: XDP and TC attach by ifindex, sockets bind, inside it). Throws if setns fails;
// rethrows what fn threw.
void RunInNetns(const std::string& ns_path, const std::function<void()>& fn);

CommandResult RunIn(const std::string& ns_path, const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout);

// A process started in a namespace that outlives the call (a server, `xlb-probe hold`).
// Its stdout/stderr go to files; the destructor stops it (SIGTERM, then SIGKILL).
class Process {
 public:
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Waits for the exit; on timeout returns timed_out=true and leaves it running.
  CommandResult Wait(std::chrono::milliseconds timeout);
  // SIGTERM, up to `grace` for it to exit, then SIGKILL. Returns how it ended.
  CommandResult Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  // What it has written to stderr so far (while it runs, too).
  std::string ErrSoFar() const;

 private:
  friend std::unique_ptr<Process> Spawn(const std::string&, const std::vector<std::string>&,
                                        const std::string&);
  Process() = default;
  CommandResult Collect();
  pid_t pid_ = -1;
  CommandResult result_;  // once reaped
  std::string out_path_, err_path_;
};

// Starts argv in the namespace at ns_path; output to OUT_BASE.out / OUT_BASE.err.
// nullptr (with a message on stderr) if fork failed.
std::unique_ptr<Process> Spawn(const std::string& ns_path, const std::vector<std::string>& argv,
                               const std::string& out_base);

// Names from `ip netns list` that start with prefix.
std::vector<std::string> NamespacesWithPrefix(const std::string& prefix);

// Paths of the script, the two tools and the trivial XDP_PASS object in this build.
std::string ScriptPath();
std::string EchoBinary();
std::string ProbeBinary();
std::string XdpPassObject();

// --- xlb-probe results ---

struct ProbeResult {
  CommandResult command;
  long count = 0;
  long ok = 0;
  long failed = 0;
  std::map<std::string, long> ids;      // backend id -> replies
  std::map<std::string, long> clients;  // client address the backend saw -> replies
  std::map<std::string, long> locals;   // backend's local address:port -> replies
  std::map<std::string, long> peers;    // address:port the reply came from -> replies
  std::map<std::string, long> errors;   // failure reason -> attempts
  bool same_backend = false;            // hold only
  long bytes_up = 0;                    // bulk only: bytes sent and echoed back complete
  long bytes_down = 0;                  // bulk only: bytes received and verified
  long snd_mss = 0;                     // bulk only: the connection's MSS, each direction
  long rcv_mss = 0;
  std::string Describe() const;
};

// --- the testbed ---

struct Options {
  std::string prefix;  // empty: "xlbtb<pid>-<n>-"; must end with '-'
  uint16_t port = kEchoPort;
  bool start_echo = true;
  int transit_mtu = 1500;
  bool node_c = false;  // the third node (stock vxlan, no xlb) and podC1
  // nodeA2, nodeB2 (xlb nodes), nodeA3 (no xlb), their pods, client pods on every xlb node
  // (scripts/testbed.sh plan)
  bool multi_node = false;
  // XDP_PASS on the router's node ports and the pods' eth0, so XDP_TX frames are received;
  // Up() throws when it is missing.
  std::string xdp_pass_object = XdpPassObject();
};

class Testbed {
 public:
  static std::unique_ptr<Testbed> Up(const Options& options = {});
  ~Testbed();
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  const std::string& prefix() const { return options_.prefix; }
  uint16_t port() const { return options_.port; }
  int transit_mtu() const { return options_.transit_mtu; }
  // A private directory (root, 0700) for logs and captures, removed with the testbed (also
  // by the watchdog).
  const std::string& state_dir() const { return state_dir_; }
  bool multi_node() const { return options_.multi_node; }
  // Roles and server pods of this testbed (with nodeC and podC1 when it has them); the roles
  // that run xlb-echo (pods(), and with multi_node the client pods and nodeA2).
  std::vector<std::string> roles() const;
  std::vector<std::string> pods() const;
  std::vector<std::string> echo_roles() const;
  std::string Ns(std::string_view role) const;      // the namespace's name
  std::string NsPath(std::string_view role) const;  // /var/run/netns/NAME, for setns/nsenter

  // argv inside the role's namespace (fork + setns(CLONE_NEWNET) + exec; /sys and bpffs
  // stay the host's, unlike `ip netns exec`).
  CommandResult Run(std::string_view role, const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  std::unique_ptr<Process> Spawn(std::string_view role, const std::vector<std::string>& argv);

  // xlb-probe MODE ADDR PORT --count N --parallel K --timeout-ms T --json, from `from`.
  ProbeResult Probe(std::string_view from, std::string_view mode, const std::string& addr,
                    long count, long parallel = 1, long timeout_ms = 2000,
                    const std::vector<std::string>& extra = {}) const;
  // The same to another port than the echo servers' (a NodePort, say).
  ProbeResult ProbePort(std::string_view from, std::string_view mode, const std::string& addr,
                        uint16_t port, long count, long parallel = 1, long timeout_ms = 2000,
                        const std::vector<std::string>& extra = {}) const;
  // xlb-probe hold, in the background; read the result with ParseProbe(process->Wait()).
  // With --verbose, so ErrSoFar() shows the greeting's backend ("hold: greeting id=podA1").
  std::unique_ptr<Process> StartHold(std::string_view from, const std::string& addr, long count,
                                     long interval_ms);

  // The echo server of a pod (or of any of echo_roles()): pid, and its log (stderr) so far.
  pid_t EchoPid(std::string_view pod) const;
  std::string EchoLog(std::string_view pod) const;
  // Stops every echo server (SIGTERM); how each ended, by pod.
  std::map<std::string, CommandResult> StopEcho();

  // Stops the servers and removes every namespace with the prefix. Idempotent; the
  // destructor calls it. False (and a message on stderr) if something was left.
  bool Down();

 private:
  explicit Testbed(Options options);
  void StartWatchdog();
  void StartEcho();

  Options options_;
  std::string state_dir_;  // logs, pid files, outputs of spawned processes
  std::map<std::string, std::unique_ptr<Process>, std::less<>> echo_;
  pid_t watchdog_pid_ = -1;
  int watchdog_fd_ = -1;
  int spawned_ = 0;
  bool down_ = false;
};

// Parses the JSON that `xlb-probe --json` printed.
ProbeResult ParseProbe(CommandResult command);

}  // namespace xlb::testbed

#endif  // XLB_TESTS_TESTBED_TESTBED_H
