// maps/xlb_abi.h is compiled twice: by g++ into userspace and by clang -target bpf into the
// datapath. This test holds g++'s layout of every ABI struct (sizeof, offsetof) against the
// BTF that clang wrote into the built XDP object, member by member, so a layout the two
// compilers disagree on, or a member added on one side only, fails here and not in a map.
#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <linux/btf.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "maps/xlb_abi.h"

#ifndef XLB_XDP_OBJECT
#error "XLB_XDP_OBJECT must name the built xlb_xdp BPF object"
#endif
#ifndef XLB_SOCK_OBJECT
#error "XLB_SOCK_OBJECT must name the built xlb_sock BPF object"
#endif

namespace {

struct Member {
  std::string name;
  size_t offset;
  size_t size;
};

struct Layout {
  std::string name;
  size_t size;
  std::vector<Member> members;  // in declaration order
};

#define XLB_MEMBER(type, member) (Member{#member, offsetof(type, member), sizeof(type::member)})

// Reads an object's BTF once for all tests.
const btf* ObjectBtf(const char* object) {
  struct Parsed {
    std::unique_ptr<btf, decltype(&btf__free)> handle{nullptr, &btf__free};
    int error = 0;
  };
  static std::map<std::string, Parsed> parsed;
  auto [it, fresh] = parsed.try_emplace(object);
  if (fresh) {
    errno = 0;
    it->second.handle.reset(btf__parse_elf(object, nullptr));
    it->second.error = errno;
  }
  if (!it->second.handle) {
    ADD_FAILURE() << "cannot read BTF from " << object << ": " << std::strerror(it->second.error);
  }
  return it->second.handle.get();
}

// The C++ layout, as a table of members in declaration order, against the BTF struct of the
// same name: total size, and each member's name, byte offset and size. A member added to
// xlb_abi.h must be added to the table too: the test fails until it is.
void ExpectLayoutMatchesBtf(const Layout& cxx, const char* object = XLB_XDP_OBJECT) {
  const btf* b = ObjectBtf(object);
  ASSERT_NE(b, nullptr);
  const int id = btf__find_by_name_kind(b, cxx.name.c_str(), BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct " << cxx.name << " is not in the BTF of " << object
                   << ": the BPF object no longer references it";
  const btf_type* t = btf__type_by_id(b, id);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->size, cxx.size) << "sizeof(struct " << cxx.name << ")";

  std::vector<Member> bpf;
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m) {
    const char* name = btf__name_by_offset(b, m->name_off);
    const uint32_t bit_offset = btf_member_bit_offset(t, i);
    EXPECT_EQ(btf_member_bitfield_size(t, i), 0u) << cxx.name << "." << name << " is a bitfield";
    EXPECT_EQ(bit_offset % 8, 0u) << cxx.name << "." << name;
    const __s64 size = btf__resolve_size(b, m->type);
    ASSERT_GE(size, 0) << cxx.name << "." << name;
    bpf.push_back({name ? name : "", bit_offset / 8, static_cast<size_t>(size)});
  }

  for (size_t i = 0; i < std::max(bpf.size(), cxx.members.size()); ++i) {
    if (i >= bpf.size()) {
      ADD_FAILURE() << cxx.name << "." << cxx.members[i].name << " is missing from the BTF";
      continue;
    }
    if (i >= cxx.members.size()) {
      ADD_FAILURE() << cxx.name << "." << bpf[i].name << " is in the BTF but not in this test";
      continue;
    }
    EXPECT_EQ(bpf[i].name, cxx.members[i].name) << cxx.name << " member " << i;
    EXPECT_EQ(bpf[i].offset, cxx.members[i].offset) << cxx.name << "." << cxx.members[i].name;
    EXPECT_EQ(bpf[i].size, cxx.members[i].size) << cxx.name << "." << cxx.members[i].name;
  }

  // The ABI asks for explicit padding: members tile the struct without holes, so no byte of
  // a key is left to whatever the compiler put there (the kernel hashes and compares every
  // byte of a map key).
  size_t end = 0;
  for (const Member& member : cxx.members) {
    EXPECT_EQ(member.offset, end) << cxx.name << "." << member.name << " follows a hole";
    end = member.offset + member.size;
  }
  EXPECT_EQ(end, cxx.size) << cxx.name << " ends in a hole";
}

TEST(AbiBtf, ServiceKey) {
  ExpectLayoutMatchesBtf(
      {"xlb_service_key",
       sizeof(xlb_service_key),
       {XLB_MEMBER(xlb_service_key, addr), XLB_MEMBER(xlb_service_key, port),
        XLB_MEMBER(xlb_service_key, proto), XLB_MEMBER(xlb_service_key, family)}});
}

TEST(AbiBtf, Service) {
  ExpectLayoutMatchesBtf(
      {"xlb_service",
       sizeof(xlb_service),
       {XLB_MEMBER(xlb_service, id), XLB_MEMBER(xlb_service, flags),
        XLB_MEMBER(xlb_service, affinity_timeout), XLB_MEMBER(xlb_service, backend_count)}});
}

TEST(AbiBtf, Backend) {
  ExpectLayoutMatchesBtf({"xlb_backend",
                          sizeof(xlb_backend),
                          {XLB_MEMBER(xlb_backend, addr), XLB_MEMBER(xlb_backend, tunnel),
                           XLB_MEMBER(xlb_backend, port), XLB_MEMBER(xlb_backend, family),
                           XLB_MEMBER(xlb_backend, tunnel_family),
                           XLB_MEMBER(xlb_backend, cluster_id), XLB_MEMBER(xlb_backend, flags)}});
}

TEST(AbiBtf, CtKey) {
  ExpectLayoutMatchesBtf(
      {"xlb_ct_key",
       sizeof(xlb_ct_key),
       {XLB_MEMBER(xlb_ct_key, saddr), XLB_MEMBER(xlb_ct_key, daddr), XLB_MEMBER(xlb_ct_key, sport),
        XLB_MEMBER(xlb_ct_key, dport), XLB_MEMBER(xlb_ct_key, proto),
        XLB_MEMBER(xlb_ct_key, family), XLB_MEMBER(xlb_ct_key, pad)}});
}

TEST(AbiBtf, CtValue) {
  ExpectLayoutMatchesBtf(
      {"xlb_ct_value",
       sizeof(xlb_ct_value),
       {XLB_MEMBER(xlb_ct_value, last_seen), XLB_MEMBER(xlb_ct_value, backend_id),
        XLB_MEMBER(xlb_ct_value, service_id), XLB_MEMBER(xlb_ct_value, state),
        XLB_MEMBER(xlb_ct_value, flags), XLB_MEMBER(xlb_ct_value, snat_port),
        XLB_MEMBER(xlb_ct_value, pad)}});
}

TEST(AbiBtf, Counter) {
  ExpectLayoutMatchesBtf({"xlb_counter",
                          sizeof(xlb_counter),
                          {XLB_MEMBER(xlb_counter, packets), XLB_MEMBER(xlb_counter, bytes)}});
}

TEST(AbiBtf, FlowCounter) {
  ExpectLayoutMatchesBtf(
      {"xlb_flow_counter",
       sizeof(xlb_flow_counter),
       {XLB_MEMBER(xlb_flow_counter, packets), XLB_MEMBER(xlb_flow_counter, bytes),
        XLB_MEMBER(xlb_flow_counter, new_flows)}});
}

TEST(AbiBtf, Config) {
  ExpectLayoutMatchesBtf(
      {"xlb_config",
       sizeof(xlb_config),
       {XLB_MEMBER(xlb_config, maglev_size), XLB_MEMBER(xlb_config, hash_seed),
        XLB_MEMBER(xlb_config, ct_tcp_timeout_s), XLB_MEMBER(xlb_config, ct_syn_timeout_s),
        XLB_MEMBER(xlb_config, ct_udp_timeout_s), XLB_MEMBER(xlb_config, ct_close_timeout_s),
        XLB_MEMBER(xlb_config, tunnel_addr4), XLB_MEMBER(xlb_config, tunnel_addr6),
        XLB_MEMBER(xlb_config, vxlan_port), XLB_MEMBER(xlb_config, gue_port),
        XLB_MEMBER(xlb_config, vni), XLB_MEMBER(xlb_config, tunnel_mtu),
        XLB_MEMBER(xlb_config, encap), XLB_MEMBER(xlb_config, flags),
        XLB_MEMBER(xlb_config, vtep_mac), XLB_MEMBER(xlb_config, pad1)}});
}

TEST(AbiBtf, Reply) {
  ExpectLayoutMatchesBtf(
      {"xlb_reply",
       sizeof(xlb_reply),
       {XLB_MEMBER(xlb_reply, last_seen), XLB_MEMBER(xlb_reply, addr), XLB_MEMBER(xlb_reply, port),
        XLB_MEMBER(xlb_reply, kind), XLB_MEMBER(xlb_reply, family), XLB_MEMBER(xlb_reply, encap),
        XLB_MEMBER(xlb_reply, flags), XLB_MEMBER(xlb_reply, pad)}});
}

TEST(AbiBtf, Snat) {
  ExpectLayoutMatchesBtf(
      {"xlb_snat",
       sizeof(xlb_snat),
       {XLB_MEMBER(xlb_snat, last_seen), XLB_MEMBER(xlb_snat, client), XLB_MEMBER(xlb_snat, vip),
        XLB_MEMBER(xlb_snat, client_port), XLB_MEMBER(xlb_snat, vip_port),
        XLB_MEMBER(xlb_snat, family), XLB_MEMBER(xlb_snat, flags), XLB_MEMBER(xlb_snat, pad)}});
}

TEST(AbiBtf, Peer) {
  ExpectLayoutMatchesBtf({"xlb_peer_key",
                          sizeof(xlb_peer_key),
                          {XLB_MEMBER(xlb_peer_key, addr), XLB_MEMBER(xlb_peer_key, family),
                           XLB_MEMBER(xlb_peer_key, pad)}});
  ExpectLayoutMatchesBtf({"xlb_peer",
                          sizeof(xlb_peer),
                          {XLB_MEMBER(xlb_peer, cluster_id), XLB_MEMBER(xlb_peer, pad)}});
  ExpectLayoutMatchesBtf({"xlb_nexthop_key",
                          sizeof(xlb_nexthop_key),
                          {XLB_MEMBER(xlb_nexthop_key, addr), XLB_MEMBER(xlb_nexthop_key, ifindex),
                           XLB_MEMBER(xlb_nexthop_key, family), XLB_MEMBER(xlb_nexthop_key, pad)}});
  ExpectLayoutMatchesBtf({"xlb_nexthop",
                          sizeof(xlb_nexthop),
                          {XLB_MEMBER(xlb_nexthop, expires), XLB_MEMBER(xlb_nexthop, ifindex),
                           XLB_MEMBER(xlb_nexthop, dmac), XLB_MEMBER(xlb_nexthop, smac),
                           XLB_MEMBER(xlb_nexthop, mtu), XLB_MEMBER(xlb_nexthop, pad)}});
}

// Socket LB's own layouts live in the xlb_sock object.
TEST(AbiBtf, SockRevKey) {
  ExpectLayoutMatchesBtf({"xlb_sock_rev_key",
                          sizeof(xlb_sock_rev_key),
                          {XLB_MEMBER(xlb_sock_rev_key, cookie), XLB_MEMBER(xlb_sock_rev_key, addr),
                           XLB_MEMBER(xlb_sock_rev_key, port), XLB_MEMBER(xlb_sock_rev_key, family),
                           XLB_MEMBER(xlb_sock_rev_key, pad)}},
                         XLB_SOCK_OBJECT);
}

TEST(AbiBtf, SockRev) {
  ExpectLayoutMatchesBtf({"xlb_sock_rev",
                          sizeof(xlb_sock_rev),
                          {XLB_MEMBER(xlb_sock_rev, addr), XLB_MEMBER(xlb_sock_rev, port),
                           XLB_MEMBER(xlb_sock_rev, family), XLB_MEMBER(xlb_sock_rev, pad),
                           XLB_MEMBER(xlb_sock_rev, service_id)}},
                         XLB_SOCK_OBJECT);
}

TEST(AbiBtf, SockNode) {
  ExpectLayoutMatchesBtf({"xlb_sock_node",
                          sizeof(xlb_sock_node),
                          {XLB_MEMBER(xlb_sock_node, addr4), XLB_MEMBER(xlb_sock_node, addr6)}},
                         XLB_SOCK_OBJECT);
}

TEST(AbiBtf, SockConfig) {
  ExpectLayoutMatchesBtf(
      {"xlb_sock_config", sizeof(xlb_sock_config), {XLB_MEMBER(xlb_sock_config, netns_cookie)}},
      XLB_SOCK_OBJECT);
}

}  // namespace
