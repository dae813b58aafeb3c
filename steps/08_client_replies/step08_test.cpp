// Stage 08 over real TCP: every line gets one reply, in request order and coalesced into few
// writes; a full channel answers server_busy with a retry hint; and a client that never reads
// cannot make the stage buffer its replies without bound (the broken variant can).
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

#include "support/client.hpp"
#include "support/proc_stats.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

using test::Client;

const std::string kEvent = R"({"user":"alice","action":"buy","amount":1})"
                           "\n";
const std::string kAccepted = R"({"status":"accepted"})";
const std::string kNotJson =
    R"x({"status":"error","reason":"invalid_event","detail":"not JSON (syntax error)"})x";
const std::string kBusy = R"({"status":"rejected","reason":"server_busy","retry_after_ms":100})";

// 300 lines, every 7th not JSON: the replies come back one per line, in the same order, and
// the stage needed far fewer writes than replies.
TEST(Step08, RepliesInRequestOrderCoalesced) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--capacity", "100000"});
  Client client(stage.port());
  std::string text;
  for (int i = 0; i < 300; ++i) text += i % 7 == 3 ? "nope\n" : kEvent;
  ASSERT_TRUE(client.send(text));
  client.shutdown_write();
  bool closed = false;
  const auto replies = client.read_until_eof(deadline_in(kTimeout), &closed);
  ASSERT_TRUE(closed);
  ASSERT_EQ(replies.size(), 300u);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (i % 7 == 3) {
      EXPECT_EQ(replies[i], kNotJson) << i;
    } else {
      EXPECT_EQ(replies[i], kAccepted) << i;
    }
  }
  const auto line = stage.wait_for_line("connection 1 closed: ").value_or("");
  EXPECT_EQ(field(line, "replies"), 300u) << line;
  // The stage reads at most 4 KiB at a time (kMaxLineBytes), so 13 KB of lines take a few reads,
  // and each read's replies leave in one write.
  EXPECT_LT(field(line, "writes").value_or(300), 150u) << line;
}

// A full channel: one worker taking 100 ms per event and room for 5. 50 events sent at once get
// 50 replies; at least 30 are server_busy with the retry hint (the worker frees at most one
// slot per 100 ms while the 50 lines are read), the rest accepted.
TEST(Step08, BusyRepliesCarryARetryHint) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--mode", "direct", "--workers", "1", "--capacity",
                                    "5", "--consumer-delay-us", "100000"});
  Client client(stage.port());
  std::string text;
  for (int i = 0; i < 50; ++i) text += kEvent;
  ASSERT_TRUE(client.send(text));
  const auto replies = client.read_lines(50);
  ASSERT_EQ(replies.size(), 50u);
  std::size_t busy = 0;
  for (const std::string& reply : replies) {
    if (reply == kBusy) {
      ++busy;
    } else {
      EXPECT_EQ(reply, kAccepted);
    }
  }
  EXPECT_GE(busy, 30u);
}

// Pushes up to 64 MiB of events at the stage without reading a reply, until the socket stays
// full for a second; returns the bytes sent.
std::size_t flood_without_reading(Client& client) {
  std::string chunk;
  while (chunk.size() < 64 * 1024) chunk += kEvent;
  std::size_t sent = 0;
  while (sent < (std::size_t{64} << 20)) {
    // Continue where the last send stopped, so that the stream stays whole lines.
    const auto n = client.try_send(std::string_view(chunk).substr(sent % chunk.size()));
    if (!n) break;
    sent += *n;
    if (*n == 0 && !client.wait_writable(deadline_in(std::chrono::seconds(1)))) break;
  }
  return sent;
}

// A client that sends and never reads: once 4 KiB of replies are unsent the stage stops reading
// ("paused"), so the client is blocked after a few MiB (what the kernel buffers hold) instead
// of pushing 64 MiB, and the stage's memory stays small. When the client reads, the stage
// resumes and every complete line still gets its reply.
TEST(Step08, NonReadingClientIsBounded) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--capacity", "100000000", "--max-output-bytes",
                                    "4096", "--report-ms", "0"});
  const std::size_t rss_before = test::resident_kib(stage.pid()).value_or(0);
  Client client(stage.port(), {.receive_buffer = 4096, .send_buffer = 4096});
  const std::size_t sent = flood_without_reading(client);
  ASSERT_TRUE(stage.wait_for_line("connection 1 paused"));
  EXPECT_LT(sent, std::size_t{32} << 20);
  const std::size_t rss = test::resident_kib(stage.pid()).value_or(0);
  EXPECT_LT(rss, rss_before + 64 * 1024) << "KiB";  // 64 MiB of growth at most
  const std::size_t lines = sent / kEvent.size();   // complete lines sent
  client.shutdown_write();
  bool closed = false;
  const auto replies = client.read_until_eof(deadline_in(kTimeout), &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(replies.size(), lines);
  EXPECT_TRUE(stage.wait_for_line("connection 1 resumed"));
}

// Break it on purpose: without the bound the stage reads the whole 64 MiB flood and keeps
// every reply in memory: the client is never blocked and the stage grows by well over the
// 30 MiB of replies it holds (margin: more than 20 MiB).
TEST(Step08, UnboundedOutputGrows) {
  StageProcess stage(STAGE_BINARY, {"--quiet", "--capacity", "100000000", "--report-ms", "0",
                                    "--break", "unbounded-output"});
  const std::size_t rss_before = test::resident_kib(stage.pid()).value_or(0);
  Client client(stage.port(), {.receive_buffer = 4096, .send_buffer = 4096});
  const std::size_t sent = flood_without_reading(client);
  EXPECT_GE(sent, std::size_t{64} << 20);
  const std::size_t rss = test::resident_kib(stage.pid()).value_or(0);
  EXPECT_GT(rss, rss_before + 20 * 1024) << "KiB";
  EXPECT_TRUE(stage.lines_with_prefix("connection 1 paused").empty());
}

// A port already in use ends the stage at start-up with status 2 and one line on stderr
// naming the address, instead of an uncaught exception (std::terminate, status 134).
TEST(Startup, RefusesBusyPort) {
  expect_refuses_busy_port(STAGE_BINARY, "step08");
}

}  // namespace
}  // namespace anubis::steps
