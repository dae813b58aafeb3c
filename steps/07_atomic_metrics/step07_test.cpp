// Stage 07 over real TCP: the atomic counters are exact while many threads update them and are
// reported while the stage runs. Under the tsan preset the correct variant runs under
// ThreadSanitizer, so a race in it fails these tests; the broken plain counters are checked by
// step07_tsan_test (lost counts are too rare on two cores to count deterministically).
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

// `n` events of amount 1 spread over 64 users.
std::string events(std::size_t n) {
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    text += R"({"user":"user)" + std::to_string(i % 64) +
            R"(","action":"buy","amount":1})"
            "\n";
  }
  return text;
}

// Sends `text` on one connection, waits until the stage has read all of it, stops the stage and
// returns its `stats:` and final `metrics:` lines.
std::pair<std::string, std::string> run(StageProcess& stage, const std::string& text) {
  Client client(stage.port());
  EXPECT_TRUE(client.send(text, deadline_in(kTimeout)));
  client.shutdown_write();
  EXPECT_TRUE(stage.wait_for_line("connection 1 closed"));
  stage.signal(SIGTERM);
  EXPECT_EQ(stage.wait_exit(), 0);
  const auto metrics = stage.lines_with_prefix("metrics: ");
  return {stage.wait_for_line("stats: ").value_or(""), metrics.empty() ? "" : metrics.back()};
}

// 4 workers and the connection thread count into shared atomics: every count is exact.
// received = accepted + rejected + invalid, and the shared `processed` equals the sum of what
// each worker counted on its own.
TEST(Step07, AtomicCountersAreExact) {
  StageProcess stage(STAGE_BINARY,
                     {"--quiet", "--workers", "4", "--capacity", "1000", "--report-ms", "10"});
  const auto [stats, metrics] = run(stage, events(20'000) + "not json\n{}\n");
  EXPECT_EQ(field(metrics, "received"), 20'002u) << metrics;
  EXPECT_EQ(field(metrics, "invalid"), 2u) << metrics;
  EXPECT_EQ(field(metrics, "accepted"), field(stats, "accepted")) << metrics << '\n' << stats;
  EXPECT_EQ(field(metrics, "rejected"), field(stats, "rejected")) << metrics << '\n' << stats;
  EXPECT_EQ(field(metrics, "processed"), field(stats, "processed")) << metrics << '\n' << stats;
  EXPECT_EQ(field(metrics, "accepted").value_or(0) + field(metrics, "rejected").value_or(0),
            20'000u)
      << metrics;
}

// The counters are reported while the stage runs: one slow worker (2 ms per event) takes at least
// a second for 500 events, and a report every 20 ms shows it part-way.
TEST(Step07, ReportsProgressWhileRunning) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--workers", "1", "--consumer-delay-us", "2000",
                                    "--report-ms", "20"});
  Client client(stage.port());
  ASSERT_TRUE(client.send(events(500)));
  bool part_way = false;
  for (std::size_t seen = 1; !part_way && stage.wait_for_count("metrics: ", seen); ++seen) {
    const std::string line = stage.lines_with_prefix("metrics: ")[seen - 1];
    const std::uint64_t processed = field(line, "processed").value_or(0);
    part_way = processed > 0 && processed < 500;
  }
  EXPECT_TRUE(part_way);
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step07");
}

}  // namespace
}  // namespace anubis::steps
