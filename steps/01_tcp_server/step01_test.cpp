// Stage 01 over real TCP: the lines each client sends are printed, from several clients at once.
#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

// Each line a client sends is printed once, without its line ending (LF or CRLF), in order.
TEST(Server, PrintsEachLineItReceives) {
  StageProcess stage(STAGE_BINARY, {});
  Client client(stage.port());
  ASSERT_TRUE(client.send("hello\nworld\r\n"));
  client.shutdown_write();
  ASSERT_TRUE(stage.wait_for_line("connection 1 closed"));
  EXPECT_EQ(stage.lines_with_prefix("line: "),
            (std::vector<std::string>{"line: hello", "line: world"}));
}

// Two clients connected at the same time are both served by the one thread: the second one's
// line is printed while the first is still connected and silent.
TEST(Server, ServesTwoClientsAtOnce) {
  StageProcess stage(STAGE_BINARY, {});
  Client first(stage.port());
  Client second(stage.port());
  ASSERT_TRUE(first.send("from the first\n"));
  ASSERT_TRUE(stage.wait_for_line("line: from the first"));
  ASSERT_TRUE(second.send("from the second\n"));
  ASSERT_TRUE(stage.wait_for_line("line: from the second"));
  ASSERT_TRUE(first.send("first again\n"));
  ASSERT_TRUE(stage.wait_for_line("line: first again"));
  EXPECT_EQ(stage.lines_with_prefix("connection ").size(), 2u);  // two opened, none closed
}

// SIGINT (Ctrl-C) and SIGTERM end the stage with status 0.
TEST(Server, StopsOnSignal) {
  for (const int sig : {SIGINT, SIGTERM}) {
    StageProcess stage(STAGE_BINARY, {});
    stage.signal(sig);
    EXPECT_EQ(stage.wait_exit(), 0) << "signal " << sig;
  }
}

// An unknown flag is refused with status 2 before listening.
TEST(Server, RefusesUnknownFlag) {
  StageProcess stage(STAGE_BINARY, {"--colour", "blue"}, {.wait_listening = false});
  EXPECT_EQ(stage.wait_exit(), 2);
  EXPECT_TRUE(stage.lines().empty());
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step01");
}

}  // namespace
}  // namespace anubis::steps
