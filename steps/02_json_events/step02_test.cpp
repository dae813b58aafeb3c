// Stage 02 over real TCP: valid events are printed as parsed, every kind of bad line is refused
// with its reason, and the connection goes on after a bad line.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

// Valid events are printed field by field, in the order they were sent.
TEST(Parse, PrintsValidEvents) {
  StageProcess stage(STAGE_BINARY, {});
  Client client(stage.port());
  ASSERT_TRUE(client.send(R"({"user":"alice","action":"buy","amount":100})"
                          "\n"
                          R"({"amount":1000000000,"action":"sell","user":"bob"})"
                          "\n"));
  client.shutdown_write();
  ASSERT_TRUE(stage.wait_for_line("connection 1 closed"));
  EXPECT_EQ(stage.lines_with_prefix("event: "),
            (std::vector<std::string>{"event: user=alice action=buy amount=100",
                                      "event: user=bob action=sell amount=1000000000"}));
  EXPECT_TRUE(stage.lines_with_prefix("invalid: ").empty());
}

// Each kind of bad input gets `invalid:` with the reason that names the problem, and the
// connection keeps going: the valid event sent last is still printed.
TEST(Parse, RejectsEachKindOfBadInputWithAReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"user":"alice","action":"buy")", "invalid: not JSON ("},
      {"hello", "invalid: not JSON ("},
      {R"(["alice","buy",100])", "invalid: an event must be a JSON object"},
      {R"({"user":"alice","action":"buy","amount":1,"colour":"red"})",
       R"(invalid: unknown field "colour")"},
      {R"({"user":"alice","amount":1})", R"(invalid: missing field "action")"},
      {R"({"user":"","action":"buy","amount":1})",
       "invalid: user must be a string of 1 to 64 bytes"},
      {R"({"user":7,"action":"buy","amount":1})",
       "invalid: user must be a string of 1 to 64 bytes"},
      {R"({"user":")" + std::string(65, 'x') + R"(","action":"buy","amount":1})",
       "invalid: user must be a string of 1 to 64 bytes"},
      {R"({"user":"alice","action":"steal","amount":1})",
       R"(invalid: action must be "buy" or "sell")"},
      {R"({"user":"alice","action":"buy","amount":1.0})",
       "invalid: amount must be an integer from 1 to 1000000000"},
      {R"({"user":"alice","action":"buy","amount":"100"})",
       "invalid: amount must be an integer from 1 to 1000000000"},
      {R"({"user":"alice","action":"buy","amount":0})",
       "invalid: amount must be an integer from 1 to 1000000000"},
      {R"({"user":"alice","action":"buy","amount":1000000001})",
       "invalid: amount must be an integer from 1 to 1000000000"},
  };
  StageProcess stage(STAGE_BINARY, {});
  Client client(stage.port());
  for (const auto& [line, reason] : cases) ASSERT_TRUE(client.send(line + "\n"));
  ASSERT_TRUE(client.send(R"({"user":"carol","action":"buy","amount":5})"
                          "\n"));
  client.shutdown_write();
  ASSERT_TRUE(stage.wait_for_line("connection 1 closed"));
  const std::vector<std::string> invalid = stage.lines_with_prefix("invalid: ");
  ASSERT_EQ(invalid.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(invalid[i].starts_with(cases[i].second)) << cases[i].first << " -> " << invalid[i];
  }
  EXPECT_EQ(stage.lines_with_prefix("event: "),
            std::vector<std::string>{"event: user=carol action=buy amount=5"});
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step02");
}

}  // namespace
}  // namespace anubis::steps
