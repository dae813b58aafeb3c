// Stage 05 over real TCP: every event is forwarded to the workers and processed exactly once,
// through the bridge and directly; backpressure still reaches the clients through the bridge.
// Under the tsan preset the stage runs under ThreadSanitizer, which checks both hand-offs too.
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

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

// Three clients at once, 600 events each: all of them reach a worker, each once (the amounts'
// sum would differ if one were lost or doubled), none is rejected, and the latency line counts
// every one of them.
void forwards_every_event(const std::string& mode) {
  constexpr std::size_t kClients = 3;
  constexpr std::size_t kEach = 600;
  StageProcess stage(STAGE_BINARY, {"--mode", mode, "--workers", "2", "--capacity", "100000"});
  std::vector<Client> clients;
  for (std::size_t i = 0; i < kClients; ++i) clients.emplace_back(stage.port());
  for (Client& client : clients) ASSERT_TRUE(client.send(events(kEach)));
  ASSERT_TRUE(stage.wait_for_count("event: ", kClients * kEach));
  std::uint64_t sum = 0;
  for (const std::string& line : stage.lines_with_prefix("event: ")) {
    sum += field(line, "amount").value_or(0);
  }
  EXPECT_EQ(sum, kClients * kEach * (kEach + 1) / 2);
  stage.signal(SIGTERM);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string stats = stage.wait_for_line("stats: ").value_or("");
  EXPECT_EQ(field(stats, "accepted"), kClients * kEach) << stats;
  EXPECT_EQ(field(stats, "rejected"), 0u) << stats;
  EXPECT_EQ(field(stats, "processed"), kClients * kEach) << stats;
  EXPECT_EQ(field(stage.wait_for_line("latency: ").value_or(""), "events"), kClients * kEach);
}

// One worker at 100 ms per event, channels of 2, 40 events at once: the excess is rejected in
// both modes (through the bridge, once the bridge waits and the inbox has filled up), and no
// channel ever holds more than its capacity.
void rejects_when_full(const std::string& mode) {
  StageProcess stage(STAGE_BINARY, {"--mode", mode, "--workers", "1", "--capacity", "2",
                                    "--consumer-delay-us", "100000"});
  Client client(stage.port());
  ASSERT_TRUE(client.send(events(40)));
  client.shutdown_write();
  ASSERT_TRUE(stage.wait_for_line("connection 1 closed"));
  stage.signal(SIGTERM);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string stats = stage.wait_for_line("stats: ").value_or("");
  EXPECT_GE(field(stats, "rejected").value_or(0), 20u) << stats;
  EXPECT_EQ(field(stats, "accepted").value_or(0) + field(stats, "rejected").value_or(0), 40u);
  EXPECT_LE(field(stats, "max_depth").value_or(99), 2u) << stats;
}

TEST(Bridge, ForwardsEveryEvent) {
  forwards_every_event("bridge");
}
TEST(Direct, ForwardsEveryEvent) {
  forwards_every_event("direct");
}
TEST(Bridge, RejectsWhenFull) {
  rejects_when_full("bridge");
}
TEST(Direct, RejectsWhenFull) {
  rejects_when_full("direct");
}

// An unknown mode is refused with status 2.
TEST(Flags, RefusesUnknownMode) {
  StageProcess stage(STAGE_BINARY, {"--mode", "teleport"}, {.wait_listening = false});
  EXPECT_EQ(stage.wait_exit(), 2);
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step05");
}

}  // namespace
}  // namespace anubis::steps
