// xlb-probe: the client side of the testbed. It talks to xlb-echo (directly, or through a
// VIP once xlb is in the path) and summarises who answered and what they saw.
//
//   xlb-probe tcp  ADDR PORT [--count N] [--parallel K] [--timeout-ms T] [--deadline-ms D] [--json]
//   xlb-probe udp  ADDR PORT [--count N] [--parallel K] [--timeout-ms T] [--deadline-ms D] [--json]
//   xlb-probe hold ADDR PORT [--count N] [--interval-ms I] [--timeout-ms T] [--deadline-ms D]
//   [--json]
//   xlb-probe bulk ADDR PORT [--bytes N] [--timeout-ms T] [--deadline-ms D] [--json]
//
// tcp: N short connections (K at a time); each reads the server's first line and closes.
// udp: N datagrams, each from a fresh socket (so a fresh source port: a new flow), waiting
//      for the reply; a reply from any address but ADDR:PORT counts as a failure.
// hold: one connection; after the greeting, one line every I ms, N times; reports every
//      reply's backend id and whether all came from the same backend.
// bulk: one connection that moves N bytes (default 1 MiB) each way, far more than an MTU:
//      up as 4,000-byte lines, every one echoed back (checked); then "bulk N", and N bytes
//      down (checked byte by byte). Reports the bytes and the connection's MSS each way
//      (TCP_INFO), so a caller can see that segments were clamped to fit a tunnel.
//
// Everything is bounded: N <= 1,000,000, K <= 256, T <= 60 s per step, and the whole run
// stops at D (default 60 s, at most 10 min); unfinished attempts count as failures.
// Output: a text summary, or one JSON object with --json. Exit status: 0 when every
// attempt succeeded, 1 when any failed, 2 on bad usage.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "wire.h"

namespace xlb::testbed {
namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

struct Options {
  std::string mode;
  std::string addr;
  uint16_t port = 0;
  long count = 0;  // 0: the mode's default
  long parallel = 1;
  long timeout_ms = 2000;
  long interval_ms = 100;
  long deadline_ms = 60000;
  long bytes = 1 << 20;
  bool json = false;
  bool verbose = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "xlb-probe: %s\n"
               "usage: xlb-probe tcp|udp ADDR PORT [--count N] [--parallel K] [--timeout-ms T]\n"
               "                         [--deadline-ms D] [--json]\n"
               "       xlb-probe hold ADDR PORT [--count N] [--interval-ms I] [--timeout-ms T]\n"
               "                         [--deadline-ms D] [--json] [--verbose]\n"
               "       xlb-probe bulk ADDR PORT [--bytes N] [--timeout-ms T] [--deadline-ms D]\n"
               "                         [--json]\n",
               why.c_str());
  std::exit(2);
}

long ParseLong(const std::string& name, const char* s, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi) {
    Usage(name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return v;
}

Options ParseArgs(int argc, char** argv) {
  if (argc < 4) {
    Usage("missing arguments");
  }
  Options o;
  o.mode = argv[1];
  if (o.mode != "tcp" && o.mode != "udp" && o.mode != "hold" && o.mode != "bulk") {
    Usage("unknown mode " + o.mode);
  }
  o.addr = argv[2];
  o.port = static_cast<uint16_t>(ParseLong("PORT", argv[3], 1, 65535));
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        Usage("missing value for " + a);
      }
      return argv[++i];
    };
    if (a == "--count") {
      o.count = ParseLong(a, value(), 1, 1000000);
    } else if (a == "--parallel") {
      o.parallel = ParseLong(a, value(), 1, 256);
    } else if (a == "--timeout-ms") {
      o.timeout_ms = ParseLong(a, value(), 1, 60000);
    } else if (a == "--interval-ms") {
      o.interval_ms = ParseLong(a, value(), 0, 60000);
    } else if (a == "--deadline-ms") {
      o.deadline_ms = ParseLong(a, value(), 1, 600000);
    } else if (a == "--bytes") {
      o.bytes = ParseLong(a, value(), 1, 1L << 30);
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else {
      Usage("unknown argument " + a);
    }
  }
  if (o.count == 0) {
    o.count = o.mode == "hold" ? 10 : 1;
  }
  if (o.mode == "hold" && o.count > 100000) {
    Usage("--count for hold must be <= 100000");
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (!MakeSockaddr(o.addr, o.port, &ss, &len)) {
    Usage("ADDR must be an IPv4 or IPv6 literal: " + o.addr);
  }
  return o;
}

std::string Errno(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// What a bulk run moved, and the MSS the connection settled on.
struct BulkStats {
  long bytes_up = 0;
  long bytes_down = 0;
  long snd_mss = 0;
  long rcv_mss = 0;
  long retransmits = 0;
};

// One attempt (a connection, a datagram, or a line of a held connection).
struct Attempt {
  bool ok = false;
  std::string error;  // empty when ok
  std::string id;
  std::string client;  // `client=` as the backend saw it
  std::string local;   // `local=` as the backend saw it
  std::string peer;    // where the reply came from, as this probe saw it
  long rtt_us = 0;
};

// Waits for events on fd until the step or run deadline; false (with *error) on timeout.
bool WaitFor(int fd, short events, Clock::time_point until, const char* step, std::string* error) {
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(until - Clock::now()).count();
    if (left <= 0) {
      *error = std::string("timeout: ") + step;
      return false;
    }
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (r > 0) {
      return true;
    }
    if (r < 0 && errno != EINTR) {
      *error = Errno("poll");
      return false;
    }
  }
}

// Reads up to and including '\n' into *line, keeping what follows in *buf.
bool ReadLine(int fd, std::string* buf, std::string* line, Clock::time_point until,
              std::string* error) {
  for (;;) {
    size_t nl = buf->find('\n');
    if (nl != std::string::npos) {
      *line = buf->substr(0, nl);
      buf->erase(0, nl + 1);
      return true;
    }
    if (buf->size() > 65536) {
      *error = "reply line too long";
      return false;
    }
    if (!WaitFor(fd, POLLIN, until, "read", error)) {
      return false;
    }
    char tmp[4096];
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n == 0) {
      *error = "eof before reply";
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      *error = Errno("read");
      return false;
    }
    buf->append(tmp, static_cast<size_t>(n));
  }
}

bool FillFromReply(const std::string& line, Attempt* a) {
  auto fields = ParseReply(line);
  if (!fields) {
    a->error = "bad reply: " + SanitizeEcho(line);
    return false;
  }
  a->id = (*fields)["id"];
  a->client = (*fields)["client"];
  a->local = (*fields)["local"];
  return true;
}

int Connect(const Options& o, Clock::time_point until, Attempt* a) {
  sockaddr_storage ss{};
  socklen_t len;
  MakeSockaddr(o.addr, o.port, &ss, &len);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    a->error = Errno("socket");
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    a->error = Errno("connect");
    ::close(fd);
    return -1;
  }
  if (!WaitFor(fd, POLLOUT, until, "connect", &a->error)) {
    ::close(fd);
    return -1;
  }
  int err = 0;
  socklen_t elen = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  if (err != 0) {
    errno = err;
    a->error = Errno("connect");
    ::close(fd);
    return -1;
  }
  sockaddr_storage peer{};
  socklen_t plen = sizeof(peer);
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  a->peer = FormatSockaddr(peer);
  return fd;
}

Clock::time_point StepDeadline(const Options& o, Clock::time_point run_deadline) {
  return std::min(run_deadline, Clock::now() + Millis(o.timeout_ms));
}

void TcpOnce(const Options& o, Clock::time_point run_deadline, Attempt* a) {
  auto start = Clock::now();
  auto until = StepDeadline(o, run_deadline);
  int fd = Connect(o, until, a);
  if (fd < 0) {
    return;
  }
  std::string buf, line;
  if (ReadLine(fd, &buf, &line, until, &a->error) && FillFromReply(line, a)) {
    a->ok = true;
    a->rtt_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  }
  ::close(fd);
}

void UdpOnce(const Options& o, Clock::time_point run_deadline, long seq, uint64_t nonce,
             Attempt* a) {
  auto start = Clock::now();
  auto until = StepDeadline(o, run_deadline);
  sockaddr_storage ss{};
  socklen_t len;
  MakeSockaddr(o.addr, o.port, &ss, &len);
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    a->error = Errno("socket");
    return;
  }
  std::string token = "probe-" + std::to_string(seq) + "-" + std::to_string(nonce);
  if (::sendto(fd, token.data(), token.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    a->error = Errno("sendto");
    ::close(fd);
    return;
  }
  std::string want_peer = FormatSockaddr(ss);
  for (;;) {
    if (!WaitFor(fd, POLLIN, until, "read", &a->error)) {
      break;
    }
    char buf[2048];
    sockaddr_storage from{};
    socklen_t flen = sizeof(from);
    ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      // An ICMP error (port or host unreachable) shows up here on the next receive.
      a->error = Errno("recv");
      break;
    }
    a->peer = FormatSockaddr(from);
    std::string line(buf, static_cast<size_t>(n));
    if (!FillFromReply(line, a)) {
      break;
    }
    auto fields = ParseReply(line);
    if ((*fields)["echo"] != token) {
      a->error = "reply for another request: " + SanitizeEcho(line);
      break;
    }
    if (a->peer != want_peer) {
      a->error = "reply from " + a->peer + ", not " + want_peer;
      break;
    }
    a->ok = true;
    a->rtt_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    break;
  }
  ::close(fd);
}

// tcp and udp: K workers take attempt numbers from one counter until N or the deadline.
std::vector<Attempt> RunMany(const Options& o, Clock::time_point run_deadline) {
  std::vector<Attempt> attempts(static_cast<size_t>(o.count));
  std::atomic<long> next{0};
  uint64_t nonce = std::random_device{}();
  auto worker = [&] {
    for (;;) {
      long i = next.fetch_add(1);
      if (i >= o.count) {
        return;
      }
      Attempt& a = attempts[static_cast<size_t>(i)];
      if (Clock::now() >= run_deadline) {
        a.error = "timeout: run deadline";
        continue;
      }
      if (o.mode == "tcp") {
        TcpOnce(o, run_deadline, &a);
      } else {
        UdpOnce(o, run_deadline, i, nonce, &a);
      }
    }
  };
  std::vector<std::thread> threads;
  long k = std::min(o.parallel, o.count);
  for (long t = 0; t < k; ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) {
    t.join();
  }
  return attempts;
}

// hold: attempts[0] is the greeting, attempts[i] the reply to line i.
std::vector<Attempt> RunHold(const Options& o, Clock::time_point run_deadline) {
  std::vector<Attempt> attempts(static_cast<size_t>(o.count) + 1);
  Attempt& greeting = attempts[0];
  auto until = StepDeadline(o, run_deadline);
  int fd = Connect(o, until, &greeting);
  std::string buf, line;
  if (fd >= 0 && ReadLine(fd, &buf, &line, until, &greeting.error) &&
      FillFromReply(line, &greeting)) {
    greeting.ok = true;
  }
  if (o.verbose) {
    std::fprintf(stderr, "hold: greeting %s\n",
                 greeting.ok ? ("id=" + greeting.id).c_str() : greeting.error.c_str());
  }
  std::string broken = greeting.ok ? "" : "no connection: " + greeting.error;
  auto next_send = Clock::now();
  for (long i = 1; i <= o.count; ++i) {
    Attempt& a = attempts[static_cast<size_t>(i)];
    if (!broken.empty()) {
      a.error = broken;
      continue;
    }
    next_send += Millis(o.interval_ms);
    auto now = Clock::now();
    if (next_send > now) {
      if (next_send >= run_deadline) {
        broken = a.error = "timeout: run deadline";
        continue;
      }
      std::this_thread::sleep_for(next_send - now);
    }
    auto start = Clock::now();
    std::string token = "hold-" + std::to_string(i);
    std::string out = token + "\n";
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      broken = a.error = Errno("send");
      continue;
    }
    until = StepDeadline(o, run_deadline);
    if (!ReadLine(fd, &buf, &line, until, &a.error) || !FillFromReply(line, &a)) {
      broken = "connection broken at line " + std::to_string(i) + ": " + a.error;
      continue;
    }
    if (ParseReply(line)->at("echo") != token) {
      a.error = "reply for another line: " + SanitizeEcho(line);
      continue;
    }
    a.peer = greeting.peer;
    a.ok = true;
    a.rtt_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    if (o.verbose) {
      std::fprintf(stderr, "hold: line %ld id=%s\n", i, a.id.c_str());
    }
  }
  if (fd >= 0) {
    ::close(fd);
  }
  return attempts;
}

// bulk: attempts[0] the greeting, [1] the upload with every line echoed, [2] the download.
std::vector<Attempt> RunBulk(const Options& o, Clock::time_point run_deadline, BulkStats* stats) {
  std::vector<Attempt> attempts(3);
  Attempt& greeting = attempts[0];
  auto until = StepDeadline(o, run_deadline);
  int fd = Connect(o, until, &greeting);
  std::string buf, line;
  if (fd >= 0 && ReadLine(fd, &buf, &line, until, &greeting.error) &&
      FillFromReply(line, &greeting)) {
    greeting.ok = true;
  }
  auto broken = [&](Attempt& a) {
    if (!greeting.ok) {
      a.error = "no connection: " + greeting.error;
      return true;
    }
    return false;
  };

  // Up: lines of kLine bytes ("up-<i>-" then padding), written while the echoes are read,
  // so neither side's buffers fill up and stall the other.
  constexpr size_t kLine = 4000;
  Attempt& up = attempts[1];
  if (!broken(up)) {
    const long lines = (o.bytes + static_cast<long>(kLine) - 1) / static_cast<long>(kLine);
    std::string out;
    long next_line = 0, echoed = 0;
    auto line_text = [&](long i) {
      std::string l = "up-" + std::to_string(i) + "-";
      l.resize(kLine - 1, static_cast<char>('A' + i % 26));
      return l;
    };
    auto step_until = StepDeadline(o, run_deadline);
    while (up.error.empty() && echoed < lines) {
      if (out.empty() && next_line < lines) {
        out = line_text(next_line++) + "\n";
      }
      pollfd p{fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
      auto left = std::chrono::duration_cast<Millis>(step_until - Clock::now()).count();
      if (left <= 0) {
        up.error = "timeout: upload (" + std::to_string(echoed) + " of " + std::to_string(lines) +
                   " lines echoed)";
        break;
      }
      if (::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000))) < 0 && errno != EINTR) {
        up.error = Errno("poll");
        break;
      }
      if (p.revents & POLLOUT) {
        ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          out.erase(0, static_cast<size_t>(n));
          step_until = StepDeadline(o, run_deadline);  // progress: the step timer restarts
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          up.error = Errno("send");
        }
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        char tmp[16384];
        ssize_t n = ::recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n == 0) {
          up.error = "eof during upload";
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          up.error = Errno("recv");
        } else if (n > 0) {
          buf.append(tmp, static_cast<size_t>(n));
          step_until = StepDeadline(o, run_deadline);
        }
        size_t nl;
        while (up.error.empty() && (nl = buf.find('\n')) != std::string::npos) {
          std::string reply = buf.substr(0, nl);
          buf.erase(0, nl + 1);
          auto fields = ParseReply(reply);
          if (!fields || (*fields)["echo"] != SanitizeEcho(line_text(echoed))) {
            up.error = "upload line " + std::to_string(echoed) +
                       " echoed wrong: " + SanitizeEcho(reply.substr(0, 120));
            break;
          }
          ++echoed;
        }
      }
    }
    if (up.error.empty()) {
      up.ok = true;
      up.id = greeting.id;
      up.client = greeting.client;
      up.local = greeting.local;
      up.peer = greeting.peer;
      stats->bytes_up = lines * static_cast<long>(kLine);
    }
  }

  // Down: N bytes after the reply to "bulk N".
  Attempt& down = attempts[2];
  if (!broken(down)) {
    std::string request = "bulk " + std::to_string(o.bytes) + "\n";
    until = StepDeadline(o, run_deadline);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      down.error = Errno("send");
    } else if (ReadLine(fd, &buf, &line, until, &down.error) && FillFromReply(line, &down)) {
      long got = 0;
      auto check = [&](const char* data, size_t len) {
        for (size_t i = 0; i < len; ++i, ++got) {
          if (data[i] != BulkByte(static_cast<uint64_t>(got))) {
            down.error = "bulk byte " + std::to_string(got) + " is wrong";
            return false;
          }
        }
        return true;
      };
      size_t first = std::min(buf.size(), static_cast<size_t>(o.bytes));
      bool good = check(buf.data(), first);
      buf.erase(0, first);
      auto step_until = StepDeadline(o, run_deadline);
      while (good && got < o.bytes) {
        if (!WaitFor(fd, POLLIN, step_until, "bulk download", &down.error)) {
          down.error += " (" + std::to_string(got) + " of " + std::to_string(o.bytes) + " bytes)";
          good = false;
          break;
        }
        char tmp[65536];
        size_t want = std::min(sizeof(tmp), static_cast<size_t>(o.bytes - got));
        ssize_t n = ::recv(fd, tmp, want, MSG_DONTWAIT);
        if (n == 0) {
          down.error = "eof during download";
          good = false;
        } else if (n < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            down.error = Errno("recv");
            good = false;
          }
        } else {
          good = check(tmp, static_cast<size_t>(n));
          step_until = StepDeadline(o, run_deadline);
        }
      }
      if (good) {
        down.ok = true;
        down.peer = greeting.peer;
        stats->bytes_down = got;
      }
    }
  }
  if (fd >= 0) {
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) {
      stats->snd_mss = info.tcpi_snd_mss;
      stats->rcv_mss = info.tcpi_rcv_mss;
      stats->retransmits = info.tcpi_total_retrans;
    }
    ::close(fd);
  }
  return attempts;
}

nlohmann::json Summarize(const Options& o, const std::vector<Attempt>& attempts, long elapsed_ms) {
  std::map<std::string, long> ids, clients, locals, peers, errors;
  long ok = 0;
  for (const Attempt& a : attempts) {
    if (a.ok) {
      ++ok;
      ++ids[a.id];
      ++clients[HostOf(a.client)];
      ++locals[a.local];
      ++peers[a.peer];
    } else {
      ++errors[a.error];
    }
  }
  sockaddr_storage ss{};
  socklen_t len;
  MakeSockaddr(o.addr, o.port, &ss, &len);
  nlohmann::json j = {
      {"mode", o.mode},
      {"target", FormatSockaddr(ss)},
      {"count", static_cast<long>(attempts.size())},
      {"ok", ok},
      {"failed", static_cast<long>(attempts.size()) - ok},
      {"elapsed_ms", elapsed_ms},
      {"ids", ids},
      {"clients", clients},
      {"locals", locals},
      {"peers", peers},
      {"errors", errors},
  };
  if (o.mode == "hold") {
    const Attempt& greeting = attempts.front();
    bool same = greeting.ok;
    nlohmann::json replies = nlohmann::json::array();
    for (size_t i = 0; i < attempts.size(); ++i) {
      const Attempt& a = attempts[i];
      same = same && (!a.ok || a.id == greeting.id);
      nlohmann::json r = {{"seq", i}, {"ok", a.ok}, {"id", a.id}};
      if (a.ok) {
        r["rtt_us"] = a.rtt_us;
      } else {
        r["error"] = a.error;
      }
      replies.push_back(r);
    }
    j["greeting_id"] = greeting.id;
    j["same_backend"] = same && ok == static_cast<long>(attempts.size());
    j["replies"] = replies;
  }
  return j;
}

void PrintText(const nlohmann::json& j) {
  std::printf("xlb-probe %s %s: %ld/%ld ok, %ld failed, %ld ms\n",
              j["mode"].get<std::string>().c_str(), j["target"].get<std::string>().c_str(),
              j["ok"].get<long>(), j["count"].get<long>(), j["failed"].get<long>(),
              j["elapsed_ms"].get<long>());
  for (const char* key : {"ids", "clients", "locals", "peers", "errors"}) {
    for (const auto& [k, v] : j[key].items()) {
      std::printf("  %-8s %s: %ld\n", std::string(key).substr(0, std::strlen(key) - 1).c_str(),
                  k.c_str(), v.get<long>());
    }
  }
  if (j.contains("bytes_up")) {
    std::printf(
        "  bulk     up %ld bytes, down %ld bytes, mss send %ld receive %ld, %ld retransmits\n",
        j["bytes_up"].get<long>(), j["bytes_down"].get<long>(), j["snd_mss"].get<long>(),
        j["rcv_mss"].get<long>(), j["retransmits"].get<long>());
  }
  if (j.contains("replies")) {
    for (const auto& r : j["replies"]) {
      std::printf("  line %ld: %s\n", r["seq"].get<long>(),
                  r["ok"].get<bool>() ? ("ok id=" + r["id"].get<std::string>()).c_str()
                                      : ("FAILED " + r["error"].get<std::string>()).c_str());
    }
    std::printf("  same backend throughout: %s\n", j["same_backend"].get<bool>() ? "yes" : "no");
  }
}

}  // namespace
}  // namespace xlb::testbed

int main(int argc, char** argv) {
  using namespace xlb::testbed;
  ::signal(SIGPIPE, SIG_IGN);
  try {
    Options o = ParseArgs(argc, argv);
    auto start = Clock::now();
    auto run_deadline = start + Millis(o.deadline_ms);
    BulkStats bulk;
    std::vector<Attempt> attempts = o.mode == "hold"   ? RunHold(o, run_deadline)
                                    : o.mode == "bulk" ? RunBulk(o, run_deadline, &bulk)
                                                       : RunMany(o, run_deadline);
    long elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start).count();
    nlohmann::json j = Summarize(o, attempts, elapsed);
    if (o.mode == "bulk") {
      j["bytes_up"] = bulk.bytes_up;
      j["bytes_down"] = bulk.bytes_down;
      j["snd_mss"] = bulk.snd_mss;
      j["rcv_mss"] = bulk.rcv_mss;
      j["retransmits"] = bulk.retransmits;
    }
    if (o.json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      PrintText(j);
    }
    return j["failed"].get<long>() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xlb-probe: %s\n", e.what());
    return 2;
  }
}
