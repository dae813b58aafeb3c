// anubis-load's command line: names map to their values, and refusals name the valid choices.
#include "load/options.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace anubis::harness::load {
namespace {

struct Parsed {
  std::optional<int> exit_code;
  Options options;
  std::string errors;  // what the parser printed on stderr
};

Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "anubis-load");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  Parsed parsed;
  testing::internal::CaptureStderr();
  parsed.exit_code = parse_options(static_cast<int>(argv.size()), argv.data(), parsed.options);
  parsed.errors = testing::internal::GetCapturedStderr();
  return parsed;
}

// --target and --distribution take names and map them to the matching modes.
TEST(LoadOptions, NamesMapToModes) {
  const Parsed parsed = parse({"--port", "1", "--target", "redis", "--distribution", "zipf"});
  ASSERT_FALSE(parsed.exit_code) << parsed.errors;
  EXPECT_EQ(parsed.options.target, Target::redis);
  EXPECT_EQ(parsed.options.mix.distribution, Distribution::zipf);
  const Parsed defaults = parse({"--port", "1"});
  EXPECT_EQ(defaults.options.target, Target::anubis);
  EXPECT_EQ(defaults.options.mix.distribution, Distribution::uniform);
}

// An unknown name is refused with exit 2 and a message that lists the valid names.
TEST(LoadOptions, UnknownNamesListTheChoices) {
  const Parsed target = parse({"--port", "1", "--target", "memcached"});
  EXPECT_EQ(target.exit_code, kExitUnusable);
  EXPECT_NE(target.errors.find("memcached not in {anubis,redis}"), std::string::npos)
      << target.errors;
  const Parsed distribution = parse({"--port", "1", "--distribution", "pareto"});
  EXPECT_EQ(distribution.exit_code, kExitUnusable);
  EXPECT_NE(distribution.errors.find("pareto not in {uniform,zipf}"), std::string::npos)
      << distribution.errors;
}

// Out-of-range counts and closed-loop flags in the open loop are refused, naming the flag.
TEST(LoadOptions, RefusesContradictionsAndRanges) {
  const Parsed zero = parse({"--port", "1", "--events", "0"});
  EXPECT_EQ(zero.exit_code, kExitUnusable);
  EXPECT_NE(zero.errors.find("--events"), std::string::npos) << zero.errors;
  EXPECT_LT(zero.errors.size(), 200U) << zero.errors;  // one readable line, no 300-digit bound
  const Parsed both = parse({"--port", "1", "--rate", "10", "--pipeline", "4"});
  EXPECT_EQ(both.exit_code, kExitUnusable);
  EXPECT_NE(both.errors.find("--pipeline applies to the closed loop only"), std::string::npos);
}

// --check stops after validation: exit 0 for flags a run would accept, and the same refusal as a
// run for flags it would not, including those refused after parsing (the user prefix).
TEST(LoadOptions, CheckValidatesWithoutRunning) {
  const Parsed ok = parse({"--check", "--port", "1", "--users", "10", "--rate", "100"});
  EXPECT_EQ(ok.exit_code, kExitOk) << ok.errors;
  const Parsed range = parse({"--check", "--port", "1", "--sell-ratio", "1.5"});
  EXPECT_EQ(range.exit_code, kExitUnusable);
  EXPECT_NE(range.errors.find("--sell-ratio"), std::string::npos) << range.errors;
  const Parsed prefix = parse({"--check", "--port", "1", "--user-prefix", "a\\b"});
  EXPECT_EQ(prefix.exit_code, kExitUnusable);
  EXPECT_NE(prefix.errors.find("--user-prefix"), std::string::npos) << prefix.errors;
}

}  // namespace
}  // namespace anubis::harness::load
