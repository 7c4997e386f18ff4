// XdpDatapath::Load: sizes, rodata, pinning and re-use of pinned maps. Needs root.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "loader/fd.h"
#include "loader/xdp_loader.h"
#include "test_env.h"

namespace xlb::testing {
namespace {

LoadOptions Hermetic() {
  LoadOptions o;
  o.pin_dir = "";
  return o;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bpf_map_info InfoOf(int fd) {
  auto info = MapView(fd, "test").Info();
  EXPECT_TRUE(info.ok()) << info.error().ToString();
  return info.ok() ? *info : bpf_map_info{};
}

TEST(Loader, LoadsWithoutPinning) {
  auto dp = XdpDatapath::Load(Hermetic());
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  EXPECT_GE((*dp)->prog_fd(), 0);
  EXPECT_TRUE((*dp)->reused_maps().empty());
  for (const char* name : kPinnedMaps) {
    EXPECT_GE((*dp)->map_fd(name), 0) << name;
  }
  EXPECT_EQ((*dp)->map_fd("no_such_map"), -1);
}

TEST(Loader, SizesMapsAndMaglevTemplateFromOptions) {
  LoadOptions o = Hermetic();
  o.max_services = 64;
  o.max_backends = 128;
  o.max_ct_entries = 1024;
  o.config.maglev_size = 251;
  auto dp = XdpDatapath::Load(o);
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  const XdpDatapath& d = **dp;
  EXPECT_EQ(InfoOf(d.services().fd()).max_entries, 64u * 4);
  EXPECT_EQ(InfoOf(d.maglev_fd()).max_entries, 64u);
  EXPECT_EQ(InfoOf(d.service_stats().fd()).max_entries, 64u);
  EXPECT_EQ(InfoOf(d.backends().fd()).max_entries, 128u);
  EXPECT_EQ(InfoOf(d.backend_stats().fd()).max_entries, 128u);
  EXPECT_EQ(InfoOf(d.conntrack().fd()).max_entries, 1024u);
  EXPECT_EQ(InfoOf(d.replies().fd()).max_entries, 1024u);  // one reply entry per flow
  EXPECT_EQ(InfoOf(d.replies().fd()).key_size, sizeof(xlb_ct_key));
  EXPECT_EQ(InfoOf(d.replies().fd()).value_size, sizeof(xlb_reply));
  // Key and value sizes are the ABI's.
  EXPECT_EQ(InfoOf(d.services().fd()).key_size, sizeof(xlb_service_key));
  EXPECT_EQ(InfoOf(d.services().fd()).value_size, sizeof(xlb_service));
  EXPECT_EQ(InfoOf(d.backends().fd()).value_size, sizeof(xlb_backend));
  EXPECT_EQ(InfoOf(d.conntrack().fd()).key_size, sizeof(xlb_ct_key));
  EXPECT_EQ(InfoOf(d.conntrack().fd()).value_size, sizeof(xlb_ct_value));
  EXPECT_EQ(InfoOf(d.reasons().fd()).value_size, sizeof(xlb_counter));
  EXPECT_EQ(InfoOf(d.reasons().fd()).max_entries, static_cast<uint32_t>(XLB_REASON_SLOTS));
  EXPECT_EQ(InfoOf(d.service_stats().fd()).value_size, sizeof(xlb_flow_counter));
}

TEST(Loader, WritesConfigIntoRodata) {
  LoadOptions o = Hermetic();
  o.config.hash_seed = 0x5eed1234;
  o.config.ct_udp_timeout_s = 77;
  auto dp = XdpDatapath::Load(o);
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  int fd = (*dp)->map_fd(".rodata");
  ASSERT_GE(fd, 0);
  bpf_map_info info = InfoOf(fd);
  std::vector<uint8_t> rodata(info.value_size);
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, rodata.data()), 0);
  auto it = std::search(rodata.begin(), rodata.end(), reinterpret_cast<const uint8_t*>(&o.config),
                        reinterpret_cast<const uint8_t*>(&o.config) + sizeof(o.config));
  EXPECT_NE(it, rodata.end()) << "xlb_cfg with the test's seed not found in .rodata";
}

TEST(Loader, RejectsBadMaglevSize) {
  for (uint32_t size : {0u, 1u, 2u /* prime, even */, 1000u, 16383u /* 3 * 43 * 127 */,
                        262147u /* prime, too big */}) {
    LoadOptions o = Hermetic();
    o.config.maglev_size = size;
    auto dp = XdpDatapath::Load(o);
    ASSERT_FALSE(dp.ok()) << size;
    EXPECT_EQ(dp.error().err, EINVAL);
    EXPECT_NE(dp.error().what.find("maglev_size"), std::string::npos) << dp.error().what;
  }
}

// Maps an older xlb pinned under names this one replaced (xlb_maglev_v1 held every Maglev
// table) lose their pins when this datapath loads; its own are pinned.
TEST(Loader, PinsOfRetiredMapsAreRemoved) {
  PinDir dir;
  LoadOptions o;
  o.pin_dir = dir.path();
  o.max_services = 64;
  o.max_backends = 128;
  o.max_ct_entries = 1024;
  {
    auto first = XdpDatapath::Load(o);  // makes the pin directory
    ASSERT_TRUE(first.ok()) << first.error().ToString();
  }
  for (const char* name : {"xlb_maglev_v1", "xlb_reasons_v3"}) {
    UniqueFd old(bpf_map_create(BPF_MAP_TYPE_ARRAY, "old", 4, 4, 1, nullptr));
    ASSERT_TRUE(old.valid());
    ASSERT_EQ(bpf_obj_pin(old.get(), dir.Pin(name).c_str()), 0) << name;
  }
  auto dp = XdpDatapath::Load(o);
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  for (const char* name : kRetiredPins) {
    EXPECT_FALSE(Exists(dir.Pin(name))) << name;
  }
  for (const char* name : kPinnedMaps) {
    EXPECT_TRUE(Exists(dir.Pin(name))) << name;
  }
}

TEST(Loader, PinnedMapsSurviveReload) {
  PinDir dir;
  LoadOptions o;
  o.pin_dir = dir.path();
  xlb_backend be{};
  be.addr[0] = 0x010012c6;  // 198.18.0.1 in network order
  be.port = 0x901f;         // 8080
  be.family = XLB_FAMILY_IPV4;
  be.flags = XLB_BE_F_VALID;
  {
    auto dp = XdpDatapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.error().ToString();
    EXPECT_TRUE((*dp)->reused_maps().empty());
    for (const char* name : kPinnedMaps) {
      EXPECT_TRUE(Exists(dir.Pin(name))) << name;
    }
    auto r = (*dp)->backends().Update(7, be);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }  // program and skeleton gone; the pins hold the maps
  auto dp = XdpDatapath::Load(o);
  ASSERT_TRUE(dp.ok()) << dp.error().ToString();
  std::set<std::string> reused((*dp)->reused_maps().begin(), (*dp)->reused_maps().end());
  EXPECT_EQ(reused, std::set<std::string>(kPinnedMaps.begin(), kPinnedMaps.end()));
  auto got = (*dp)->backends().Lookup(7);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(std::memcmp(&*got, &be, sizeof(be)), 0);

  auto r = (*dp)->Unpin();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(Exists(dir.path()));
  // Still loaded: unpinning does not free what the program holds.
  EXPECT_TRUE((*dp)->backends().Lookup(7).ok());
}

TEST(Loader, IncompatiblePinnedMapIsNamedAndKept) {
  PinDir dir;
  ASSERT_EQ(::mkdir(dir.path().c_str(), 0755), 0);
  // xlb_backends_v1 as an older layout might have had it: 48-byte values.
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_backends_v1", 4, 48, XLB_MAX_BACKENDS, nullptr);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  UniqueFd old(fd);
  const std::string pin = dir.Pin(XLB_MAP_BACKENDS);
  ASSERT_EQ(bpf_obj_pin(old.get(), pin.c_str()), 0);

  LoadOptions o;
  o.pin_dir = dir.path();
  auto dp = XdpDatapath::Load(o);
  ASSERT_FALSE(dp.ok());
  EXPECT_EQ(dp.error().err, EINVAL);
  const std::string& what = dp.error().what;
  EXPECT_NE(what.find(XLB_MAP_BACKENDS), std::string::npos) << what;
  EXPECT_NE(what.find(pin), std::string::npos) << what;
  EXPECT_NE(what.find("value_size 48"), std::string::npos) << what;
  // Not deleted, and nothing else pinned beside it.
  EXPECT_TRUE(Exists(pin));
  for (const char* name : kPinnedMaps) {
    if (std::string(name) != XLB_MAP_BACKENDS) {
      EXPECT_FALSE(Exists(dir.Pin(name))) << name;
    }
  }
}

TEST(Loader, ChangedMapSizeOnReuseIsNamed) {
  PinDir dir;
  LoadOptions o;
  o.pin_dir = dir.path();
  o.max_ct_entries = 4096;
  ASSERT_TRUE(XdpDatapath::Load(o).ok());
  o.max_ct_entries = 8192;
  auto dp = XdpDatapath::Load(o);
  ASSERT_FALSE(dp.ok());
  EXPECT_NE(dp.error().what.find(XLB_MAP_CT), std::string::npos) << dp.error().what;
  EXPECT_NE(dp.error().what.find("max_entries 4096"), std::string::npos) << dp.error().what;
}

TEST(Loader, ChangedMaglevSizeOnReuseIsNamed) {
  PinDir dir;
  LoadOptions o;
  o.pin_dir = dir.path();
  {
    auto dp = XdpDatapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.error().ToString();
    std::vector<uint32_t> slots((*dp)->maglev_size(), 1);
    auto r = (*dp)->InstallMaglevTable(3, slots);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  o.config.maglev_size = 251;
  auto dp = XdpDatapath::Load(o);
  ASSERT_FALSE(dp.ok());
  EXPECT_NE(dp.error().what.find(XLB_MAP_MAGLEV), std::string::npos) << dp.error().what;
  EXPECT_NE(dp.error().what.find("Maglev table size 16381"), std::string::npos) << dp.error().what;
}

TEST(Loader, PinDirMustBeOnBpffs) {
  LoadOptions o;
  o.pin_dir = "/tmp/" + UniqueName("xlb-not-bpffs");
  auto dp = XdpDatapath::Load(o);
  ::rmdir(o.pin_dir.c_str());
  ASSERT_FALSE(dp.ok());
  EXPECT_NE(dp.error().what.find("not on a bpf filesystem"), std::string::npos) << dp.error().what;
}

TEST(Loader, RemovePinsWithoutLoading) {
  PinDir dir;
  LoadOptions o;
  o.pin_dir = dir.path();
  ASSERT_TRUE(XdpDatapath::Load(o).ok());
  ASSERT_TRUE(Exists(dir.Pin(XLB_MAP_CT)));
  auto r = RemovePins(dir.path());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(Exists(dir.path()));
  // Again: nothing left is not an error.
  EXPECT_TRUE(RemovePins(dir.path()).ok());
}

}  // namespace
}  // namespace xlb::testing
