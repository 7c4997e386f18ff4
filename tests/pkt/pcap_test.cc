#include "pcap.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "builder.h"
#include "temp_dir.h"

namespace xlb::pkt {
namespace {

using ::testing::ElementsAre;

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(Pcap, ClassicHeaderEthernetMicroseconds) {
  const TempDir dir;
  const std::string path = dir.File("one.pcap");
  const std::vector<Bytes> frames = {Bytes{1, 2, 3}};
  WritePcap(path, frames);
  const std::vector<uint8_t> file = ReadFile(path);
  ASSERT_EQ(file.size(), 24u + 16 + 3);
  // Little-endian magic a1b2c3d4 (microseconds), version 2.4, LINKTYPE_ETHERNET.
  EXPECT_THAT(std::vector<uint8_t>(file.begin(), file.begin() + 8),
              ElementsAre(0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0));
  EXPECT_THAT(std::vector<uint8_t>(file.begin() + 20, file.begin() + 24), ElementsAre(1, 0, 0, 0));
  // Record: ts 0.000000, incl_len = orig_len = 3.
  EXPECT_THAT(std::vector<uint8_t>(file.begin() + 24, file.end()),
              ElementsAre(0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3));
}

TEST(Pcap, RoundTrip) {
  const TempDir dir;
  const std::string path = dir.File("frames.pcap");
  std::vector<Bytes> frames;
  frames.push_back(Packet()
                       .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
                       .ipv4("198.18.0.1", "198.18.1.10")
                       .tcp(40000, 80, kTcpSyn)
                       .build());
  frames.push_back(Bytes{});  // an empty record is legal
  frames.push_back(Bytes(9000, 0xab));
  WritePcap(path, frames);
  EXPECT_EQ(ReadPcap(path), frames);
  // Timestamps are i microseconds: record 1 at 0.000001.
  const std::vector<uint8_t> file = ReadFile(path);
  const size_t rec1 = 24 + 16 + frames[0].size();
  EXPECT_THAT(std::vector<uint8_t>(file.begin() + rec1, file.begin() + rec1 + 8),
              ElementsAre(0, 0, 0, 0, 1, 0, 0, 0));
}

TEST(Pcap, Errors) {
  const TempDir dir;
  EXPECT_THROW(WritePcap(dir.File("no/such/dir.pcap"), std::vector<Bytes>{}), std::runtime_error);
  EXPECT_THROW(ReadPcap(dir.File("missing.pcap")), std::runtime_error);
  std::ofstream(dir.File("junk.pcap")) << "this is not a pcap file at all";
  EXPECT_THROW(ReadPcap(dir.File("junk.pcap")), std::runtime_error);
}

TEST(Pcap, TempDirIsRemoved) {
  std::string path;
  {
    const TempDir dir;
    path = dir.path();
    WritePcap(dir.File("x.pcap"), std::vector<Bytes>{Bytes{1}});
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace xlb::pkt
