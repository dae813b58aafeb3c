#include "support/graceful_exit.hpp"

#include <gtest/gtest.h>

namespace anubis::test {

std::optional<Counters> expect_graceful_exit(ServerProcess& server, Deadline deadline) {
  const std::optional<int> status = server.wait_exit(deadline);
  EXPECT_EQ(status, std::optional<int>(0)) << "server stdout:\n" << server.output();
  const auto final_json = server.final_json();
  EXPECT_TRUE(final_json.has_value()) << "no final line; stdout:\n" << server.output();
  if (!final_json) return std::nullopt;
  const auto counters = parse_counters(*final_json);
  EXPECT_TRUE(counters.has_value()) << *final_json;
  if (!counters) return std::nullopt;
  EXPECT_TRUE(counters_balance(*counters)) << *final_json;
  EXPECT_EQ(counters->processed, counters->accepted) << *final_json;
  EXPECT_EQ(counters->queue_depth, 0) << *final_json;
  EXPECT_EQ(counters->connections_open, 0) << *final_json;
  return counters;
}

std::optional<Counters> stop_and_check_final(ServerProcess& server) {
  server.terminate();
  return expect_graceful_exit(server, deadline_in(std::chrono::seconds(60)));
}

}  // namespace anubis::test
