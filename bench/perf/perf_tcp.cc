#include "perf_tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loader/fd.h"

namespace xlb::perf {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMessage = 64;

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

bool ReadFull(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool WriteFull(int fd, const char* buf, size_t n) {
  return ::write(fd, buf, n) == static_cast<ssize_t>(n);
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

sockaddr_in Addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

// Answers every 64-byte request with 64 bytes until the peer closes, one connection at a
// time, on this thread: the client never has two open, and a thread per connection would put
// a thread's creation into every connection's latency.
void Serve(int listener, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    UniqueFd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid()) continue;
    const int one = 1;
    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buf[kMessage];
    while (ReadFull(c.get(), buf, kMessage) && WriteFull(c.get(), buf, kMessage)) {
    }
  }
}

}  // namespace

TcpFigures RunTcp(const ModeNet& net, double seconds) {
  std::atomic<bool> stop{false};
  UniqueFd listener;
  RunIn(net.sink(), -1, [&] {
    listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const sockaddr_in any = Addr("0.0.0.0", PERF_BACKEND_PORT);
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0 ||
        ::listen(listener.get(), 1024) != 0) {
      Fail("listen on the sink's port " + std::to_string(PERF_BACKEND_PORT));
    }
  });
  // The socket lives in the sink's namespace whichever thread uses it.
  std::thread server([&] { Serve(listener.get(), stop); });

  TcpFigures f;
  std::exception_ptr failure;
  try {
    RunIn(net.gen(), 0, [&] {
      const sockaddr_in vip = Addr(kVip, kTcpPort);
      char buf[kMessage] = {};
      std::vector<double> connect_us, request_us;
      const auto begin = Clock::now();
      const auto until = begin + std::chrono::duration<double>(seconds);
      while (Clock::now() < until) {
        const auto t0 = Clock::now();
        UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&vip), sizeof(vip)) != 0) {
          Fail("connect to the VIP");
        }
        if (!WriteFull(s.get(), buf, kMessage) || !ReadFull(s.get(), buf, kMessage)) {
          Fail("request on a new connection");
        }
        connect_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        // RST instead of FIN: no TIME_WAIT, so the client's ports never run out
        const linger abort{1, 0};
        ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
      }
      f.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
      f.connections = connect_us.size();

      UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      const int one = 1;
      ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&vip), sizeof(vip)) != 0) {
        Fail("connect to the VIP");
      }
      const auto rr_until = Clock::now() + std::chrono::duration<double>(seconds);
      while (Clock::now() < rr_until) {
        const auto t0 = Clock::now();
        if (!WriteFull(s.get(), buf, kMessage) || !ReadFull(s.get(), buf, kMessage)) {
          Fail("request on a kept connection");
        }
        request_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
      f.requests = request_us.size();
      f.connect_p50_us = Percentile(connect_us, 0.50);
      f.connect_p99_us = Percentile(connect_us, 0.99);
      f.connect_max_us = connect_us.empty() ? 0 : connect_us.back();  // sorted by Percentile
      f.request_p50_us = Percentile(request_us, 0.50);
      f.request_p99_us = Percentile(request_us, 0.99);
    });
  } catch (...) {
    failure = std::current_exception();
  }
  stop = true;
  server.join();
  if (failure) std::rethrow_exception(failure);
  return f;
}

}  // namespace xlb::perf
