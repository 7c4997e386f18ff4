#include "userspace/model/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace xlb {

std::string_view ToString(IpFamily family) {
  return family == IpFamily::kIPv4 ? "IPv4" : "IPv6";
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  // inet_pton wants a NUL-terminated string; anything longer than INET6_ADDRSTRLEN is no
  // address anyway.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  IpAddress a;
  if (inet_pton(AF_INET, buf, a.bytes_.data()) == 1) {
    a.family_ = IpFamily::kIPv4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes_.data()) == 1) {
    a.family_ = IpFamily::kIPv6;
    return a;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family_ == IpFamily::kIPv4 ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

void IpAddress::ToAbiWords(uint32_t words[4]) const {
  std::memcpy(words, bytes_.data(), 16);
}

}  // namespace xlb
