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

IpAddress IpAddress::Masked(uint8_t length) const {
  IpAddress out = *this;
  for (unsigned i = length; i < out.bytes_.size() * 8; ++i) {
    out.bytes_[i / 8] &= static_cast<uint8_t>(~(1u << (7 - i % 8)));
  }
  return out;
}

std::optional<IpPrefix> IpPrefix::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return std::nullopt;
  }
  const std::optional<IpAddress> network = IpAddress::Parse(text.substr(0, slash));
  const std::string_view digits = text.substr(slash + 1);
  if (!network || digits.empty() || digits.size() > 3 ||
      (digits.size() > 1 && digits.front() == '0')) {
    return std::nullopt;
  }
  unsigned length = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    length = length * 10 + static_cast<unsigned>(c - '0');
  }
  const unsigned bits = network->family() == IpFamily::kIPv4 ? 32 : 128;
  if (length > bits) {
    return std::nullopt;
  }
  IpPrefix prefix{*network, static_cast<uint8_t>(length)};
  if (network->Masked(prefix.length) != *network) {
    return std::nullopt;  // host bits set
  }
  return prefix;
}

std::string IpPrefix::ToString() const {
  return network.ToString() + "/" + std::to_string(length);
}

bool IpPrefix::Contains(const IpAddress& address) const {
  if (address.family() != network.family()) {
    return false;
  }
  const auto& a = address.bytes();
  const auto& n = network.bytes();
  for (unsigned i = 0; i < length; ++i) {
    const int shift = 7 - static_cast<int>(i % 8);
    if (((a[i / 8] >> shift) & 1) != ((n[i / 8] >> shift) & 1)) {
      return false;
    }
  }
  return true;
}

}  // namespace xlb
