// Stage 04 over real TCP: a pool of worker threads processes every accepted event exactly once,
// several workers taking part; under the tsan preset the stage runs under ThreadSanitizer, so
// these tests also check that the channel shared by the threads is free of data races.
#include <gtest/gtest.h>

#include <csignal>
#include <set>
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

// 200 events, 4 workers, 5 ms of (sleeping) work per event: every event is processed exactly
// once, and all 4 workers take part. While one worker holds an event for 5 ms, the queued ones
// can only go to the others; the 200 events are queued within milliseconds, so a worker left
// out would mean the pool is not working in parallel.
TEST(Pool, EveryEventProcessedOnceByAllWorkers) {
  constexpr std::size_t kEvents = 200;
  StageProcess stage(STAGE_BINARY, {"--workers", "4", "--consumer-delay-us", "5000"});
  Client client(stage.port());
  ASSERT_TRUE(client.send(events(kEvents)));
  ASSERT_TRUE(stage.wait_for_count("event: ", kEvents));
  std::multiset<std::uint64_t> amounts;
  std::set<std::uint64_t> workers;
  for (const std::string& line : stage.lines_with_prefix("event: ")) {
    amounts.insert(field(line, "amount").value_or(0));
    workers.insert(field(line, "worker").value_or(0));
  }
  for (std::uint64_t amount = 1; amount <= kEvents; ++amount) {
    EXPECT_EQ(amounts.count(amount), 1u) << "amount " << amount;
  }
  EXPECT_EQ(workers, (std::set<std::uint64_t>{1, 2, 3, 4}));
  stage.signal(SIGTERM);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string stats = stage.wait_for_line("stats: ").value_or("");
  EXPECT_EQ(field(stats, "accepted"), kEvents) << stats;
  EXPECT_EQ(field(stats, "processed"), kEvents) << stats;
}

// Several clients at once, workers without delay: the pool keeps up, nothing is rejected and
// every event is processed (the sum of the amounts checks that none was processed twice).
TEST(Pool, ManyClientsNothingLost) {
  constexpr std::size_t kClients = 4;
  constexpr std::size_t kEach = 500;
  StageProcess stage(STAGE_BINARY, {"--workers", "3", "--capacity", "100000"});
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
  EXPECT_EQ(field(stats, "rejected"), 0u) << stats;
  EXPECT_EQ(field(stats, "processed"), kClients * kEach) << stats;
}

// The pool still refuses when full: one slow worker, a channel of 5, 40 events at once.
TEST(Pool, RejectsWhenFull) {
  StageProcess stage(STAGE_BINARY,
                     {"--workers", "1", "--capacity", "5", "--consumer-delay-us", "100000"});
  Client client(stage.port());
  ASSERT_TRUE(client.send(events(40)));
  client.shutdown_write();
  ASSERT_TRUE(stage.wait_for_line("connection 1 closed"));
  stage.signal(SIGTERM);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string stats = stage.wait_for_line("stats: ").value_or("");
  EXPECT_GE(field(stats, "rejected").value_or(0), 20u) << stats;
  EXPECT_EQ(field(stats, "max_depth"), 5u) << stats;
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step04");
}

}  // namespace
}  // namespace anubis::steps
