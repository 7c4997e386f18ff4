// The flow hash of maps/xlb_hash.h, which the datapath and userspace share, checked against
// an independent MurmurHash3_x86_32 written from the published algorithm, and for how evenly
// it spreads flows over Maglev slots.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "maps/xlb_abi.h"
#include "maps/xlb_hash.h"
#include "userspace/planner/flow_slot.h"

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

uint32_t Rotl32(uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

// MurmurHash3_x86_32 (Austin Appleby, public domain), byte by byte: little-endian blocks,
// tail, length, fmix32.
uint32_t Murmur3X86_32(const std::vector<uint8_t>& data, uint32_t seed) {
  constexpr uint32_t c1 = 0xcc9e2d51;
  constexpr uint32_t c2 = 0x1b873593;
  const size_t nblocks = data.size() / 4;
  uint32_t h1 = seed;
  for (size_t i = 0; i < nblocks; ++i) {
    const uint8_t* b = &data[i * 4];
    uint32_t k1 =
        uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
    k1 *= c1;
    k1 = Rotl32(k1, 15);
    k1 *= c2;
    h1 ^= k1;
    h1 = Rotl32(h1, 13);
    h1 = h1 * 5 + 0xe6546b64;
  }
  const uint8_t* tail = data.data() + nblocks * 4;
  uint32_t k1 = 0;
  switch (data.size() & 3) {
    case 3:
      k1 ^= uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      k1 ^= uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      k1 ^= tail[0];
      k1 *= c1;
      k1 = Rotl32(k1, 15);
      k1 *= c2;
      h1 ^= k1;
  }
  h1 ^= static_cast<uint32_t>(data.size());
  h1 ^= h1 >> 16;
  h1 *= 0x85ebca6b;
  h1 ^= h1 >> 13;
  h1 *= 0xc2b2ae35;
  h1 ^= h1 >> 16;
  return h1;
}

std::vector<uint8_t> Bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

// The words the header mixes, as the little-endian bytes MurmurHash3 reads its blocks from.
class Words {
 public:
  void Add(uint32_t w) {
    for (int i = 0; i < 4; ++i) {
      bytes_.push_back(static_cast<uint8_t>(w >> (8 * i)));
    }
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

uint32_t PortsWord(const xlb_ct_key& k) {
  return uint32_t{k.sport} << 16 | k.dport;
}

uint32_t ReferenceFlowHash(const xlb_ct_key& k, uint32_t seed) {
  Words w;
  if (k.family == XLB_FAMILY_IPV6) {
    for (int i = 0; i < 4; ++i) {
      w.Add(k.saddr[i]);
      w.Add(k.daddr[i]);
    }
  } else {
    w.Add(k.saddr[0]);
    w.Add(k.daddr[0]);
  }
  w.Add(PortsWord(k));
  w.Add(k.proto);
  return Murmur3X86_32(w.bytes(), seed);
}

uint32_t ReferenceClientHash(const xlb_ct_key& k, uint32_t seed) {
  Words w;
  const int words = k.family == XLB_FAMILY_IPV6 ? 4 : 1;
  for (int i = 0; i < words; ++i) {
    w.Add(k.saddr[i]);
  }
  return Murmur3X86_32(w.bytes(), seed);
}

// Raw mt19937 output is specified by the standard (distributions are not), so these tuples
// are the same with every standard library.
class TupleSource {
 public:
  explicit TupleSource(uint32_t seed) : rng_(seed) {}
  uint32_t Next() { return static_cast<uint32_t>(rng_()); }

  xlb_ct_key Flow(uint8_t family) {
    xlb_ct_key k{};
    k.family = family;
    const int words = family == XLB_FAMILY_IPV6 ? 4 : 1;
    for (int i = 0; i < words; ++i) {
      k.saddr[i] = Next();
      k.daddr[i] = Next();
    }
    const uint32_t ports = Next();
    k.sport = static_cast<uint16_t>(ports >> 16);
    k.dport = static_cast<uint16_t>(ports);
    k.proto = (Next() & 1) ? kTcp : kUdp;
    return k;
  }

 private:
  std::mt19937 rng_;
};

TEST(Murmur3Reference, PublishedVectors) {
  EXPECT_EQ(Murmur3X86_32({}, 0), 0u);
  EXPECT_EQ(Murmur3X86_32({}, 1), 0x514E28B7u);
  EXPECT_EQ(Murmur3X86_32({}, 0xffffffff), 0x81F16F39u);
  EXPECT_EQ(Murmur3X86_32({0xff, 0xff, 0xff, 0xff}, 0), 0x76293B50u);
  EXPECT_EQ(Murmur3X86_32({0x21, 0x43, 0x65, 0x87}, 0), 0xF55B516Bu);
  EXPECT_EQ(Murmur3X86_32({0x21, 0x43, 0x65, 0x87}, 0x5082EDEE), 0x2362F9DEu);
  EXPECT_EQ(Murmur3X86_32({0x21, 0x43, 0x65}, 0), 0x7E4A8634u);
  EXPECT_EQ(Murmur3X86_32({0x21, 0x43}, 0), 0xA0F7B07Au);
  EXPECT_EQ(Murmur3X86_32({0x21}, 0), 0x72661CF4u);
  EXPECT_EQ(Murmur3X86_32({0, 0, 0, 0}, 0), 0x2362F9DEu);
  EXPECT_EQ(Murmur3X86_32(Bytes("aaaa"), 0x9747b28c), 0x5A97808Au);
  EXPECT_EQ(Murmur3X86_32(Bytes("abc"), 0x9747b28c), 0xC84A62DDu);
  EXPECT_EQ(Murmur3X86_32(Bytes("Hello, world!"), 0x9747b28c), 0x24884CBAu);
  EXPECT_EQ(Murmur3X86_32(Bytes("The quick brown fox jumps over the lazy dog"), 0x9747b28c),
            0x2FA826CDu);
}

TEST(FlowHash, Ipv4IsMurmur3OfSixteenBytes) {
  TupleSource src(1);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t seed = i < 10 ? 0x786c6231U : src.Next();
    xlb_ct_key k = src.Flow(XLB_FAMILY_IPV4);
    ASSERT_EQ(xlb_hash_flow(&k, seed), ReferenceFlowHash(k, seed)) << "tuple " << i;
    // Words 1..3 of an IPv4 address are zero by convention, but the hash must not read them.
    const uint32_t before = xlb_hash_flow(&k, seed);
    k.saddr[3] = src.Next();
    k.daddr[1] = src.Next();
    ASSERT_EQ(xlb_hash_flow(&k, seed), before);
  }
}

TEST(FlowHash, Ipv6IsMurmur3OfFortyBytes) {
  TupleSource src(2);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t seed = src.Next();
    const xlb_ct_key k = src.Flow(XLB_FAMILY_IPV6);
    ASSERT_EQ(xlb_hash_flow(&k, seed), ReferenceFlowHash(k, seed)) << "tuple " << i;
  }
}

TEST(FlowHash, KnownIpv4Tuple) {
  // 198.18.0.1:40000 -> 198.18.0.100:80 TCP, fields in network order as the datapath sees
  // them on a little-endian host.
  xlb_ct_key k{};
  k.family = XLB_FAMILY_IPV4;
  k.saddr[0] = 0x010012c6;
  k.daddr[0] = 0x640012c6;
  k.sport = 0x409c;
  k.dport = 0x5000;
  k.proto = kTcp;
  Words w;
  w.Add(0x010012c6);
  w.Add(0x640012c6);
  w.Add(0x409c5000);
  w.Add(6);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x64, 0x00,
                                             0x50, 0x9c, 0x40, 0x06, 0x00, 0x00, 0x00}));
  EXPECT_EQ(xlb_hash_flow(&k, 0x786c6231U), Murmur3X86_32(w.bytes(), 0x786c6231U));
}

TEST(FlowHash, EveryFieldMatters) {
  TupleSource src(3);
  for (const uint8_t family : {XLB_FAMILY_IPV4, XLB_FAMILY_IPV6}) {
    const xlb_ct_key base = src.Flow(family);
    const uint32_t h = xlb_hash_flow(&base, 7);
    const int words = family == XLB_FAMILY_IPV6 ? 4 : 1;
    for (int i = 0; i < words; ++i) {
      xlb_ct_key k = base;
      k.saddr[i] ^= 1;
      EXPECT_NE(xlb_hash_flow(&k, 7), h);
      k = base;
      k.daddr[i] ^= 0x80000000;
      EXPECT_NE(xlb_hash_flow(&k, 7), h);
    }
    xlb_ct_key k = base;
    k.sport ^= 1;
    EXPECT_NE(xlb_hash_flow(&k, 7), h);
    k = base;
    k.dport ^= 1;
    EXPECT_NE(xlb_hash_flow(&k, 7), h);
    k = base;
    k.proto = base.proto == kTcp ? kUdp : kTcp;
    EXPECT_NE(xlb_hash_flow(&k, 7), h);
    EXPECT_NE(xlb_hash_flow(&base, 8), h);
  }
}

TEST(ClientHash, IsMurmur3OfSourceWords) {
  TupleSource src(4);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t seed = src.Next();
    const uint8_t family = (i & 1) ? XLB_FAMILY_IPV6 : XLB_FAMILY_IPV4;
    xlb_ct_key k = src.Flow(family);
    ASSERT_EQ(xlb_hash_client(&k, seed), ReferenceClientHash(k, seed)) << "tuple " << i;
    // Only the client address counts: ClientIP affinity survives a new source port.
    const uint32_t before = xlb_hash_client(&k, seed);
    k.sport ^= 0x1234;
    k.dport ^= 0x4321;
    k.daddr[0] ^= 0xffff;
    k.proto = k.proto == kTcp ? kUdp : kTcp;
    ASSERT_EQ(xlb_hash_client(&k, seed), before);
  }
}

TEST(MaglevSlot, IsHashModuloTableSize) {
  TupleSource src(5);
  for (int i = 0; i < 10000; ++i) {
    const uint32_t seed = src.Next();
    const uint32_t size = (i & 1) ? XLB_MAGLEV_DEFAULT_SIZE : 65537;
    const xlb_ct_key k = src.Flow((i & 2) ? XLB_FAMILY_IPV6 : XLB_FAMILY_IPV4);
    ASSERT_EQ(xlb::MaglevSlot(k, false, seed, size), ReferenceFlowHash(k, seed) % size);
    ASSERT_EQ(xlb::MaglevSlot(k, true, seed, size), ReferenceClientHash(k, seed) % size);
  }
}

// Pearson's chi-square of bucket counts against a uniform spread. With k - 1 degrees of
// freedom it is close to normal with mean k - 1 and variance 2(k - 1); a bound of 8 standard
// deviations either side fails a fair hash with probability below 1e-14, yet catches a hash
// that leaves buckets empty (too high) or that merely counts its input (too low).
void ExpectUniform(const std::vector<uint64_t>& buckets, uint64_t samples) {
  const double k = static_cast<double>(buckets.size());
  const double expected = static_cast<double>(samples) / k;
  double chi2 = 0;
  for (const uint64_t observed : buckets) {
    const double d = static_cast<double>(observed) - expected;
    chi2 += d * d / expected;
  }
  const double dof = k - 1;
  const double bound = 8 * std::sqrt(2 * dof);
  EXPECT_LT(chi2, dof + bound) << "buckets " << buckets.size() << ", samples " << samples;
  EXPECT_GT(chi2, dof - bound) << "buckets " << buckets.size() << ", samples " << samples;
}

TEST(MaglevSlot, RandomTuplesSpreadEvenly) {
  constexpr uint32_t kSize = XLB_MAGLEV_DEFAULT_SIZE;
  constexpr uint64_t kSamples = uint64_t{kSize} * 64;
  for (const uint8_t family : {XLB_FAMILY_IPV4, XLB_FAMILY_IPV6}) {
    for (const bool affinity : {false, true}) {
      SCOPED_TRACE(testing::Message() << "family " << int{family} << " affinity " << affinity);
      TupleSource src(family * 2 + affinity);
      std::vector<uint64_t> buckets(kSize);
      for (uint64_t i = 0; i < kSamples; ++i) {
        ++buckets[xlb::MaglevSlot(src.Flow(family), affinity, 0x786c6231U, kSize)];
      }
      ExpectUniform(buckets, kSamples);
    }
  }
}

TEST(MaglevSlot, StructuredTuplesSpreadEvenly) {
  // What a real load balancer sees: one client opening connections from consecutive source
  // ports to one VIP, and a /16 of clients under ClientIP affinity.
  constexpr uint32_t kSize = 251;
  xlb_ct_key k{};
  k.family = XLB_FAMILY_IPV4;
  k.saddr[0] = 0x010012c6;  // 198.18.0.1
  k.daddr[0] = 0x640012c6;  // 198.18.0.100
  k.dport = 0xbb01;         // 443
  k.proto = kTcp;
  std::vector<uint64_t> by_port(kSize);
  for (uint32_t port = 1024; port < 65536; ++port) {
    k.sport = static_cast<uint16_t>((port >> 8) | (port << 8));
    ++by_port[xlb::MaglevSlot(k, false, 0x786c6231U, kSize)];
  }
  ExpectUniform(by_port, 65536 - 1024);

  std::vector<uint64_t> by_client(kSize);
  for (uint32_t host = 0; host < 65536; ++host) {
    k.saddr[0] = 0x000013c6 | (host >> 8) << 16 | (host & 0xff) << 24;  // 198.19.x.y
    ++by_client[xlb::MaglevSlot(k, true, 0x786c6231U, kSize)];
  }
  ExpectUniform(by_client, 65536);
}

}  // namespace
