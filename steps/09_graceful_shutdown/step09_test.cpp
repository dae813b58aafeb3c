// Stage 09 over real TCP: a signal stops the stage in order — every connection gets its replies
// and is closed, every accepted event is applied before the exit, status 0 — and the broken
// variant that skips the drain really loses accepted events.
#include <gtest/gtest.h>

#include <csignal>
#include <optional>
#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

const std::string kEvent = R"({"user":"alice","action":"buy","amount":1})"
                           "\n";

// One slow worker (2 ms per event): 500 events are all accepted within milliseconds, and the
// signal comes as soon as the client has read the 500 replies, while most of them are still
// queued (applying them takes at least a second). Returns the `final:` line.
std::string stop_with_backlog(const std::vector<std::string>& extra, int sig) {
  std::vector<std::string> args = {"--quiet", "--workers",  "1",    "--consumer-delay-us",
                                   "2000",    "--capacity", "10000"};
  args.insert(args.end(), extra.begin(), extra.end());
  StageProcess stage(STAGE_BINARY, args);
  std::optional<Client> client(stage.port());
  std::string text;
  for (int i = 0; i < 500; ++i) text += kEvent;
  EXPECT_TRUE(client->send(text));
  EXPECT_EQ(client->read_lines(500).size(), 500u);
  stage.signal(sig);
  EXPECT_TRUE(stage.wait_for_line("stopping: "));
  EXPECT_TRUE(client->wait_closed(deadline_in(kTimeout)));  // the stage closed the connection
  client.reset();  // close our side too, so the stage need not linger
  EXPECT_EQ(stage.wait_exit(), 0);
  return stage.wait_for_line("final: ").value_or("");
}

// Every accepted event is processed before the exit, on SIGTERM and on SIGINT.
TEST(Step09, DrainsEveryAcceptedEventBeforeExit) {
  for (const int sig : {SIGTERM, SIGINT}) {
    const std::string final_line = stop_with_backlog({}, sig);
    EXPECT_EQ(field(final_line, "accepted"), 500u) << final_line;
    EXPECT_EQ(field(final_line, "processed"), 500u) << final_line;
  }
}

// Break it on purpose: without the drain the worker stops as soon as the channel is closed, and
// the events still queued (most of the 500, see above) are never applied although the client
// was told `accepted`. Margin: at least 100 of them are missing.
TEST(Step09, NoDrainLosesAcceptedEvents) {
  const std::string final_line = stop_with_backlog({"--break", "no-drain"}, SIGTERM);
  EXPECT_EQ(field(final_line, "accepted"), 500u) << final_line;
  EXPECT_LT(field(final_line, "processed").value_or(500), 400u) << final_line;
}

// Lines already read when the signal comes are still answered: a client that never reads
// makes its connection pause with lines in its buffer; at the signal those get
// `shutting_down`, every reply is sent, the connection is closed, and nothing is applied twice
// or lost (processed == accepted; received == accepted + shutting_down).
TEST(Step09, AnswersLinesReadBeforeTheStop) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--capacity", "1000000", "--max-output-bytes",
                                    "4096", "--report-ms", "0"});
  Client client(stage.port(), {.receive_buffer = 4096, .send_buffer = 4096});
  // Send whole lines until the socket stays full for a second: the stage has paused.
  std::string chunk;
  while (chunk.size() < 64 * 1024) chunk += kEvent;
  for (std::size_t sent = 0; sent < (std::size_t{64} << 20);) {
    const auto n = client.try_send(std::string_view(chunk).substr(sent % chunk.size()));
    ASSERT_TRUE(n.has_value());
    sent += *n;
    if (*n == 0 && !client.wait_writable(deadline_in(std::chrono::seconds(1)))) break;
  }
  ASSERT_TRUE(stage.wait_for_line("connection 1 paused"));
  stage.signal(SIGTERM);
  bool closed = false;
  const auto replies = client.read_until_eof(deadline_in(kTimeout), &closed);
  EXPECT_TRUE(closed);
  ASSERT_EQ(stage.wait_exit(), 0);
  const std::string final_line = stage.wait_for_line("final: ").value_or("");
  EXPECT_EQ(field(final_line, "received"), replies.size()) << final_line;
  EXPECT_EQ(field(final_line, "processed"), field(final_line, "accepted")) << final_line;
  EXPECT_GT(field(final_line, "shutting_down").value_or(0), 0u) << final_line;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const bool shutting_down = replies[i].find("shutting_down") != std::string::npos;
    // Accepted replies first, then only shutting_down ones: order is kept.
    if (shutting_down && i + 1 < replies.size()) {
      EXPECT_NE(replies[i + 1].find("shutting_down"), std::string::npos) << i;
    }
  }
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step09");
}

}  // namespace
}  // namespace anubis::steps
