// Packet fuzzing through the real programs: every golden case's frames, mutated (bit flips,
// truncation, trailing bytes, header bytes overwritten, length fields that lie, IPv6
// extension header chains, VXLAN flags and VNI), run through xlb_xdp or xlb_tc as the case
// runs them, with the golden services and peers loaded. For every frame:
//   - the verdict is one the program may give (XDP_ABORTED, or any other value, is a bug);
//   - exactly one reason counter moved, by one, and its group agrees with the verdict
//     (pass_* passes, drop_* drops);
//   - a frame passed untouched by its reason (pass_not_ip ... pass_tunnel_foreign) leaves
//     byte for byte as it came;
// and a sample of the rewritten frames goes to tshark with the frames they came from: a
// rewritten frame may carry no checksum or malformation warning its input did not have.
//
// XLB_FUZZ_FRAMES (default 1,000,000: CI), XLB_FUZZ_SEED (default 1), XLB_FUZZ_TSHARK (frames
// judged by tshark, default 20,000). `make fuzz-packets` runs 10 million with a new seed.
// Needs root (BPF; CI is root).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "golden_cases.h"
#include "loader/reasons.h"
#include "tshark.h"

namespace xlb::testing {
namespace {

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// Where the headers of a frame start, as far as they can be found: for mutating the fields
// that carry lengths.
struct Layout {
  size_t l3 = 0;  // 0: not IP
  int family = 0;  // 4 or 6
  size_t l4 = 0;   // 0: not found
  uint8_t proto = 0;
};

Layout Parse(const pkt::Bytes& f) {
  Layout l;
  size_t off = 12;
  while (off + 2 <= f.size()) {
    const uint16_t type = static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
    if (type == 0x8100 || type == 0x88a8) {
      off += 4;
      continue;
    }
    if (type == 0x0800 && off + 2 + 20 <= f.size()) {
      l.l3 = off + 2;
      l.family = 4;
      l.proto = f[l.l3 + 9];
      const size_t ihl = (f[l.l3] & 0x0f) * 4u;
      if (ihl >= 20 && l.l3 + ihl <= f.size()) l.l4 = l.l3 + ihl;
    } else if (type == 0x86dd && off + 2 + 40 <= f.size()) {
      l.l3 = off + 2;
      l.family = 6;
      l.proto = f[l.l3 + 6];
      l.l4 = l.l3 + 40;
    }
    break;
  }
  return l;
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t Below(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  uint8_t Byte() { return static_cast<uint8_t>(Below(256)); }

  // One to three mutations of `f`; never shorter than an Ethernet header (the kernel refuses
  // shorter test input).
  pkt::Bytes Mutate(pkt::Bytes f) {
    const size_t n = 1 + Below(3);
    for (size_t i = 0; i < n; ++i) Once(f);
    if (f.size() < kMinTestRunFrame) f.resize(kMinTestRunFrame, 0);
    return f;
  }

 private:
  void Put16(pkt::Bytes& f, size_t at, uint16_t v) {
    if (at + 2 <= f.size()) {
      f[at] = static_cast<uint8_t>(v >> 8);
      f[at + 1] = static_cast<uint8_t>(v);
    }
  }
  // A length near the truth (off by a little either way), or anything at all.
  uint16_t Lie(size_t truth) {
    if (Below(2) == 0) return static_cast<uint16_t>(Below(65536));
    return static_cast<uint16_t>(truth + Below(17) - 8);
  }

  void Once(pkt::Bytes& f) {
    const Layout l = Parse(f);
    switch (Below(9)) {
      case 0: {  // bit flips anywhere
        for (size_t k = 1 + Below(8); k > 0 && !f.empty(); --k) f[Below(f.size())] ^= 1u << Below(8);
        break;
      }
      case 1:  // truncation
        f.resize(kMinTestRunFrame + Below(f.size() > kMinTestRunFrame ? f.size() - kMinTestRunFrame : 1));
        break;
      case 2:  // trailing bytes (Ethernet padding, or a length that the frame now exceeds)
        for (size_t k = 1 + Below(64); k > 0; --k) f.push_back(Byte());
        break;
      case 3: {  // header bytes overwritten
        const size_t span = std::min<size_t>(f.size(), 96);
        for (size_t k = 1 + Below(4); k > 0 && span > 0; --k) f[Below(span)] = Byte();
        break;
      }
      case 4:  // the IP lengths lie
        if (l.family == 4) {
          if (Below(2) == 0) {
            Put16(f, l.l3 + 2, Lie(f.size() - l.l3));
          } else {
            f[l.l3] = static_cast<uint8_t>(0x40 | Below(16));  // IHL
          }
        } else if (l.family == 6) {
          Put16(f, l.l3 + 4, Lie(f.size() - l.l3 - 40));
        }
        break;
      case 5:  // the L4 lengths lie: UDP length, TCP data offset
        if (l.l4 != 0 && l.proto == 17) {
          Put16(f, l.l4 + 4, Lie(f.size() - l.l4));
        } else if (l.l4 != 0 && l.proto == 6 && l.l4 + 13 <= f.size()) {
          f[l.l4 + 12] = static_cast<uint8_t>(Below(16) << 4 | (f[l.l4 + 12] & 0x0f));
        }
        break;
      case 6:  // IPv6 extension headers: a chain inserted after the fixed header
        if (l.family == 6) {
          static constexpr uint8_t kExt[] = {0, 43, 44, 60, 51, 50, 135, 139, 140, 253, 59};
          pkt::Bytes chain;
          uint8_t next = f[l.l3 + 6];
          for (size_t k = 1 + Below(4); k > 0; --k) {
            const uint8_t len = static_cast<uint8_t>(Below(3));  // in 8-byte units, beyond 8
            pkt::Bytes h(8 + len * 8u);
            for (uint8_t& b : h) b = Byte();
            h[0] = next;
            h[1] = len;
            next = kExt[Below(sizeof(kExt))];
            chain.insert(chain.begin(), h.begin(), h.end());
          }
          f[l.l3 + 6] = next;
          f.insert(f.begin() + static_cast<long>(l.l3 + 40), chain.begin(), chain.end());
          Put16(f, l.l3 + 4, static_cast<uint16_t>(f.size() - l.l3 - 40));
        }
        break;
      case 7:  // tunnel headers: VXLAN flags and VNI (the 8 bytes after the outer UDP header)
        if (l.l4 != 0 && l.proto == 17 && l.l4 + 16 <= f.size()) {
          f[l.l4 + 8 + Below(8)] = Byte();
        }
        break;
      default:  // the IP protocol or next header
        if (l.family == 4) {
          f[l.l3 + 9] = Below(2) == 0 ? Byte() : static_cast<uint8_t>(Below(2) == 0 ? 1 : 58);
        } else if (l.family == 6) {
          f[l.l3 + 6] = Byte();
        }
        break;
    }
  }

  std::mt19937_64 rng_;
};

// The inner packet of a GUE frame (UDP port 6080, direct IP encapsulation), behind an
// Ethernet header of its own; the outer IPv6 header may carry extension headers. nullopt for
// anything else.
std::optional<pkt::Bytes> GueInner(const pkt::Bytes& f) {
  const Layout l = Parse(f);
  size_t at = l.l4;
  uint8_t next = l.proto;
  for (int hops = 0; l.family == 6 && at != 0 && hops < 8; ++hops) {
    if (at + 8 > f.size()) return std::nullopt;
    if (next == 0 || next == 43 || next == 60) {
      const uint8_t n = f[at];
      at += (f[at + 1] + 1u) * 8u;
      next = n;
    } else if (next == 44) {
      next = f[at];
      at += 8;
    } else if (next == 51) {
      const uint8_t n = f[at];
      at += (f[at + 1] + 2u) * 4u;
      next = n;
    } else {
      break;
    }
  }
  if (at == 0 || next != 17 || at + 9 > f.size()) return std::nullopt;
  if ((f[at + 2] << 8 | f[at + 3]) != 6080) return std::nullopt;
  const size_t inner = at + 8;
  const uint8_t version = f[inner] >> 4;
  if (version != 4 && version != 6) return std::nullopt;
  pkt::Bytes out(12, 0);
  out.push_back(version == 4 ? 0x08 : 0x86);
  out.push_back(version == 4 ? 0x00 : 0xdd);
  out.insert(out.end(), f.begin() + static_cast<long>(inner), f.end());
  return out;
}

std::string Hex(const pkt::Bytes& f) {
  std::string out;
  char b[3];
  for (uint8_t c : f) {
    std::snprintf(b, sizeof(b), "%02x", c);
    out += b;
  }
  return out;
}

bool Untouched(uint32_t reason) { return reason <= XLB_PASS_TUNNEL_FOREIGN; }

bool ValidVerdict(Hook hook, uint32_t v) {
  return hook == Hook::kXdp ? (v == XDP_DROP || v == XDP_PASS || v == XDP_TX || v == XDP_REDIRECT)
                            : (v == TC_ACT_OK || v == TC_ACT_SHOT || v == TC_ACT_REDIRECT);
}
bool Dropped(Hook hook, uint32_t v) { return hook == Hook::kXdp ? v == XDP_DROP : v == TC_ACT_SHOT; }
bool Passed(Hook hook, uint32_t v) { return hook == Hook::kXdp ? v == XDP_PASS : v == TC_ACT_OK; }

// What tshark finds wrong in a frame, by the innermost layer it is in: "tcp checksum",
// "ip malformed". Checksums of L4 headers quoted in ICMP errors are not counted (tshark
// computes them over a truncated quote).
std::set<std::string> Problems(const pkt::TsharkFrame& t) {
  std::set<std::string> out;
  auto innermost = [](const std::string& layer) {
    const size_t slash = layer.rfind('/');
    return slash == std::string::npos ? layer : layer.substr(slash + 1);
  };
  for (const pkt::TsharkChecksumProblem& p : t.checksum_problems) {
    if (!p.quoted_l4) out.insert(innermost(p.layer) + " checksum");
  }
  for (const pkt::TsharkExpert& e : t.experts) {
    if (e.group == 0x7000000) out.insert(innermost(e.layer) + " malformed");
  }
  return out;
}

struct Seed {
  std::string where;
  GoldenStep step;
};

TEST(PacketFuzz, MutatedFramesGetTheProgramsVerdictACountedReasonAndNoNewWarning) {
  const uint64_t frames = EnvNumber("XLB_FUZZ_FRAMES", 1'000'000);
  const uint64_t seed = EnvNumber("XLB_FUZZ_SEED", 1);
  const size_t tshark_sample = EnvNumber("XLB_FUZZ_TSHARK", 20'000);

  std::vector<Seed> seeds;
  for (const GoldenCase& c : GoldenCases()) {
    for (const GoldenStep& s : c.steps) seeds.push_back({c.name + ": " + s.what, s});
  }
  ASSERT_GE(seeds.size(), 50u);

  Mutator mutate(seed);
  std::map<std::string, uint64_t> by_reason;
  uint64_t ran = 0, rewritten = 0, failures = 0, refused = 0;
  std::vector<pkt::Bytes> sample_in, sample_out;
  std::vector<std::string> sample_where;
  const auto started = std::chrono::steady_clock::now();
  const bool loaded = WithGoldenDatapath({}, [&](GoldenDatapath& g) {
    std::array<uint64_t, XLB_REASON_MAX> before = ReasonCounts(g.xdp);
    for (uint64_t i = 0; i < frames && failures < 20; ++i) {
      const Seed& s = seeds[i % seeds.size()];
      const pkt::Bytes in = mutate.Mutate(s.step.in);
      auto r = RunStep(g, s.step, in);
      // The kernel builds a TC test run's skb only around a whole IP header (EINVAL for a
      // shorter frame with an IP EtherType); a veth never delivers such a frame to TC either.
      if (!r && s.step.hook == Hook::kTc && r.error().err == EINVAL &&
          in.size() < kMinTestRunFrame + 40) {
        ++refused;
        continue;
      }
      if (!r) {
        ADD_FAILURE() << s.where << ": BPF_PROG_TEST_RUN: " << r.error().ToString();
        ++failures;
        continue;
      }
      ++ran;
      const std::array<uint64_t, XLB_REASON_MAX> after = ReasonCounts(g.xdp);
      int moved = 0;
      uint32_t reason = XLB_REASON_MAX;
      for (uint32_t k = 0; k < XLB_REASON_MAX; ++k) {
        if (after[k] != before[k]) {
          moved += static_cast<int>(after[k] - before[k]);
          reason = k;
        }
      }
      before = after;
      const Hook hook = s.step.hook;
      std::string problem;
      if (!ValidVerdict(hook, r->retval)) {
        problem = "verdict " + std::to_string(r->retval);
      } else if (moved != 1) {
        problem = std::to_string(moved) + " reason counts moved";
      } else if (reason >= XLB_DROP_FIRST ? !Dropped(hook, r->retval)
                                          : Dropped(hook, r->retval)) {
        problem = "verdict " + std::to_string(r->retval) + " with reason " +
                  std::string(ReasonName(reason));
      } else if (reason <= XLB_PASS_SNAT_KERNEL && !Passed(hook, r->retval) &&
                 !(reason >= XLB_PASS_ENCAP_KERNEL && hook == Hook::kTc &&
                   r->retval == TC_ACT_REDIRECT)) {
        // The *_kernel reasons hand the rewritten frame to the stack: XDP_PASS, or from TC
        // bpf_redirect_neigh, which resolves the neighbour itself.
        problem = "a pass_* reason with verdict " + std::to_string(r->retval);
      } else if (Untouched(reason) && r->out != in) {
        problem = std::string(ReasonName(reason)) +
                  " changed the frame";
      }
      if (!problem.empty()) {
        ++failures;
        ADD_FAILURE() << s.where << ", frame " << i << " (seed " << seed << "): " << problem
                      << "\n  in:  " << Hex(in) << "\n  out: " << Hex(r->out);
        continue;
      }
      ++by_reason[std::string(ReasonName(reason))];
      if (!Dropped(hook, r->retval) && r->out != in) {
        ++rewritten;
        // Reservoir sampling: every rewritten frame has the same chance to be judged.
        size_t slot = sample_in.size();
        if (slot >= tshark_sample) slot = mutate.Below(rewritten);
        if (slot < tshark_sample) {
          if (slot == sample_in.size()) {
            sample_in.push_back(in);
            sample_out.push_back(r->out);
            sample_where.push_back(s.where + ", frame " + std::to_string(i));
          } else {
            sample_in[slot] = in;
            sample_out[slot] = r->out;
            sample_where[slot] = s.where + ", frame " + std::to_string(i);
          }
        }
      }
    }
  });
  ASSERT_TRUE(loaded);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(ran + refused, frames);

  // tshark on both sides of every sampled rewrite. A GUE frame is also decoded without its
  // outer headers: tshark dissects VXLAN's inner frame itself, but not GUE's (no port mapping
  // covers both inner families), whose inner headers would go unjudged.
  pkt::TsharkOptions opts{.extra_protocols = {"vxlan"},
                          .extra_args = {"-o", "udp.ignore_ipv6_zero_checksum:TRUE"}};
  auto judge = [&](const std::vector<pkt::Bytes>& frames) {
    std::vector<pkt::Bytes> all = frames;
    std::vector<size_t> inner_of(frames.size(), SIZE_MAX);
    for (size_t i = 0; i < frames.size(); ++i) {
      if (auto inner = GueInner(frames[i])) {
        inner_of[i] = all.size();
        all.push_back(std::move(*inner));
      }
    }
    const std::vector<pkt::TsharkFrame> seen = pkt::TsharkDecodeFrames(all, opts);
    std::vector<std::set<std::string>> problems(frames.size());
    if (seen.size() != all.size()) {
      ADD_FAILURE() << "tshark decoded " << seen.size() << " of " << all.size() << " frames";
      return problems;
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      problems[i] = Problems(seen[i]);
      if (inner_of[i] != SIZE_MAX) {
        const std::set<std::string> inner = Problems(seen[inner_of[i]]);
        problems[i].insert(inner.begin(), inner.end());
      }
    }
    return problems;
  };
  const std::vector<std::set<std::string>> had_in = judge(sample_in);
  const std::vector<std::set<std::string>> has_out = judge(sample_out);
  size_t new_warnings = 0;
  for (size_t i = 0; i < has_out.size() && i < had_in.size() && new_warnings < 20; ++i) {
    const std::set<std::string>& had = had_in[i];
    // An outer UDP checksum over IPv6 is computed from the inner checksums (local checksum
    // offload, as Linux's lco_csum: a valid checksum makes its header sum to a known value):
    // a bad inner IPv4 header or L4 checksum makes it bad too, and the receiving node drops
    // what the backend would have dropped.
    const bool inner_bad = had.count("ip checksum") || had.count("tcp checksum") ||
                           had.count("udp checksum") || had.count("icmp checksum") ||
                           had.count("icmpv6 checksum");
    for (const std::string& p : has_out[i]) {
      if (had.count(p) == 0 && !(p == "udp checksum" && inner_bad)) {
        ++new_warnings;
        ADD_FAILURE() << sample_where[i] << " (seed " << seed << "): the rewrite has a " << p
                      << " problem its input did not have\n  in:  " << Hex(sample_in[i])
                      << "\n  out: " << Hex(sample_out[i]);
        break;
      }
    }
  }

  std::string reasons;
  for (const auto& [name, n] : by_reason) reasons += " " + name + "=" + std::to_string(n);
  std::printf(
      "[ packet fuzz ] seed %llu: %llu frames from %zu golden frames in %.1f s (%.0f frames/s; "
      "%llu short TC frames the kernel does not test-run), %llu rewritten, %zu of them judged "
      "by tshark\n[ packet fuzz ] reasons:%s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(ran), seeds.size(),
      seconds, ran / seconds, static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(rewritten), sample_out.size(), reasons.c_str());
}

}  // namespace
}  // namespace xlb::testing
