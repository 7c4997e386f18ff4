#include "pcap.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace xlb::pkt {
namespace {

constexpr uint32_t kMagicMicros = 0xa1b2c3d4;
constexpr uint32_t kMagicMicrosSwapped = 0xd4c3b2a1;
constexpr uint32_t kLinktypeEthernet = 1;
constexpr uint32_t kSnaplen = 262144;

// The file is in the writer's byte order; we always write little-endian.
void PutLe(std::string& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>(v >> (8 * i)));
  }
}

uint32_t GetU32(const std::string& in, size_t off, bool swapped) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const auto byte = static_cast<uint8_t>(in[off + i]);
    v |= uint32_t{byte} << (swapped ? 8 * (3 - i) : 8 * i);
  }
  return v;
}

}  // namespace

void WritePcap(const std::string& path, std::span<const Bytes> frames) {
  std::string out;
  PutLe(out, kMagicMicros, 4);
  PutLe(out, 2, 2);  // version 2.4
  PutLe(out, 4, 2);
  PutLe(out, 0, 4);  // thiszone
  PutLe(out, 0, 4);  // sigfigs
  PutLe(out, kSnaplen, 4);
  PutLe(out, kLinktypeEthernet, 4);
  for (size_t i = 0; i < frames.size(); ++i) {
    const Bytes& f = frames[i];
    if (f.size() > kSnaplen) {
      throw std::runtime_error("frame larger than the pcap snaplen");
    }
    PutLe(out, static_cast<uint32_t>(i / 1000000), 4);  // ts_sec
    PutLe(out, static_cast<uint32_t>(i % 1000000), 4);  // ts_usec
    PutLe(out, static_cast<uint32_t>(f.size()), 4);     // incl_len
    PutLe(out, static_cast<uint32_t>(f.size()), 4);     // orig_len
    out.append(f.begin(), f.end());
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(out.data(), static_cast<std::streamsize>(out.size()));
  file.close();
  if (!file) {
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  }
}

std::vector<Bytes> ReadPcap(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  }
  const std::string in((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (in.size() < 24) {
    throw std::runtime_error(path + ": no pcap header");
  }
  const uint32_t magic = GetU32(in, 0, false);
  if (magic != kMagicMicros && magic != kMagicMicrosSwapped) {
    throw std::runtime_error(path + ": not a microsecond pcap file");
  }
  const bool swapped = magic == kMagicMicrosSwapped;
  if (GetU32(in, 20, swapped) != kLinktypeEthernet) {
    throw std::runtime_error(path + ": not LINKTYPE_ETHERNET");
  }
  std::vector<Bytes> frames;
  size_t off = 24;
  while (off < in.size()) {
    if (off + 16 > in.size()) {
      throw std::runtime_error(path + ": truncated record header");
    }
    const uint32_t incl = GetU32(in, off + 8, swapped);
    off += 16;
    if (incl > in.size() - off) {
      throw std::runtime_error(path + ": truncated record");
    }
    frames.emplace_back(in.begin() + static_cast<ptrdiff_t>(off),
                        in.begin() + static_cast<ptrdiff_t>(off + incl));
    off += incl;
  }
  return frames;
}

}  // namespace xlb::pkt
