// The one-line reply format that xlb-echo writes and xlb-probe reads, and socket address
// helpers both share. A reply is space-separated key=value fields on one line:
//
//   id=podA1 proto=tcp client=198.18.0.2:40000 local=198.18.10.11:8080
//   id=podA1 proto=tcp client=[2001:db8::2]:40000 local=[2001:db8:10::11]:8080 seq=3 echo=hold-3
//
// `client` is the peer address the backend saw (the client's real address once xlb is in
// the path), `local` the address it was reached on (the backend's own, after DNAT).
// `echo` comes last and carries the request line with spaces and control bytes replaced.
#ifndef XLB_TESTS_TESTBED_WIRE_H
#define XLB_TESTS_TESTBED_WIRE_H

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace xlb::testbed {

// "198.18.0.2:40000" or "[2001:db8::2]:40000"; "?" for other families.
std::string FormatSockaddr(const sockaddr_storage& ss);

// "198.18.0.2:8080", "[2001:db8::2]:8080": an address literal and a port as FormatSockaddr
// writes them.
std::string HostPort(const std::string& addr, int port);

// The address part alone: "198.18.0.2", "2001:db8::2" (of a FormatSockaddr string too).
std::string HostOf(std::string_view addr_port);

// Parses ADDR (IPv4 or IPv6 literal, no brackets) and PORT into ss; false if ADDR is not
// a literal address.
bool MakeSockaddr(const std::string& addr, uint16_t port, sockaddr_storage* ss, socklen_t* len);

// Keeps a request line safe to put in `echo=`: at most 200 bytes, no spaces or controls.
std::string SanitizeEcho(std::string_view line);

// Byte i of a bulk transfer ("bulk N"): a period (23) that no segment size divides, so a
// segment delivered at the wrong offset shows.
inline char BulkByte(uint64_t i) {
  return static_cast<char>('a' + i % 23);
}

using ReplyFields = std::map<std::string, std::string, std::less<>>;
// nullopt unless the line starts with "id=" and every field is key=value.
std::optional<ReplyFields> ParseReply(std::string_view line);

}  // namespace xlb::testbed

#endif  // XLB_TESTS_TESTBED_WIRE_H
