// Stage 03 over real TCP: a bounded channel refuses events once full and never holds more than
// its capacity; the broken unbounded variant really lets the backlog grow far past it.
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

std::string events(std::size_t n) {
  std::string text;
  for (std::size_t i = 1; i <= n; ++i) {
    text += R"({"user":"alice","action":"buy","amount":)" + std::to_string(i) + "}\n";
  }
  return text;
}

// Sends `n` events on one connection, waits until the stage has read them all, stops it and
// returns its `stats:` line.
std::string flood(StageProcess& stage, std::size_t n) {
  Client client(stage.port());
  EXPECT_TRUE(client.send(events(n), deadline_in(kTimeout)));
  client.shutdown_write();
  EXPECT_TRUE(stage.wait_for_line("connection 1 closed"));
  stage.signal(SIGTERM);
  EXPECT_EQ(stage.wait_exit(), 0);
  return stage.wait_for_line("stats: ").value_or("");
}

// A consumer that keeps up sees every event, in order; nothing is rejected.
TEST(Channel, ConsumerProcessesEveryEventInOrder) {
  StageProcess stage(STAGE_BINARY, {"--capacity", "1024"});
  Client client(stage.port());
  ASSERT_TRUE(client.send(events(100)));
  ASSERT_TRUE(stage.wait_for_count("event: ", 100));
  const auto processed = stage.lines_with_prefix("event: ");
  for (std::size_t i = 0; i < processed.size(); ++i) {
    EXPECT_EQ(processed[i], "event: user=alice action=buy amount=" + std::to_string(i + 1));
  }
  stage.signal(SIGTERM);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string stats = stage.wait_for_line("stats: ").value_or("");
  EXPECT_EQ(field(stats, "accepted"), 100u) << stats;
  EXPECT_EQ(field(stats, "rejected"), 0u) << stats;
  EXPECT_EQ(field(stats, "processed"), 100u) << stats;
}

// With a consumer slowed to 100 ms per event, 50 events sent at once overflow a channel of 10:
// the channel fills to exactly its capacity, never beyond, and the rest are rejected one by one.
// Margin: the consumer can take at most one event per 100 ms while the 50 are read, so at least
// 30 must be rejected unless reading 50 lines took over 1 s.
TEST(Channel, RejectsWhenFull) {
  StageProcess stage(STAGE_BINARY, {"--capacity", "10", "--consumer-delay-us", "100000"});
  const std::string stats = flood(stage, 50);
  const auto rejected = stage.lines_with_prefix("rejected: channel full").size();
  EXPECT_GE(rejected, 30u);
  EXPECT_EQ(field(stats, "rejected"), rejected) << stats;
  EXPECT_EQ(field(stats, "accepted").value_or(0) + rejected, 50u) << stats;
  EXPECT_EQ(field(stats, "max_depth"), 10u) << stats;
}

// Break it on purpose: the unbounded channel rejects nothing and its backlog grows far beyond
// the capacity. 20,000 events against a consumer taking 1 ms each: the depth exceeds 10 times
// the capacity (1,000) unless reading the flood took over 19 s.
TEST(Channel, UnboundedBacklogGrowsFarPastCapacity) {
  StageProcess stage(STAGE_BINARY,
                     {"--capacity", "100", "--consumer-delay-us", "1000", "--break", "unbounded"});
  const std::string stats = flood(stage, 20'000);
  EXPECT_EQ(field(stats, "rejected"), 0u) << stats;
  EXPECT_EQ(field(stats, "accepted"), 20'000u) << stats;
  EXPECT_GT(field(stats, "max_depth").value_or(0), 1'000u) << stats;
}

// The same flood against the bounded channel: the depth stays within the capacity and the
// excess is counted as rejected.
TEST(Channel, BoundedBacklogStaysWithinCapacity) {
  StageProcess stage(STAGE_BINARY, {"--capacity", "100", "--consumer-delay-us", "1000"});
  const std::string stats = flood(stage, 20'000);
  EXPECT_LE(field(stats, "max_depth").value_or(1'000'000), 100u) << stats;
  EXPECT_GT(field(stats, "rejected").value_or(0), 18'000u) << stats;
  EXPECT_EQ(field(stats, "accepted").value_or(0) + field(stats, "rejected").value_or(0), 20'000u)
      << stats;
}

// Flags out of range are refused with status 2.
TEST(Channel, RefusesBadFlags) {
  for (const char* bad : {"--capacity=0", "--break=lock"}) {
    const std::string text(bad);
    const auto eq = text.find('=');
    StageProcess stage(STAGE_BINARY, {text.substr(0, eq), text.substr(eq + 1)},
                       {.wait_listening = false});
    EXPECT_EQ(stage.wait_exit(), 2) << bad;
  }
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step03");
}

}  // namespace
}  // namespace anubis::steps
