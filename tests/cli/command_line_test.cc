// xlbctl's command line as a newcomer meets it: help after any command prints that command's
// part, options may come before the command, and on a node where nothing is loaded every
// command says so the same way (or, for unload and uninstall, that there was nothing to
// remove). No root: nothing here touches the kernel's objects.
#include "userspace/cli/command_line.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_env.h"

namespace xlb::testing {
namespace {

using cli::ParseCommandLine;

std::string Xlbctl(const std::string& args) {
  return std::string(XLBCTL) + " " + args;
}

TEST(CommandLine, OptionsComeBeforeOrAfterTheCommand) {
  for (const std::vector<std::string>& words :
       {std::vector<std::string>{"-o", "json", "--pin-dir", "/p", "services"},
        std::vector<std::string>{"services", "--pin-dir", "/p", "-o", "json"}}) {
    auto line = ParseCommandLine(words);
    ASSERT_TRUE(line.ok()) << line.error();
    EXPECT_EQ(line->command, "services");
    EXPECT_TRUE(line->inspect.json);
    EXPECT_EQ(line->inspect.pin_dir, "/p");
  }
  auto line = ParseCommandLine(std::vector<std::string>{"uninstall"});
  ASSERT_TRUE(line.ok()) << line.error();
  EXPECT_EQ(line->pin_dir, XLB_PIN_DIR);
}

TEST(CommandLine, SaysWhatIsWrong) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "missing command"},
      {{"frobnicate"}, "unknown command frobnicate"},
      {{"status", "--frob"}, "unknown option --frob"},
      {{"status", "--pin-dir"}, "--pin-dir needs a value"},
      {{"-o", "yaml", "status"}, "-o yaml: json or table"},
      {{"conntrack", "--limit", "ten"}, "--limit ten: a number (0 = no limit)"},
  };
  for (const auto& [words, problem] : cases) {
    auto line = ParseCommandLine(words);
    ASSERT_FALSE(line.ok()) << problem;
    EXPECT_EQ(line.error(), problem);
  }
}

TEST(CommandLine, EveryCommandHasItsOwnHelp) {
  for (const cli::CommandHelp& c : cli::Commands()) {
    const std::string own = "xlbctl " + std::string(c.name);
    for (const std::string& args : {std::string(c.name) + " --help", std::string(c.name) + " -h",
                                    "-o json " + std::string(c.name) + " --help"}) {
      const CommandResult r = RunCommand(Xlbctl(args));
      EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
      EXPECT_NE(r.output.find(own), std::string::npos) << args << "\n" << r.output;
      if (c.name != "help") {  // whose help is all of it
        const std::string other = c.name == "status" ? "xlbctl services" : "xlbctl status";
        EXPECT_EQ(r.output.find(other), std::string::npos)
            << args << ": only " << c.name << "'s help\n"
            << r.output;
      }
    }
  }
  const CommandResult topic = RunCommand(Xlbctl("help uninstall"));
  EXPECT_EQ(topic.status, 0) << topic.output;
  EXPECT_NE(topic.output.find("xlbctl uninstall"), std::string::npos) << topic.output;
  EXPECT_EQ(topic.output.find("xlbctl status"), std::string::npos) << topic.output;
  for (const char* all : {"--help", "help", "-h"}) {
    const CommandResult r = RunCommand(Xlbctl(all));
    EXPECT_EQ(r.status, 0) << all;
    for (const cli::CommandHelp& c : cli::Commands()) {
      EXPECT_NE(r.output.find(c.usage), std::string::npos) << all << " lacks " << c.name;
    }
  }
  EXPECT_EQ(RunCommand(Xlbctl("frobnicate --help")).status, 2);
  EXPECT_EQ(RunCommand(Xlbctl("help frobnicate")).status, 2);
}

TEST(CommandLine, NothingLoadedReadsTheSameEverywhere) {
  const std::string dir = "/tmp/" + UniqueName("xlb-never-loaded");  // never created
  const std::string said = "xlb is not loaded (no pins under " + dir;
  for (const char* command : {"reasons", "-o json reasons", "status", "-o json services",
                              "backends", "stats", "conntrack"}) {
    const CommandResult r = RunCommand(Xlbctl(std::string(command) + " --pin-dir " + dir));
    EXPECT_EQ(r.status, 1) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(said), std::string::npos) << command << "\n" << r.output;
  }
  const CommandResult unload = RunCommand(Xlbctl("unload --pin-dir " + dir));
  EXPECT_EQ(unload.status, 0) << unload.output;
  EXPECT_NE(unload.output.find("nothing was pinned under " + dir), std::string::npos)
      << unload.output;
  EXPECT_EQ(unload.output.find("xlb pins"), std::string::npos) << unload.output;
}

}  // namespace
}  // namespace xlb::testing
