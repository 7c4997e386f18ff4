#include "wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace xlb::testbed {

std::string FormatSockaddr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  return "?";
}

std::string HostPort(const std::string& addr, int port) {
  return addr.find(':') == std::string::npos ? addr + ":" + std::to_string(port)
                                             : "[" + addr + "]:" + std::to_string(port);
}

std::string HostOf(std::string_view addr_port) {
  if (!addr_port.empty() && addr_port.front() == '[') {
    size_t close = addr_port.find(']');
    return std::string(addr_port.substr(1, close == std::string_view::npos ? close : close - 1));
  }
  size_t colon = addr_port.rfind(':');
  if (colon != std::string_view::npos && addr_port.find(':') == colon) {
    return std::string(addr_port.substr(0, colon));
  }
  return std::string(addr_port);  // a bare IPv6 address, or no port at all
}

bool MakeSockaddr(const std::string& addr, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof(*ss));
  auto* sin = reinterpret_cast<sockaddr_in*>(ss);
  if (::inet_pton(AF_INET, addr.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (::inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string SanitizeEcho(std::string_view line) {
  std::string out(line.substr(0, 200));
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f) {
      c = '_';
    }
  }
  return out;
}

std::optional<ReplyFields> ParseReply(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.substr(0, 3) != "id=") {
    return std::nullopt;
  }
  ReplyFields fields;
  while (!line.empty()) {
    size_t space = line.find(' ');
    std::string_view field = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    if (field.empty()) {
      continue;
    }
    size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return std::nullopt;
    }
    fields.emplace(std::string(field.substr(0, eq)), std::string(field.substr(eq + 1)));
  }
  return fields;
}

}  // namespace xlb::testbed
