// An IPv4 or IPv6 address as the model carries it: a value type that parses the textual forms
// Kubernetes writes (dotted quad, RFC 5952 IPv6) and writes the ABI's four-word form.
#ifndef XLB_USERSPACE_MODEL_IP_ADDRESS_H
#define XLB_USERSPACE_MODEL_IP_ADDRESS_H

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xlb {

// The values are XLB_FAMILY_IPV4 and XLB_FAMILY_IPV6 of maps/xlb_abi.h.
enum class IpFamily : uint8_t { kIPv4 = 4, kIPv6 = 6 };

std::string_view ToString(IpFamily family);  // "IPv4", "IPv6" (EndpointSlice addressType)

class IpAddress {
 public:
  // Only the canonical textual forms: no zone ("%eth0"), no prefix length, no IPv4 with
  // leading zeros.
  static std::optional<IpAddress> Parse(std::string_view text);

  IpFamily family() const { return family_; }
  // Network order; an IPv4 address uses the first 4 bytes and the rest are zero.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }

  // "198.18.0.1", "2001:db8::1".
  std::string ToString() const;

  // The ABI's address form (xlb_service_key.addr, xlb_backend.addr): four big-endian words,
  // an IPv4 address in word 0 and words 1..3 zero. `words` are written in network order.
  void ToAbiWords(uint32_t words[4]) const;

  // This address with every bit beyond the first `length` cleared: the network of
  // ADDRESS/LENGTH.
  IpAddress Masked(uint8_t length) const;

  auto operator<=>(const IpAddress&) const = default;

 private:
  IpFamily family_ = IpFamily::kIPv4;
  std::array<uint8_t, 16> bytes_{};
};

// An address range in CIDR form ("198.18.0.0/15", "2001:db8::/32"), as
// spec.loadBalancerSourceRanges lists them. The address is the network: bits beyond `length`
// are zero.
struct IpPrefix {
  IpAddress network;
  uint8_t length = 0;  // 0..32 (IPv4), 0..128 (IPv6)

  // "ADDRESS/LENGTH"; nullopt for anything else, and for host bits set ("198.18.0.1/15"), which
  // Kubernetes' validation rejects too.
  static std::optional<IpPrefix> Parse(std::string_view text);
  std::string ToString() const;
  bool Contains(const IpAddress& address) const;

  auto operator<=>(const IpPrefix&) const = default;
};

}  // namespace xlb

#endif  // XLB_USERSPACE_MODEL_IP_ADDRESS_H
