// A second, independent opinion on a pcap: tshark (Wireshark 4.0) with checksum validation
// on for IPv4, TCP and UDP (ICMP and ICMPv6 are always checked), no name resolution, a
// private empty configuration (WIRESHARK_CONFIG_DIR) so the caller's preferences cannot
// change the verdict, and every dissector above L4 disabled so that application
// dissectors (DNS on port 53, ...) do not report our test payloads as malformed.
//
//   std::vector<TsharkFrame> t = TsharkDecode(dir.File("out.pcap"));  // or
//   std::vector<TsharkFrame> t = TsharkDecodeFrames(frames);
//   EXPECT_EQ(CountBadChecksums(t), 0u);
//   EXPECT_EQ(t[0].Checksum("tcp"), "Good");
//   EXPECT_EQ(t[0].ip_dst[0], "198.18.2.7");
//
// What tshark 4.0 prints for a *.checksum.status field, in -T fields and -T json alike, is
// the number: 0 Bad, 1 Good, 2 Unverified, 3 Not present, 4 Illegal (e.g. a zero UDP
// checksum over IPv6). A bad checksum also raises an expert item of group PI_CHECKSUM,
// "Bad checksum [should be 0x....]". Inside an ICMP error tshark checks the quoted IP
// header the same way, but computes a quoted TCP checksum over whatever part of the
// segment was quoted and calls it Bad when the quote is truncated; such quoted-L4 verdicts
// are kept apart (TsharkChecksumProblem::quoted_l4).
#ifndef XLB_TESTS_PKT_TSHARK_H
#define XLB_TESTS_PKT_TSHARK_H

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xlb::pkt {

// Where something sits in tshark's tree: the protocol layers above it joined by '/', e.g.
// "ip", "tcp", "icmp/ip" (the IPv4 header an ICMP error quotes), "icmpv6/udp".
struct TsharkChecksum {
  std::string layer;
  std::string field;   // e.g. "tcp.checksum.status"
  std::string status;  // "Bad", "Good", "Unverified", "Not present", "Illegal"
};

struct TsharkExpert {
  std::string layer;
  std::string message;    // e.g. "Bad checksum [should be 0x8622]"
  uint32_t severity = 0;  // PI_CHAT 0x200000, PI_NOTE 0x400000, PI_WARN 0x600000, PI_ERROR 0x800000
  uint32_t group = 0;     // PI_CHECKSUM 0x1000000, PI_MALFORMED 0x7000000, PI_PROTOCOL 0x9000000
};

struct TsharkChecksumProblem {
  std::string layer;
  std::string field;       // the status field; empty when only an expert item reported it
  std::string status;      // "Bad" or "Illegal"; empty when only an expert item reported it
  std::string message;     // the expert message, when there was one
  bool quoted_l4 = false;  // a TCP/UDP/ICMP checksum inside an ICMP error's quote
};

struct TsharkFrame {
  int number = 0;         // 1-based, as tshark counts
  std::string protocols;  // frame.protocols: "eth:ethertype:vlan:ethertype:ip:tcp:data"
  // Every header of the kind, outermost first; an ICMP error's quote comes after the
  // header that carries the error.
  std::vector<std::string> ip_src;
  std::vector<std::string> ip_dst;
  std::vector<std::string> ipv6_src;
  std::vector<std::string> ipv6_dst;
  std::vector<uint16_t> tcp_sport;
  std::vector<uint16_t> tcp_dport;
  std::vector<uint16_t> udp_sport;
  std::vector<uint16_t> udp_dport;
  std::vector<TsharkChecksum> checksums;  // every *.checksum.status, in tree order
  std::vector<TsharkChecksumProblem> checksum_problems;
  std::vector<TsharkExpert> experts;   // every expert item
  std::vector<std::string> malformed;  // messages of PI_MALFORMED expert items

  // The status of the first checksum at `layer` ("tcp", "icmp/ip"); "" when none.
  std::string Checksum(std::string_view layer) const;
};

struct TsharkOptions {
  // Dissectors to enable on top of frame, eth, ethertype, vlan, ieee8021ad, ip, ipv6 (and
  // its extension headers), tcp, udp, icmp, icmpv6 and data, e.g. "vxlan", "geneve".
  std::vector<std::string> extra_protocols{};
  // More arguments before the capture, e.g. {"-d", "udp.port==6080,ip"} (decode as) or
  // {"-o", "udp.ignore_ipv6_zero_checksum:TRUE"}.
  std::vector<std::string> extra_args{};
  std::string tshark = "/usr/bin/tshark";
};

// Runs tshark on a pcap file and returns one entry per frame. Throws std::runtime_error
// when tshark cannot run or fails (with its stderr).
std::vector<TsharkFrame> TsharkDecode(const std::string& pcap_path, const TsharkOptions& opts = {});

// The same for frames in memory: writes them to a pcap in a fresh temporary directory,
// runs tshark, and removes the directory.
std::vector<TsharkFrame> TsharkDecodeFrames(std::span<const std::vector<uint8_t>> frames,
                                            const TsharkOptions& opts = {});

// Checksum problems tshark found, not counting the TCP/UDP/ICMP checksums inside ICMP
// error quotes (see above); quoted IP header checksums do count.
size_t CountBadChecksums(const TsharkFrame& frame);
size_t CountBadChecksums(const std::vector<TsharkFrame>& frames);

}  // namespace xlb::pkt

#endif  // XLB_TESTS_PKT_TSHARK_H
