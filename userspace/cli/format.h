// Text forms shared by xlbctl's commands: addresses, ports, protocols, ages, percentages.
#ifndef XLB_USERSPACE_CLI_FORMAT_H
#define XLB_USERSPACE_CLI_FORMAT_H

#include <cstdint>
#include <string>

#include "maps/xlb_abi.h"

namespace xlb::cli {

std::string AddrText(const __be32 addr[4], uint8_t family);  // "198.18.0.1", "2001:db8::1"
// "198.18.0.1:80", "[2001:db8::1]:80"; `port` in host order.
std::string HostPort(const __be32 addr[4], uint8_t family, uint16_t port);
std::string ProtoName(uint8_t proto);    // "tcp", "udp", else the number
std::string CtStateName(uint8_t state);  // "syn_sent", "established", "closing"
std::string AgeText(double seconds);     // "0.4s", "12s", "3m07s", "2h03m"
std::string Percent(double pct);         // "70.12 %"
std::string Hex32(uint32_t v);           // "0x786c6231"
std::string EncapName(uint8_t encap);    // "vxlan", "gue"

}  // namespace xlb::cli

#endif  // XLB_USERSPACE_CLI_FORMAT_H
