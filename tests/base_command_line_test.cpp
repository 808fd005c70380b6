// base::CommandLine: the argument style every program shares.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/command_line.h"

namespace adascale::base {
namespace {

// The options of a typical program, bound to members so each test starts from the defaults.
struct Program {
  std::string bundle, branch, backend = "xnnpack";
  int threads = 1;
  int64_t limit = -1;
  double scale = 0.5;
  std::vector<std::string> includes;
  bool list = false;
  std::vector<std::string> overrides;
  CommandLine cli{"prog run", "runs things"};

  Program() {
    cli.option("bundle", &bundle, "the bundle folder", "DIR")
        .required("bundle")
        .option("--branch", &branch, "the branch to run", "NAME")
        .option("backend", &backend, "xnnpack or reference")
        .option("threads", &threads, "worker threads")
        .range("threads", 1, 64)
        .option("limit", &limit, "at most N images")
        .default_text("limit", "all")
        .option("scale", &scale, "a factor\nsecond line of help")
        .option("include", &includes, "a file to include", "FILE")
        .flag("list", &list, "print and exit");
  }
  CommandLine::Outcome parse(const std::vector<std::string>& args) { return cli.parse(args); }
};

// The UsageError message of parsing `args`, or "" when none is thrown.
std::string usage_error(Program& p, const std::vector<std::string>& args) {
  try {
    p.parse(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(BaseCommandLine, ValuesFlagsAndTheEqualsForm) {
  Program p;
  EXPECT_EQ(p.parse({"--bundle", "a.bundle", "--branch=wide", "--threads", "4", "--limit=7",
                     "--scale", "-1.5e2", "--list"}),
            CommandLine::Outcome::kRun);
  EXPECT_EQ(p.bundle, "a.bundle");
  EXPECT_EQ(p.branch, "wide");
  EXPECT_EQ(p.threads, 4);
  EXPECT_EQ(p.limit, 7);
  EXPECT_DOUBLE_EQ(p.scale, -150);
  EXPECT_TRUE(p.list);
  EXPECT_EQ(p.backend, "xnnpack");  // untouched default
  EXPECT_TRUE(p.cli.given("branch"));
  EXPECT_TRUE(p.cli.given("--list"));
  EXPECT_FALSE(p.cli.given("backend"));

  Program q;
  q.parse({"--bundle=x=y", "--branch=", "--limit", "-3"});
  EXPECT_EQ(q.bundle, "x=y");  // the first '=' splits
  EXPECT_EQ(q.branch, "");
  EXPECT_EQ(q.limit, -3);  // a negative number is a value, not an option
}

TEST(BaseCommandLine, UnknownOptionsAndArgumentsAreRefused) {
  Program p;
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--bogus"}), "unknown option '--bogus' (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--bogus=1"}),
            "unknown option '--bogus' (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "-x"}), "unknown option '-x' (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "stray"}), "unexpected argument 'stray' (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--train.epochs", "3"}),
            "unknown option '--train.epochs' (see --help)");
}

TEST(BaseCommandLine, MissingRepeatedAndRequired) {
  Program p;
  EXPECT_EQ(usage_error(p, {"--bundle"}), "--bundle needs a value (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "--list"}), "--bundle needs a value (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "a", "--bundle", "b"}),
            "--bundle is given twice (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "a", "--list", "--list"}),
            "--list is given twice (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "a", "--list=yes"}), "--list takes no value (see --help)");
  EXPECT_EQ(usage_error(p, {"--list"}), "--bundle is required (see --help)");
  EXPECT_EQ(usage_error(p, {}), "--bundle is required (see --help)");
}

TEST(BaseCommandLine, NumbersAreStrict) {
  for (const char* bad : {"12x", "", " 3", "3 ", "0x10", "1.5", "+", "-", "1e3"}) {
    Program p;
    EXPECT_EQ(usage_error(p, {"--bundle", "b", "--limit", bad}),
              std::string("--limit: expected an integer, got '") + bad + "' (see --help)")
        << bad;
  }
  Program p;
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--limit", "99999999999999999999"}),
            "--limit: expected an integer, got '99999999999999999999' (out of range) (see --help)");
  // int holds less than int64_t
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--threads=4294967297"}),
            "--threads: expected an integer from 1 to 64, got '4294967297' (out of range) (see "
            "--help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--threads", "0"}),
            "--threads: expected an integer from 1 to 64, got '0' (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--threads", "65"}),
            "--threads: expected an integer from 1 to 64, got '65' (see --help)");
  for (const char* bad : {"nan", "inf", "1e999", "1.", "x1", "1e", ".", "0x1p3", "1,5"}) {
    Program q;
    const std::string error = usage_error(q, {"--bundle", "b", "--scale", bad});
    // "1." is written the way C allows; every other one is refused
    if (std::string(bad) == "1.") {
      EXPECT_EQ(error, "");
      EXPECT_DOUBLE_EQ(q.scale, 1.0);
      continue;
    }
    EXPECT_EQ(error.rfind(std::string("--scale: expected a number, got '") + bad + "'", 0), 0u)
        << error;
  }
  Program q;
  q.parse({"--bundle", "b", "--scale", ".25", "--limit", "+9"});
  EXPECT_DOUBLE_EQ(q.scale, 0.25);
  EXPECT_EQ(q.limit, 9);
}

TEST(BaseCommandLine, RepeatableOptionsAppend) {
  Program p;
  p.parse({"--include", "a", "--bundle", "b", "--include=c", "--include", "d"});
  EXPECT_EQ(p.includes, (std::vector<std::string>{"a", "c", "d"}));
}

TEST(BaseCommandLine, DottedOptionsPassThroughInOrder) {
  Program p;
  p.cli.dotted_options(&p.overrides, "a config key");
  p.parse({"--train.epochs", "5", "--bundle", "b", "--data.root=/x", "--a.b.c=", "--list"});
  EXPECT_EQ(p.overrides,
            (std::vector<std::string>{"--train.epochs", "5", "--data.root", "/x", "--a.b.c", ""}));
  EXPECT_TRUE(p.list);
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--train.epochs"}),
            "--train.epochs needs a value (see --help)");
  EXPECT_EQ(usage_error(p, {"--bundle", "b", "--train"}), "unknown option '--train' (see --help)");
}

TEST(BaseCommandLine, HelpListsEveryOptionWithItsDefault) {
  Program p;
  p.cli.dotted_options(&p.overrides, "a config key").epilog("modes: one or two");
  const std::string help = p.cli.help();
  EXPECT_EQ(help.rfind("usage: prog run --bundle DIR [options]\nruns things\n", 0), 0u) << help;
  for (const char* line :
       {"  --bundle DIR         the bundle folder (required)\n",
        "  --branch NAME        the branch to run\n",
        "  --backend VALUE      xnnpack or reference (default xnnpack)\n",
        "  --threads N          worker threads (default 1)\n",
        "  --limit N            at most N images (default all)\n",
        "  --scale X            a factor\n                       second line of help (default "
        "0.5)\n",
        "  --include FILE       a file to include (repeatable)\n",
        "  --list               print and exit\n", "  --SECTION.KEY VALUE  a config key\n",
        "  -h, --help           print this help and exit\n",
        "  --version            print the version and exit\n", "\nmodes: one or two\n"})
    EXPECT_NE(help.find(line), std::string::npos) << line << "missing in\n" << help;
}

TEST(BaseCommandLine, HelpAndVersionWinOverMistakes) {
  Program p;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(p.parse({"--bogus", "-h"}), CommandLine::Outcome::kHelp);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), p.cli.help());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(p.parse({"--help"}), CommandLine::Outcome::kHelp);  // no --bundle needed
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), p.cli.help());
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(p.parse({"--threads", "0", "--version"}), CommandLine::Outcome::kVersion);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            std::string("prog run ") + ADASCALE_VERSION + "\n");
  EXPECT_EQ(p.cli.version(), std::string("prog run ") + ADASCALE_VERSION);
}

TEST(BaseCommandLine, ArgcArgvSkipsTheProgramName) {
  Program p;
  const char* argv[] = {"/usr/bin/prog", "--bundle", "b", "--threads", "3"};
  EXPECT_EQ(p.cli.parse(5, argv), CommandLine::Outcome::kRun);
  EXPECT_EQ(p.bundle, "b");
  EXPECT_EQ(p.threads, 3);
}

TEST(BaseCommandLine, BuilderMistakesAreLogicErrors) {
  std::string a, b;
  int n = 0;
  CommandLine cli("p", "s");
  cli.option("x", &a, "x");
  EXPECT_THROW(cli.option("--x", &b, "again"), std::logic_error);
  EXPECT_THROW(cli.option("help", &b, "reserved"), std::logic_error);
  EXPECT_THROW(cli.required("y"), std::logic_error);
  EXPECT_THROW(cli.range("x", 0, 1), std::logic_error);  // not a number
  cli.option("n", &n, "n");
  EXPECT_NO_THROW(cli.range("n", 0, 1));
}

}  // namespace
}  // namespace adascale::base
