// util/text.h: values quoted in messages are cut between UTF-8 characters, never inside one.
#include "util/text.h"

#include <gtest/gtest.h>

#include <string>

namespace xlb {
namespace {

TEST(AbbreviateUtf8, ShortTextIsKept) {
  EXPECT_EQ(AbbreviateUtf8("", 8), "");
  EXPECT_EQ(AbbreviateUtf8("12345678", 8), "12345678");
  EXPECT_EQ(AbbreviateUtf8("gr\xC3\xBC\xC3\x9F", 6), "gr\xC3\xBC\xC3\x9F");  // "grüß", 6 bytes
}

TEST(AbbreviateUtf8, AsciiIsCutAtTheLimit) {
  EXPECT_EQ(AbbreviateUtf8("123456789", 8), "12345...");
}

// Each width of character with its first, middle and last byte at the cut.
TEST(AbbreviateUtf8, MultiByteCharactersAreNeverSplit) {
  const std::string two = "\xC3\xBC";           // ü
  const std::string three = "\xE2\x82\xAC";     // €
  const std::string four = "\xF0\x9F\x98\x80";  // 😀
  // The cut is at byte max - 3.
  EXPECT_EQ(AbbreviateUtf8("abcd" + two + "xyzzy", 7), "abcd...");  // before ü
  EXPECT_EQ(AbbreviateUtf8("abcd" + two + "xyzzy", 8), "abcd...");  // inside ü
  EXPECT_EQ(AbbreviateUtf8("abcd" + two + "xyzzy", 9), "abcd" + two + "...");
  EXPECT_EQ(AbbreviateUtf8("ab" + three + "xyzzy", 6), "ab...");  // inside € (byte 2)
  EXPECT_EQ(AbbreviateUtf8("ab" + three + "xyzzy", 7), "ab...");  // inside € (byte 3)
  EXPECT_EQ(AbbreviateUtf8("ab" + three + "xyzzy", 8), "ab" + three + "...");
  for (size_t max = 5; max <= 7; ++max) {
    EXPECT_EQ(AbbreviateUtf8("a" + four + "xyzzy", max), "a...") << max;  // inside 😀
  }
  EXPECT_EQ(AbbreviateUtf8("a" + four + "xyzzy", 8), "a" + four + "...");
  EXPECT_EQ(AbbreviateUtf8(four + four, 6), "...");  // nothing whole fits
}

TEST(TrimAsciiSpace, TrimsBothEnds) {
  EXPECT_EQ(TrimAsciiSpace(" \t198.18.0.0/15 \n"), "198.18.0.0/15");
  EXPECT_EQ(TrimAsciiSpace("   "), "");
  EXPECT_EQ(TrimAsciiSpace("a b"), "a b");
}

}  // namespace
}  // namespace xlb
