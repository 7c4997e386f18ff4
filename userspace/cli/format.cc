#include "userspace/cli/format.h"

#include <arpa/inet.h>

#include <cstdio>

namespace xlb::cli {

std::string AddrText(const __be32 addr[4], uint8_t family) {
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family == XLB_FAMILY_IPV6 ? AF_INET6 : AF_INET, addr, text, sizeof(text)) ==
      nullptr) {
    return "?";
  }
  return text;
}

std::string HostPort(const __be32 addr[4], uint8_t family, uint16_t port) {
  const std::string a = AddrText(addr, family);
  return (family == XLB_FAMILY_IPV6 ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

std::string ProtoName(uint8_t proto) {
  switch (proto) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    default:
      return std::to_string(proto);
  }
}

std::string CtStateName(uint8_t state) {
  switch (state) {
    case XLB_CT_SYN_SENT:
      return "syn_sent";
    case XLB_CT_ESTABLISHED:
      return "established";
    case XLB_CT_CLOSING:
      return "closing";
    default:
      return "state " + std::to_string(state);
  }
}

std::string AgeText(double s) {
  char buf[32];
  if (s < 10) {
    std::snprintf(buf, sizeof(buf), "%.1fs", s);
  } else if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.0fs", s);
  } else if (s < 3600) {
    const auto t = static_cast<uint64_t>(s);
    std::snprintf(buf, sizeof(buf), "%llum%02llus", static_cast<unsigned long long>(t / 60),
                  static_cast<unsigned long long>(t % 60));
  } else {
    const auto t = static_cast<uint64_t>(s) / 60;
    std::snprintf(buf, sizeof(buf), "%lluh%02llum", static_cast<unsigned long long>(t / 60),
                  static_cast<unsigned long long>(t % 60));
  }
  return buf;
}

std::string Percent(double pct) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %%", pct);
  return buf;
}

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::string EncapName(uint8_t encap) {
  switch (encap) {
    case XLB_ENCAP_VXLAN:
      return "vxlan";
    case XLB_ENCAP_GUE:
      return "gue";
    case 0:
      return "none";
    default:
      return std::to_string(encap);
  }
}

}  // namespace xlb::cli
