// The human table: a header row, columns as wide as their widest cell, numbers to the right.
#include "userspace/cli/table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "userspace/cli/format.h"

namespace xlb::cli {
namespace {

TEST(Table, AlignsColumnsAndRightAlignsNumbers) {
  Table t({{"ID", Table::Align::kRight}, {"ADDRESS"}, {"PATH"}});
  t.Add({"7", "198.18.1.1:8080", "routed"});
  t.Add({"12", "[2001:db8::1]:80", "tunnel 198.18.0.21"});
  t.Add({"3"});  // short rows are padded
  EXPECT_EQ(t.Render(),
            "ID  ADDRESS           PATH\n"
            " 7  198.18.1.1:8080   routed\n"
            "12  [2001:db8::1]:80  tunnel 198.18.0.21\n"
            " 3\n");
}

TEST(Format, AddressesAgesAndPercentages) {
  const __be32 v4[4] = {htonl(0xc6120101), 0, 0, 0};
  EXPECT_EQ(HostPort(v4, XLB_FAMILY_IPV4, 8080), "198.18.1.1:8080");
  __be32 v6[4] = {htonl(0x20010db8), 0, 0, htonl(1)};
  EXPECT_EQ(HostPort(v6, XLB_FAMILY_IPV6, 80), "[2001:db8::1]:80");
  EXPECT_EQ(AgeText(0.31), "0.3s");
  EXPECT_EQ(AgeText(187), "3m07s");
  EXPECT_EQ(AgeText(7380), "2h03m");
  EXPECT_EQ(Percent(70.123), "70.12 %");
  EXPECT_EQ(Hex32(0x786c6231), "0x786c6231");
  EXPECT_EQ(ProtoName(6), "tcp");
  EXPECT_EQ(CtStateName(XLB_CT_SYN_SENT), "syn_sent");
}

}  // namespace
}  // namespace xlb::cli
