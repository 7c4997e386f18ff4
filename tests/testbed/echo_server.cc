// xlb-echo: the backend server of the testbed. It runs inside a pod's network namespace
// and tells every caller who answered and what addresses it saw:
//
//   TCP  on accept, one line:  id=podA1 proto=tcp client=198.18.0.2:40000 local=198.18.10.11:8080
//        then, for every line the client sends, until it closes (the long-lived mode):
//                              id=podA1 proto=tcp client=... local=... seq=N echo=LINE
//        and for the line "bulk N" (N <= 1 GiB), after that reply, N bytes of BulkByte(0..N-1)
//        (a transfer bigger than any MTU, for xlb-probe bulk); replies to lines that arrive
//        meanwhile follow the N bytes.
//   UDP  for every datagram:   id=podA1 proto=udp client=... local=... [echo=PAYLOAD]
//
// A short probe reads the first line and closes; a long-lived one keeps talking. IPv4 and
// IPv6 listen on separate sockets (IPV6_V6ONLY), so an IPv4 client never shows up as a
// v4-mapped address. UDP replies leave from the address the datagram was sent to.
//
// Usage: xlb-echo --id NAME [--port P]... [--tcp-port P]... [--udp-port P]...
//                 [--pid-file FILE] [--verbose]
// --port sets TCP and UDP (default 8080). The pid file is written once every socket
// listens, so its appearance means "ready". SIGTERM or SIGINT: clean exit (status 0).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire.h"

namespace xlb::testbed {
namespace {

constexpr size_t kMaxLine = 4096;
constexpr size_t kMaxPending = 1 << 20;  // unsent bytes before a non-reading client is dropped
constexpr size_t kMaxConnections = 4096;
constexpr uint64_t kMaxBulk = 1ULL << 30;

struct Options {
  std::string id;
  std::vector<uint16_t> tcp_ports;
  std::vector<uint16_t> udp_ports;
  std::string pid_file;
  bool verbose = false;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "xlb-echo: %s\n"
               "usage: xlb-echo --id NAME [--port P]... [--tcp-port P]... [--udp-port P]...\n"
               "                [--pid-file FILE] [--verbose]\n",
               why);
  std::exit(2);
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "xlb-echo: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

uint16_t ParsePort(const char* s) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 65535) {
    Usage("bad port");
  }
  return static_cast<uint16_t>(v);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        Usage(("missing value for " + a).c_str());
      }
      return argv[++i];
    };
    if (a == "--id") {
      o.id = value();
    } else if (a == "--port") {
      uint16_t p = ParsePort(value());
      o.tcp_ports.push_back(p);
      o.udp_ports.push_back(p);
    } else if (a == "--tcp-port") {
      o.tcp_ports.push_back(ParsePort(value()));
    } else if (a == "--udp-port") {
      o.udp_ports.push_back(ParsePort(value()));
    } else if (a == "--pid-file") {
      o.pid_file = value();
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else {
      Usage(("unknown argument " + a).c_str());
    }
  }
  if (o.id.empty() || SanitizeEcho(o.id) != o.id) {
    Usage("--id NAME is required (no spaces)");
  }
  if (o.tcp_ports.empty() && o.udp_ports.empty()) {
    o.tcp_ports.push_back(8080);
    o.udp_ports.push_back(8080);
  }
  return o;
}

struct Connection {
  int fd = -1;
  std::string prefix;  // "id=... proto=tcp client=... local=..."
  std::string in;
  std::string out;
  uint64_t seq = 0;
  uint64_t bulk_sent = 0;  // of the "bulk N" transfer under way
  uint64_t bulk_left = 0;
  std::string after_bulk;  // replies that must follow the bulk bytes
};

// Parses "bulk N"; 0 when the line is something else.
uint64_t BulkRequest(const std::string& line) {
  if (line.compare(0, 5, "bulk ") != 0) {
    return 0;
  }
  char* end = nullptr;
  unsigned long long n = std::strtoull(line.c_str() + 5, &end, 10);
  return end != line.c_str() + 5 && *end == '\0' && n <= kMaxBulk ? n : 0;
}

class EchoServer {
 public:
  explicit EchoServer(Options o) : o_(std::move(o)) {}

  void Listen() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      Die("epoll_create1");
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    sigfd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd_ < 0) {
      Die("signalfd");
    }
    Watch(sigfd_, EPOLLIN);
    ::signal(SIGPIPE, SIG_IGN);

    for (uint16_t port : o_.tcp_ports) {
      for (int family : {AF_INET, AF_INET6}) {
        int fd = Bind(family, SOCK_STREAM, port);
        if (::listen(fd, 1024) != 0) {
          Die("listen");
        }
        tcp_listeners_.push_back(fd);
        Watch(fd, EPOLLIN);
      }
    }
    for (uint16_t port : o_.udp_ports) {
      for (int family : {AF_INET, AF_INET6}) {
        int fd = Bind(family, SOCK_DGRAM, port);
        int on = 1;
        if (family == AF_INET ? ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on))
                              : ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on))) {
          Die("setsockopt PKTINFO");
        }
        udp_sockets_.push_back(fd);
        Watch(fd, EPOLLIN);
      }
    }
    std::string listening;
    for (int fd : tcp_listeners_) {
      listening += " tcp " + LocalOf(fd);
    }
    for (int fd : udp_sockets_) {
      listening += " udp " + LocalOf(fd);
    }
    std::fprintf(stderr, "xlb-echo id=%s pid=%d listening%s\n", o_.id.c_str(), ::getpid(),
                 listening.c_str());
  }

  void WritePidFile() {
    if (o_.pid_file.empty()) {
      return;
    }
    // Written whole, then renamed: a reader never sees a half-written pid.
    std::string tmp = o_.pid_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      Die("open " + tmp);
    }
    std::fprintf(f, "%d\n", ::getpid());
    if (std::fclose(f) != 0 || std::rename(tmp.c_str(), o_.pid_file.c_str()) != 0) {
      Die("write " + o_.pid_file);
    }
  }

  int Run() {
    std::vector<epoll_event> events(64);
    while (!stop_) {
      int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        Die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        Dispatch(events[i].data.fd, events[i].events);
      }
    }
    for (auto& [fd, c] : conns_) {
      ::close(fd);
    }
    if (!o_.pid_file.empty()) {
      ::unlink(o_.pid_file.c_str());
    }
    std::fprintf(stderr,
                 "xlb-echo id=%s: exiting on signal; tcp connections=%llu lines=%llu "
                 "udp datagrams=%llu\n",
                 o_.id.c_str(), static_cast<unsigned long long>(accepted_),
                 static_cast<unsigned long long>(lines_),
                 static_cast<unsigned long long>(datagrams_));
    return 0;
  }

 private:
  void Watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Die("epoll_ctl");
    }
  }

  int Bind(int family, int type, uint16_t port) {
    int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      Die("socket");
    }
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET6) {
      if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) {
        Die("IPV6_V6ONLY");
      }
      MakeSockaddr("::", port, &ss, &len);
    } else {
      MakeSockaddr("0.0.0.0", port, &ss, &len);
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      Die(std::string("bind ") + (type == SOCK_STREAM ? "tcp " : "udp ") + FormatSockaddr(ss));
    }
    return fd;
  }

  static std::string LocalOf(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return FormatSockaddr(ss);
  }

  void Dispatch(int fd, uint32_t events) {
    if (fd == sigfd_) {
      signalfd_siginfo si{};
      while (::read(sigfd_, &si, sizeof(si)) == sizeof(si)) {
        stop_ = true;
      }
      return;
    }
    for (int l : tcp_listeners_) {
      if (fd == l) {
        Accept(l);
        return;
      }
    }
    for (int u : udp_sockets_) {
      if (fd == u) {
        Datagrams(u);
        return;
      }
    }
    auto it = conns_.find(fd);
    if (it == conns_.end()) {
      return;
    }
    Connection& c = *it->second;
    bool open = true;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      open = ReadLines(c);
    }
    if (open && (events & EPOLLOUT)) {
      open = Flush(c);
    }
    if (!open) {
      Close(fd);
    }
  }

  void Accept(int listener) {
    for (;;) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
          std::fprintf(stderr, "xlb-echo: accept: %s\n", std::strerror(errno));
        }
        return;
      }
      ++accepted_;
      if (conns_.size() >= kMaxConnections) {
        ::close(fd);
        continue;
      }
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->prefix =
          "id=" + o_.id + " proto=tcp client=" + FormatSockaddr(peer) + " local=" + LocalOf(fd);
      if (o_.verbose) {
        std::fprintf(stderr, "%s\n", c->prefix.c_str());
      }
      c->out = c->prefix + "\n";
      Watch(fd, EPOLLIN | EPOLLRDHUP);
      Connection& ref = *c;
      conns_.emplace(fd, std::move(c));
      if (!Flush(ref)) {
        Close(fd);
      }
    }
  }

  // false once the connection is finished (EOF, error, or a client that does not read).
  bool ReadLines(Connection& c) {
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(c.fd, buf, sizeof(buf));
      if (n == 0) {
        Flush(c);
        return false;
      }
      if (n < 0) {
        if (errno == EAGAIN) {
          break;
        }
        if (errno == EINTR) {
          continue;
        }
        return false;
      }
      c.in.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = c.in.find('\n')) != std::string::npos || c.in.size() >= kMaxLine) {
        size_t take = nl == std::string::npos ? kMaxLine : nl;
        std::string line = c.in.substr(0, take);
        c.in.erase(0, nl == std::string::npos ? take : take + 1);
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        ++lines_;
        std::string& sink = c.bulk_left > 0 ? c.after_bulk : c.out;
        sink += c.prefix + " seq=" + std::to_string(++c.seq) + " echo=" + SanitizeEcho(line) + "\n";
        if (uint64_t n = BulkRequest(line); n > 0 && c.bulk_left == 0) {
          c.bulk_sent = 0;
          c.bulk_left = n;
        }
      }
      if (c.out.size() > kMaxPending || c.after_bulk.size() > kMaxPending) {
        return false;
      }
    }
    return Flush(c);
  }

  bool Flush(Connection& c) {
    bool blocked = false;
    while (!blocked && (!c.out.empty() || c.bulk_left > 0)) {
      while (!c.out.empty()) {
        ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) {
            continue;
          }
          if (errno == EAGAIN) {
            blocked = true;
            break;
          }
          return false;
        }
        c.out.erase(0, static_cast<size_t>(n));
      }
      while (!blocked && c.out.empty() && c.bulk_left > 0) {
        char chunk[65536];
        size_t len = static_cast<size_t>(std::min<uint64_t>(sizeof(chunk), c.bulk_left));
        for (size_t i = 0; i < len; ++i) {
          chunk[i] = BulkByte(c.bulk_sent + i);
        }
        ssize_t n = ::send(c.fd, chunk, len, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) {
            continue;
          }
          if (errno == EAGAIN) {
            blocked = true;
            break;
          }
          return false;
        }
        c.bulk_sent += static_cast<uint64_t>(n);
        c.bulk_left -= static_cast<uint64_t>(n);
        if (c.bulk_left == 0) {
          c.out.swap(c.after_bulk);
        }
      }
    }
    bool pending = !c.out.empty() || c.bulk_left > 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (pending ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.fd = c.fd;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    return true;
  }

  void Close(int fd) {
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_.erase(fd);
  }

  void Datagrams(int fd) {
    for (;;) {
      char buf[2048];
      sockaddr_storage peer{};
      iovec iov{buf, sizeof(buf)};
      alignas(cmsghdr) char control[256];
      msghdr msg{};
      msg.msg_name = &peer;
      msg.msg_namelen = sizeof(peer);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(fd, &msg, 0);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          std::fprintf(stderr, "xlb-echo: recvmsg: %s\n", std::strerror(errno));
        }
        return;
      }
      ++datagrams_;

      // The destination the client used becomes the reply's source and `local`.
      sockaddr_storage local{};
      socklen_t local_len = sizeof(local);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
      alignas(cmsghdr) char reply_control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
      size_t reply_control_len = 0;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        auto* out = reinterpret_cast<cmsghdr*>(reply_control);
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi{};
          std::memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
          reinterpret_cast<sockaddr_in*>(&local)->sin_addr = pi.ipi_addr;
          in_pktinfo reply{};
          reply.ipi_spec_dst = pi.ipi_addr;
          out->cmsg_level = IPPROTO_IP;
          out->cmsg_type = IP_PKTINFO;
          out->cmsg_len = CMSG_LEN(sizeof(reply));
          std::memcpy(CMSG_DATA(out), &reply, sizeof(reply));
          reply_control_len = CMSG_SPACE(sizeof(reply));
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo pi{};
          std::memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
          reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr = pi.ipi6_addr;
          in6_pktinfo reply{};
          reply.ipi6_addr = pi.ipi6_addr;
          out->cmsg_level = IPPROTO_IPV6;
          out->cmsg_type = IPV6_PKTINFO;
          out->cmsg_len = CMSG_LEN(sizeof(reply));
          std::memcpy(CMSG_DATA(out), &reply, sizeof(reply));
          reply_control_len = CMSG_SPACE(sizeof(reply));
        }
      }

      std::string payload(buf, static_cast<size_t>(n));
      size_t nl = payload.find_first_of("\r\n");
      if (nl != std::string::npos) {
        payload.resize(nl);
      }
      std::string line = "id=" + o_.id + " proto=udp client=" + FormatSockaddr(peer) +
                         " local=" + FormatSockaddr(local);
      if (!payload.empty()) {
        line += " echo=" + SanitizeEcho(payload);
      }
      if (o_.verbose) {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      line += "\n";
      iovec riov{line.data(), line.size()};
      msghdr reply{};
      reply.msg_name = &peer;
      reply.msg_namelen = msg.msg_namelen;
      reply.msg_iov = &riov;
      reply.msg_iovlen = 1;
      reply.msg_control = reply_control_len != 0 ? reply_control : nullptr;
      reply.msg_controllen = reply_control_len;
      if (::sendmsg(fd, &reply, MSG_DONTWAIT) < 0) {
        std::fprintf(stderr, "xlb-echo: sendmsg to %s: %s\n", FormatSockaddr(peer).c_str(),
                     std::strerror(errno));
      }
    }
  }

  Options o_;
  int epfd_ = -1;
  int sigfd_ = -1;
  bool stop_ = false;
  std::vector<int> tcp_listeners_;
  std::vector<int> udp_sockets_;
  std::unordered_map<int, std::unique_ptr<Connection>> conns_;
  uint64_t accepted_ = 0;
  uint64_t lines_ = 0;
  uint64_t datagrams_ = 0;
};

}  // namespace
}  // namespace xlb::testbed

int main(int argc, char** argv) {
  xlb::testbed::EchoServer server(xlb::testbed::ParseArgs(argc, argv));
  server.Listen();
  server.WritePidFile();
  return server.Run();
}
