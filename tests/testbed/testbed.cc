#include "testbed.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace xlb::testbed {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// argv as the char* array execvp wants, built before fork (no allocation after it).
struct Argv {
  explicit Argv(const std::vector<std::string>& args) : strings(args) {
    for (auto& s : strings) {
      ptrs.push_back(s.data());
    }
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

// In a freshly forked child: enter the namespace, wire fds 0/1/2, drop every other fd
// (so no child keeps a pipe of the parent's open), exec. Only async-signal-safe calls.
[[noreturn]] void ExecChild(int ns_fd, int in_fd, int out_fd, int err_fd, Argv& argv) {
  if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0) {
    static const char msg[] = "setns(CLONE_NEWNET) failed\n";
    (void)!::write(err_fd, msg, sizeof(msg) - 1);
    ::_exit(126);
  }
  ::dup2(in_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  ::close_range(3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execvp(argv.ptrs[0], argv.ptrs.data());
  static const char msg[] = "exec failed\n";
  (void)!::write(2, msg, sizeof(msg) - 1);
  ::_exit(127);
}

int OpenNs(const std::string& ns_path, std::string* error) {
  if (ns_path.empty()) {
    return -1;
  }
  int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "open " + ns_path + ": " + std::strerror(errno);
  }
  return fd;
}

void FillStatus(int status, CommandResult* r) {
  if (WIFEXITED(status)) {
    r->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r->signal = WTERMSIG(status);
  }
}

std::atomic<int> g_testbeds{0};

const std::map<std::string, std::array<const char*, 2>, std::less<>>& Plan() {
  static const std::map<std::string, std::array<const char*, 2>, std::less<>> plan = {
      {"client", {"198.18.0.2", "2001:db8::2"}},
      {"router", {"198.18.0.1", "2001:db8::1"}},
      {"nodeA", {"198.18.1.2", "2001:db8:1::2"}},
      {"nodeB", {"198.18.2.2", "2001:db8:2::2"}},
      {"podA1", {"198.18.10.11", "2001:db8:10::11"}},
      {"podA2", {"198.18.10.12", "2001:db8:10::12"}},
      {"podB1", {"198.18.20.11", "2001:db8:20::11"}},
      {"podB2", {"198.18.20.12", "2001:db8:20::12"}},
      {"clientA", {"198.18.10.21", "2001:db8:10::21"}},
      {"nodeC", {"198.18.3.2", "2001:db8:3::2"}},
      {"podC1", {"198.18.30.11", "2001:db8:30::11"}},
      {"nodeA2", {"198.18.4.2", "2001:db8:4::2"}},
      {"nodeB2", {"198.18.5.2", "2001:db8:5::2"}},
      {"nodeA3", {"198.18.6.2", "2001:db8:6::2"}},
      {"podA21", {"198.18.11.11", "2001:db8:11::11"}},
      {"clientA2", {"198.18.11.21", "2001:db8:11::21"}},
      {"podA31", {"198.18.12.11", "2001:db8:12::11"}},
      {"clientB", {"198.18.20.21", "2001:db8:20::21"}},
      {"podB21", {"198.18.21.11", "2001:db8:21::11"}},
      {"clientB2", {"198.18.21.21", "2001:db8:21::21"}},
  };
  return plan;
}

}  // namespace

const char* FamilyName(Family f) {
  return f == Family::kV4 ? "ipv4" : "ipv6";
}

const std::vector<std::string>& Roles() {
  static const std::vector<std::string> roles = {"client", "router",  "nodeA", "nodeB", "podA1",
                                                 "podA2",  "clientA", "podB1", "podB2"};
  return roles;
}

const std::vector<std::string>& NodeCRoles() {
  static const std::vector<std::string> roles = {"nodeC", "podC1"};
  return roles;
}

const std::vector<std::string>& MultiNodeRoles() {
  static const std::vector<std::string> roles = {"nodeA2",  "nodeA3",   "nodeB2",
                                                 "podA21",  "clientA2", "podA31",
                                                 "clientB", "podB21",   "clientB2"};
  return roles;
}

const std::vector<std::string>& MultiNodeEchoRoles() {
  static const std::vector<std::string> roles = {"podA21",   "podA31",  "podB21",   "clientA",
                                                 "clientA2", "clientB", "clientB2", "nodeA2"};
  return roles;
}

const std::vector<std::string>& Pods() {
  static const std::vector<std::string> pods = {"podA1", "podA2", "podB1", "podB2"};
  return pods;
}

std::string NodeOf(std::string_view pod) {
  static const std::map<std::string, std::string, std::less<>> nodes = {
      {"podA1", "nodeA"},     {"podA2", "nodeA"},   {"clientA", "nodeA"}, {"podB1", "nodeB"},
      {"podB2", "nodeB"},     {"clientB", "nodeB"}, {"podC1", "nodeC"},   {"podA21", "nodeA2"},
      {"clientA2", "nodeA2"}, {"podA31", "nodeA3"}, {"podB21", "nodeB2"}, {"clientB2", "nodeB2"},
  };
  if (pod.rfind("node", 0) == 0) {
    return std::string(pod);
  }
  auto it = nodes.find(pod);
  return it == nodes.end() ? "" : it->second;
}

std::string Address(std::string_view role, Family f) {
  auto it = Plan().find(role);
  if (it == Plan().end()) {
    throw std::invalid_argument("no such testbed role: " + std::string(role));
  }
  return it->second[f == Family::kV4 ? 0 : 1];
}

std::string Vip(Family f, int n, int net) {
  if (n < 1 || n > 254 || net < 0 || net > 3) {
    throw std::invalid_argument("VIP index out of 1..254 or net out of 0..3");
  }
  char buf[40];
  if (f == Family::kV4) {
    std::snprintf(buf, sizeof(buf), "198.18.%d.%d", 100 + net, n);
  } else {
    std::snprintf(buf, sizeof(buf), "2001:db8:%d::%x", 100 + net, n);
  }
  return buf;
}

std::string ScriptPath() {
  return XLB_TESTBED_SCRIPT;
}
std::string EchoBinary() {
  return XLB_ECHO_BIN;
}
std::string ProbeBinary() {
  return XLB_PROBE_BIN;
}
std::string XdpPassObject() {
  return XLB_XDP_PASS_OBJ;
}

std::string CommandResult::Describe() const {
  std::string s = timed_out        ? "timed out"
                  : exit_code >= 0 ? "exit " + std::to_string(exit_code)
                  : signal != 0    ? "killed by signal " + std::to_string(signal)
                                   : "did not run";
  if (!out.empty()) {
    s += "\n--- stdout ---\n" + out;
  }
  if (!err.empty()) {
    s += "\n--- stderr ---\n" + err;
  }
  return s;
}

void RunInNetns(const std::string& ns_path, const std::function<void()>& fn) {
  std::string error;
  std::exception_ptr thrown;
  std::thread t([&] {
    int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      error = "enter " + ns_path + ": " + std::strerror(errno);
      if (fd >= 0) {
        ::close(fd);
      }
      return;
    }
    ::close(fd);
    try {
      fn();
    } catch (...) {
      thrown = std::current_exception();
    }
  });
  t.join();
  if (!error.empty()) {
    throw std::runtime_error(error);
  }
  if (thrown) {
    std::rethrow_exception(thrown);
  }
}

CommandResult RunIn(const std::string& ns_path, const std::vector<std::string>& argv,
                    milliseconds timeout) {
  CommandResult r;
  int ns_fd = OpenNs(ns_path, &r.err);
  if (!ns_path.empty() && ns_fd < 0) {
    return r;
  }
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.err = std::string("pipe2: ") + std::strerror(errno);
    return r;
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  Argv args(argv);
  pid_t pid = ::fork();
  if (pid == 0) {
    ExecChild(ns_fd, devnull, out[1], err[1], args);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(devnull);
  if (ns_fd >= 0) {
    ::close(ns_fd);
  }
  if (pid < 0) {
    r.err = std::string("fork: ") + std::strerror(errno);
    ::close(out[0]);
    ::close(err[0]);
    return r;
  }

  auto deadline = Clock::now() + timeout;
  std::array<pollfd, 2> fds = {pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks = {&r.out, &r.err};
  int open_fds = 2;
  bool exited = false;
  int status = 0;
  // Read until both pipes close; stop early if the child has exited but left a
  // grandchild holding them, and give up (SIGKILL) at the deadline.
  Clock::time_point exited_at;
  while (open_fds > 0) {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      exited_at = Clock::now();
    }
    if (exited && Clock::now() - exited_at > milliseconds(500)) {
      // What the child wrote before it exited is in the pipes: take it even when this thread
      // was not scheduled in the meantime (a loaded machine). A grandchild's later writes
      // may go.
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].fd < 0) {
          continue;
        }
        ::fcntl(fds[i].fd, F_SETFL, ::fcntl(fds[i].fd, F_GETFL) | O_NONBLOCK);
        char buf[8192];
        for (int reads = 0; reads < 1024; ++reads) {
          const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
          if (n <= 0) {
            break;
          }
          sinks[i]->append(buf, static_cast<size_t>(n));
        }
      }
      break;
    }
    if (!exited && Clock::now() > deadline) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      exited = true;
      exited_at = Clock::now();
    }
    if (::poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) {
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[8192];
        ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          sinks[i]->append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) {
      ::close(p.fd);
    }
  }
  if (!exited) {
    ::waitpid(pid, &status, 0);
  }
  if (!r.timed_out) {
    FillStatus(status, &r);
  }
  return r;
}

std::unique_ptr<Process> Spawn(const std::string& ns_path, const std::vector<std::string>& argv,
                               const std::string& out_base) {
  std::unique_ptr<Process> p(new Process());
  p->out_path_ = out_base + ".out";
  p->err_path_ = out_base + ".err";
  std::string error;
  int ns_fd = OpenNs(ns_path, &error);
  int out = ::open(p->out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(p->err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if ((!ns_path.empty() && ns_fd < 0) || out < 0 || err < 0 || devnull < 0) {
    std::fprintf(stderr, "testbed: cannot start %s: %s %s\n", argv[0].c_str(), error.c_str(),
                 std::strerror(errno));
    for (int fd : {ns_fd, out, err, devnull}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    return nullptr;
  }
  Argv args(argv);
  pid_t pid = ::fork();
  if (pid == 0) {
    ExecChild(ns_fd, devnull, out, err, args);
  }
  for (int fd : {ns_fd, out, err, devnull}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  if (pid < 0) {
    std::fprintf(stderr, "testbed: fork: %s\n", std::strerror(errno));
    return nullptr;
  }
  p->pid_ = pid;
  return p;
}

Process::~Process() {
  Stop();
}

bool Process::Running() {
  if (pid_ < 0) {
    return false;
  }
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    FillStatus(status, &result_);
    pid_ = -1;  // reaped: never signal this number again
    return false;
  }
  return true;
}

CommandResult Process::Collect() {
  CommandResult r = result_;
  r.out = ReadFile(out_path_);
  r.err = ReadFile(err_path_);
  return r;
}

std::string Process::ErrSoFar() const {
  return ReadFile(err_path_);
}

CommandResult Process::Wait(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Running()) {
    if (Clock::now() >= deadline) {
      CommandResult r = Collect();
      r.timed_out = true;
      return r;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return Collect();
}

CommandResult Process::Stop(milliseconds grace) {
  if (Running()) {
    ::kill(pid_, SIGTERM);
    CommandResult r = Wait(grace);
    if (r.timed_out && pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      FillStatus(status, &result_);
      pid_ = -1;
    }
  }
  return Collect();
}

std::vector<std::string> NamespacesWithPrefix(const std::string& prefix) {
  CommandResult r = RunIn("", {"ip", "netns", "list"}, std::chrono::seconds(10));
  if (!r.ok()) {
    throw std::runtime_error("ip netns list: " + r.Describe());
  }
  std::vector<std::string> found;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::string name = line.substr(0, line.find(' '));
    if (name.rfind(prefix, 0) == 0) {
      found.push_back(name);
    }
  }
  return found;
}

std::string ProbeResult::Describe() const {
  std::string s = std::to_string(ok) + "/" + std::to_string(count) + " ok";
  for (const auto& [name, m] : {std::pair{"ids", &ids},
                                {"clients", &clients},
                                {"locals", &locals},
                                {"peers", &peers},
                                {"errors", &errors}}) {
    s += std::string("; ") + name + ":";
    for (const auto& [k, v] : *m) {
      s += " " + k + "=" + std::to_string(v);
    }
  }
  return s + "\n" + command.Describe();
}

ProbeResult ParseProbe(CommandResult command) {
  ProbeResult p;
  p.command = std::move(command);
  auto j = nlohmann::json::parse(p.command.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    p.errors["xlb-probe printed no JSON"] = 1;
    return p;
  }
  p.count = j.value("count", 0L);
  p.ok = j.value("ok", 0L);
  p.failed = j.value("failed", 0L);
  for (auto [key, m] : {std::pair{"ids", &p.ids},
                        {"clients", &p.clients},
                        {"locals", &p.locals},
                        {"peers", &p.peers},
                        {"errors", &p.errors}}) {
    if (j.contains(key)) {
      *m = j[key].get<std::map<std::string, long>>();
    }
  }
  p.same_backend = j.value("same_backend", false);
  p.bytes_up = j.value("bytes_up", 0L);
  p.bytes_down = j.value("bytes_down", 0L);
  p.snd_mss = j.value("snd_mss", 0L);
  p.rcv_mss = j.value("rcv_mss", 0L);
  return p;
}

Testbed::Testbed(Options options) : options_(std::move(options)) {}

std::unique_ptr<Testbed> Testbed::Up(const Options& options) {
  if (::geteuid() != 0) {
    throw std::runtime_error(
        "the testbed needs root (network namespaces, as in CI); this is a failure, not a skip");
  }
  Options o = options;
  if (o.prefix.empty()) {
    o.prefix = "xlbtb" + std::to_string(::getpid()) + "-" + std::to_string(g_testbeds++) + "-";
  }
  if (o.prefix.back() != '-') {
    throw std::invalid_argument("testbed prefix must end with '-': " + o.prefix);
  }
  // Owned from here on: whatever throws below, the destructor removes what was built.
  std::unique_ptr<Testbed> tb(new Testbed(o));
  std::string templ = std::filesystem::temp_directory_path().string() + "/" + o.prefix + "XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  tb->state_dir_ = templ;
  tb->StartWatchdog();

  std::vector<std::string> up_argv = {"bash",
                                      ScriptPath(),
                                      "up",
                                      "--prefix",
                                      o.prefix,
                                      "--no-echo",
                                      "--port",
                                      std::to_string(o.port),
                                      "--transit-mtu",
                                      std::to_string(o.transit_mtu)};
  if (o.node_c) {
    up_argv.push_back("--node-c");
  }
  if (o.multi_node) {
    up_argv.push_back("--multi-node");
  }
  if (o.xdp_pass_object.empty() || !std::filesystem::exists(o.xdp_pass_object)) {
    // Without it every frame xlb sends with XDP_TX is silently lost on the router.
    throw std::runtime_error("no XDP_PASS object for the router's ports: '" + o.xdp_pass_object +
                             "' (build target xlb_floor)");
  }
  up_argv.insert(up_argv.end(), {"--xdp-pass", o.xdp_pass_object});
  CommandResult up = RunIn("", up_argv, std::chrono::seconds(60));
  if (!up.ok()) {
    throw std::runtime_error("testbed.sh up --prefix " + o.prefix + ": " + up.Describe());
  }
  if (o.start_echo) {
    tb->StartEcho();
  }
  return tb;
}

// A process outside our session that waits for this one to go away. It reads one end of a
// pipe whose other end only this process holds: "d" means Down() already ran; EOF without
// it means we died (crash, SIGKILL, abort, Ctrl-C), and it runs `testbed.sh down` and
// removes the state directory.
void Testbed::StartWatchdog() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  Argv down({"bash", "-c", R"("$0" down --prefix "$1"; rm -rf -- "$2")", ScriptPath(),
             options_.prefix, state_dir_});
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();  // no terminal's Ctrl-C, no process-group kill reaches it
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    ::dup2(fds[0], 0);
    ::dup2(devnull, 1);  // never hold the test runner's output pipes open
    ::dup2(devnull, 2);
    ::close_range(3, ~0U, 0);
    char c = 0;
    ssize_t n;
    do {
      n = ::read(0, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && c == 'd') {
      ::_exit(0);
    }
    ::dup2(1, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(down.ptrs[0], down.ptrs.data());
    ::_exit(127);
  }
  ::close(fds[0]);
  ::close(devnull);
  if (pid < 0) {
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  watchdog_pid_ = pid;
  watchdog_fd_ = fds[1];
}

std::vector<std::string> Testbed::roles() const {
  std::vector<std::string> r = Roles();
  if (options_.node_c) {
    r.insert(r.end(), NodeCRoles().begin(), NodeCRoles().end());
  }
  if (options_.multi_node) {
    r.insert(r.end(), MultiNodeRoles().begin(), MultiNodeRoles().end());
  }
  return r;
}

std::vector<std::string> Testbed::echo_roles() const {
  std::vector<std::string> r = pods();
  if (options_.multi_node) {
    r.insert(r.end(), MultiNodeEchoRoles().begin(), MultiNodeEchoRoles().end());
  }
  return r;
}

std::vector<std::string> Testbed::pods() const {
  std::vector<std::string> p = Pods();
  if (options_.node_c) {
    p.push_back("podC1");
  }
  return p;
}

void Testbed::StartEcho() {
  for (const std::string& pod : echo_roles()) {
    std::string base = state_dir_ + "/" + pod;
    ::unlink((base + ".pid").c_str());
    auto p = ::xlb::testbed::Spawn(NsPath(pod),
                                   {EchoBinary(), "--id", pod, "--port",
                                    std::to_string(options_.port), "--pid-file", base + ".pid"},
                                   base + ".echo");
    if (!p) {
      throw std::runtime_error("could not start xlb-echo in " + pod);
    }
    echo_.emplace(pod, std::move(p));
  }
  // The pid file appears once every socket listens (generous: a loaded machine is slow).
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (const std::string& pod : echo_roles()) {
    std::string pid_file = state_dir_ + "/" + pod + ".pid";
    while (!std::filesystem::exists(pid_file)) {
      Process& p = *echo_.at(pod);
      if (!p.Running()) {
        throw std::runtime_error("xlb-echo in " + pod +
                                 " exited: " + p.Wait(milliseconds(0)).Describe());
      }
      if (Clock::now() > deadline) {
        throw std::runtime_error("xlb-echo in " + pod + " not ready after 30 s: " + EchoLog(pod));
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
}

Testbed::~Testbed() {
  Down();
}

std::string Testbed::Ns(std::string_view role) const {
  return options_.prefix + std::string(role);
}

std::string Testbed::NsPath(std::string_view role) const {
  return "/var/run/netns/" + Ns(role);
}

CommandResult Testbed::Run(std::string_view role, const std::vector<std::string>& argv,
                           milliseconds timeout) const {
  return RunIn(NsPath(role), argv, timeout);
}

std::unique_ptr<Process> Testbed::Spawn(std::string_view role,
                                        const std::vector<std::string>& argv) {
  return ::xlb::testbed::Spawn(NsPath(role), argv,
                               state_dir_ + "/spawn-" + std::to_string(spawned_++));
}

ProbeResult Testbed::Probe(std::string_view from, std::string_view mode, const std::string& addr,
                           long count, long parallel, long timeout_ms,
                           const std::vector<std::string>& extra) const {
  return ProbePort(from, mode, addr, options_.port, count, parallel, timeout_ms, extra);
}

ProbeResult Testbed::ProbePort(std::string_view from, std::string_view mode,
                               const std::string& addr, uint16_t port, long count, long parallel,
                               long timeout_ms, const std::vector<std::string>& extra) const {
  long budget_ms = 5000 + (count / std::max(parallel, 1L) + 1) * timeout_ms;
  std::vector<std::string> argv = {ProbeBinary(),
                                   std::string(mode),
                                   addr,
                                   std::to_string(port),
                                   "--count",
                                   std::to_string(count),
                                   "--parallel",
                                   std::to_string(parallel),
                                   "--timeout-ms",
                                   std::to_string(timeout_ms),
                                   "--deadline-ms",
                                   std::to_string(std::min(budget_ms, 600000L)),
                                   "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ParseProbe(Run(from, argv, milliseconds(budget_ms + 5000)));
}

std::unique_ptr<Process> Testbed::StartHold(std::string_view from, const std::string& addr,
                                            long count, long interval_ms) {
  return Spawn(from, {ProbeBinary(), "hold", addr, std::to_string(options_.port), "--count",
                      std::to_string(count), "--interval-ms", std::to_string(interval_ms), "--json",
                      "--verbose"});
}

pid_t Testbed::EchoPid(std::string_view pod) const {
  auto it = echo_.find(pod);
  return it == echo_.end() ? -1 : it->second->pid();
}

std::string Testbed::EchoLog(std::string_view pod) const {
  return ReadFile(state_dir_ + "/" + std::string(pod) + ".echo.err");
}

std::map<std::string, CommandResult> Testbed::StopEcho() {
  // SIGTERM to all first, so they wind down together.
  for (auto& [pod, p] : echo_) {
    if (p->Running()) {
      ::kill(p->pid(), SIGTERM);
    }
  }
  std::map<std::string, CommandResult> results;
  for (auto& [pod, p] : echo_) {
    results.emplace(pod, p->Stop());
  }
  echo_.clear();
  return results;
}

bool Testbed::Down() {
  if (down_) {
    return true;
  }
  down_ = true;
  StopEcho();
  bool ok = true;
  CommandResult r = RunIn("", {"bash", ScriptPath(), "down", "--prefix", options_.prefix},
                          std::chrono::seconds(60));
  if (!r.ok()) {
    std::fprintf(stderr, "testbed: down --prefix %s: %s\n", options_.prefix.c_str(),
                 r.Describe().c_str());
    ok = false;
  }
  if (watchdog_fd_ >= 0) {
    (void)!::write(watchdog_fd_, ok ? "d" : "x", 1);  // "x": let the watchdog try once more
    ::close(watchdog_fd_);
    watchdog_fd_ = -1;
  }
  if (watchdog_pid_ > 0) {
    int status;
    ::waitpid(watchdog_pid_, &status, 0);
    watchdog_pid_ = -1;
  }
  if (!state_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(state_dir_, ec);
  }
  return ok;
}

}  // namespace xlb::testbed
