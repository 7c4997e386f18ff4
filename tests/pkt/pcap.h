// Classic libpcap files (not pcapng): LINKTYPE_ETHERNET, microsecond timestamps, so that
// tshark and tcpdump read what a test built or what the datapath emitted.
#ifndef XLB_TESTS_PKT_PCAP_H
#define XLB_TESTS_PKT_PCAP_H

#include <span>
#include <string>
#include <vector>

#include "builder.h"

namespace xlb::pkt {

// Writes `frames` to `path` (replacing it), frame i stamped i microseconds after the epoch
// so that files are reproducible. Throws std::runtime_error on I/O errors.
void WritePcap(const std::string& path, std::span<const Bytes> frames);

// Reads a classic pcap file of either byte order; throws std::runtime_error.
std::vector<Bytes> ReadPcap(const std::string& path);

}  // namespace xlb::pkt

#endif  // XLB_TESTS_PKT_PCAP_H
