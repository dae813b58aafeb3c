// anubis-load's command line: names map to their values, and refusals name the valid choices.
#include "load/options.hpp"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
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
  // A seed is used as given or refused: never wrapped (-1) or clamped (2^64) to another one.
  for (const char* bad_seed : {"-1", "18446744073709551616", "1.5", "12abc", ""}) {
    const Parsed seed = parse({"--port", "1", "--seed", bad_seed});
    EXPECT_EQ(seed.exit_code, kExitUnusable) << bad_seed;
    EXPECT_NE(seed.errors.find("--seed"), std::string::npos) << seed.errors;
  }
  const Parsed largest = parse({"--port", "1", "--seed", "18446744073709551615"});
  ASSERT_FALSE(largest.exit_code) << largest.errors;
  EXPECT_EQ(largest.options.seed, 18446744073709551615U);
  const Parsed uniform_zipf_s = parse({"--port", "1", "--zipf-s", "1.2"});
  EXPECT_EQ(uniform_zipf_s.exit_code, kExitUnusable);
  EXPECT_NE(uniform_zipf_s.errors.find("--zipf-s applies to --distribution zipf only"),
            std::string::npos)
      << uniform_zipf_s.errors;
  for (const char* open_loop_only : {"--max-inflight", "--timeout-ms"}) {
    const Parsed closed = parse({"--port", "1", open_loop_only, "8"});
    EXPECT_EQ(closed.exit_code, kExitUnusable) << open_loop_only;
    EXPECT_NE(closed.errors.find(std::string(open_loop_only) + " applies to the open loop"),
              std::string::npos)
        << closed.errors;
  }
}

// NaN passes every range check (each comparison with it is false), so each real-valued flag
// refuses it explicitly: a NaN duration or rate would otherwise abort or hang the run.
TEST(LoadOptions, RefusesNotANumber) {
  for (const char* flag : {"--rate", "--duration", "--warmup", "--zipf-s", "--sell-ratio"}) {
    const Parsed parsed = parse({"--check", "--port", "1", flag, "nan"});
    EXPECT_EQ(parsed.exit_code, kExitUnusable) << flag;
    EXPECT_NE(parsed.errors.find(flag), std::string::npos) << parsed.errors;
  }
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

// --check also refuses what the run would only discover later: a --json-out it cannot write
// (found without creating the file), a CPU it cannot pin to and a host it cannot resolve.
TEST(LoadOptions, CheckRefusesUnwritableOutputAndForeignCpus) {
  const Parsed no_directory =
      parse({"--check", "--port", "1", "--json-out", "/nonexistent-dir/out.json"});
  EXPECT_EQ(no_directory.exit_code, kExitUnusable);
  EXPECT_NE(no_directory.errors.find("/nonexistent-dir/out.json"), std::string::npos)
      << no_directory.errors;
  const Parsed empty = parse({"--check", "--port", "1", "--json-out", ""});
  EXPECT_EQ(empty.exit_code, kExitUnusable);
  EXPECT_NE(empty.errors.find("--json-out needs a file name"), std::string::npos) << empty.errors;
  const Parsed directory = parse({"--check", "--port", "1", "--json-out", "/tmp"});
  EXPECT_EQ(directory.exit_code, kExitUnusable);
  EXPECT_NE(directory.errors.find("directory"), std::string::npos) << directory.errors;

  const std::string dangling = testing::TempDir() + "load-options-dangling.json";
  std::remove(dangling.c_str());
  ASSERT_EQ(::symlink("/nonexistent-dir/out.json", dangling.c_str()), 0);
  const Parsed link = parse({"--check", "--port", "1", "--json-out", dangling});
  std::remove(dangling.c_str());
  EXPECT_EQ(link.exit_code, kExitUnusable);
  EXPECT_NE(link.errors.find("symbolic link to nothing"), std::string::npos) << link.errors;

  const std::string fresh = testing::TempDir() + "load-options-check.json";
  std::remove(fresh.c_str());
  const Parsed writable = parse({"--check", "--port", "1", "--json-out", fresh});
  EXPECT_EQ(writable.exit_code, kExitOk) << writable.errors;
  struct stat st {};
  EXPECT_NE(::stat(fresh.c_str(), &st), 0) << "--check created " << fresh;

  const Parsed cpus = parse({"--check", "--port", "1", "--cpus", "4095"});
  EXPECT_EQ(cpus.exit_code, kExitUnusable);
  EXPECT_NE(cpus.errors.find("CPU 4095"), std::string::npos) << cpus.errors;
  const Parsed current =
      parse({"--check", "--port", "1", "--cpus", std::to_string(::sched_getcpu())});
  EXPECT_EQ(current.exit_code, kExitOk) << current.errors;  // the CPU running us is allowed

  // A name that can never resolve (RFC 6761 reserves .invalid) and an address that is no address.
  for (const char* host : {"anubis-load-test.invalid", "999.1.1.1"}) {
    const Parsed unresolvable = parse({"--check", "--port", "1", "--host", host});
    EXPECT_EQ(unresolvable.exit_code, kExitUnusable) << host;
    EXPECT_NE(unresolvable.errors.find(std::string("cannot resolve ") + host), std::string::npos)
        << unresolvable.errors;
  }
}

}  // namespace
}  // namespace anubis::harness::load
