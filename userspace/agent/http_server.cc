#include "userspace/agent/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xlb {
namespace {

constexpr auto kClientDeadline = std::chrono::seconds(2);
constexpr size_t kMaxRequest = 8192;  // a GET line and a few headers; more is not a scrape

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
};

Result<SocketAddress> Resolve(const std::string& address) {
  std::string host;
  uint16_t port = 0;
  std::string problem;
  if (!ParseListenAddress(address, host, port, problem)) {
    return Error{EINVAL, problem};
  }
  SocketAddress out;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
      inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return out;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) != 1) {
    return Error{EINVAL, address + ": not a numeric IPv4 or IPv6 address"};
  }
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(port);
  out.len = sizeof(sockaddr_in6);
  out.family = AF_INET6;
  return out;
}

void SetDeadline(int fd, std::chrono::milliseconds d) {
  timeval tv{static_cast<time_t>(d.count() / 1000),
             static_cast<suseconds_t>(d.count() % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

bool ParseListenAddress(std::string_view text, std::string& host, uint16_t& port,
                        std::string& problem) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    problem = std::string(text) + ": HOST:PORT expected (e.g. 127.0.0.1:9464, [::1]:9464)";
    return false;
  }
  std::string_view h = text.substr(0, colon);
  if (h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    problem = std::string(text) + ": an IPv6 address goes in brackets ([::1]:9464)";
    return false;
  }
  unsigned long p = 0;
  for (const char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) {
      p = 65536;
      break;
    }
    p = p * 10 + static_cast<unsigned long>(c - '0');
  }
  if (p > 65535) {
    problem = std::string(text) + ": port must be 0-65535";
    return false;
  }
  in6_addr scratch{};
  const std::string hs(h);
  if (inet_pton(AF_INET, hs.c_str(), &scratch) != 1 &&
      inet_pton(AF_INET6, hs.c_str(), &scratch) != 1) {
    problem = std::string(text) + ": not a numeric IPv4 or IPv6 address";
    return false;
  }
  host = hs;
  port = static_cast<uint16_t>(p);
  return true;
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address, Handler handler) {
  XLB_ASSIGN_OR_RETURN(auto addr, Resolve(address));
  UniqueFd fd(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Error::FromErrno(errno, "socket for " + address);
  }
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0) {
    return Error::FromErrno(errno, "bind " + address);
  }
  if (::listen(fd.get(), 16) != 0) {
    return Error::FromErrno(errno, "listen " + address);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  const uint16_t port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(fd), port, std::move(handler)));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Error::FromErrno(errno, "pipe2");
  }
  server->wake_read_.reset(pipe_fds[0]);
  server->wake_write_.reset(pipe_fds[1]);
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

HttpServer::HttpServer(UniqueFd listener, uint16_t port, Handler handler)
    : listener_(std::move(listener)), port_(port), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    const char byte = 0;
    (void)!::write(wake_write_.get(), &byte, 1);
    thread_.join();
  }
}

void HttpServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) {
      continue;  // a signal to the agent (SIGTERM) may land on this thread
    }
    if (n < 0 || (fds[1].revents & POLLIN) != 0) {
      return;
    }
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) {
      continue;  // the peer gave up already, or fds ran out: try the next one
    }
    SetDeadline(client.get(), kClientDeadline);
    Answer(client.get());
  }
}

void HttpServer::Answer(int fd) {
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequest) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;  // closed or past the deadline: nothing to answer
    }
    request.append(buf, static_cast<size_t>(n));
  }
  HttpResponse response;
  const size_t line_end = request.find("\r\n");
  const std::string line = request.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  bool head = false;
  if (line_end == std::string::npos || sp2 == std::string::npos) {
    response = {400, "text/plain; charset=utf-8", "bad request\n"};
  } else {
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    head = method == "HEAD";
    if (method != "GET" && !head) {
      response = {405, "text/plain; charset=utf-8", "GET or HEAD\n"};
    } else {
      response = handler_(path);
    }
  }
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    StatusText(response.status) + "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    "\r\nConnection: close\r\n";
  for (const auto& [name, value] : response.headers) {
    out += name + ": " + value + "\r\n";
  }
  out += "\r\n";
  if (!head) {
    out += response.body;
  }
  SendAll(fd, out);
}

Result<HttpReply> HttpGet(const std::string& address, const std::string& path,
                          std::chrono::milliseconds timeout) {
  XLB_ASSIGN_OR_RETURN(auto addr, Resolve(address));
  UniqueFd fd(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return Error::FromErrno(errno, "socket");
  }
  SetDeadline(fd.get(), timeout);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0) {
    return Error::FromErrno(errno, "connect " + address);
  }
  if (!SendAll(fd.get(),
               "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n\r\n")) {
    return Error::FromErrno(errno, "send to " + address);
  }
  std::string reply;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Error::FromErrno(errno, "read from " + address);
    }
    if (n == 0) {
      break;
    }
    reply.append(buf, static_cast<size_t>(n));
  }
  const size_t head_end = reply.find("\r\n\r\n");
  if (reply.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || reply.size() < 12) {
    return Error{EPROTO, "GET " + address + path + ": not an HTTP response"};
  }
  HttpReply out;
  out.status = std::atoi(reply.c_str() + 9);
  out.headers = reply.substr(0, head_end + 2);
  out.body = reply.substr(head_end + 4);
  return out;
}

}  // namespace xlb
