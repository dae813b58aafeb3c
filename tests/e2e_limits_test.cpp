// End-to-end tests of the server's limits (docs/PROTOCOL.md, "Limits and timeouts"): the line
// length bound, --max-connections, --idle-timeout, --max-output-bytes against a client that
// never reads, and running out of file descriptors. Each test starts its own server on a free
// port and checks both the refusal and that service goes on for everyone else.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/client.hpp"
#include "support/graceful_exit.hpp"
#include "support/proc_stats.hpp"
#include "support/protocol.hpp"
#include "support/server_process.hpp"

namespace anubis::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kExitTimeout = 60s;
constexpr auto kPrompt = 5s;  // "answered promptly", even by a sanitizer build

// A valid event exactly `size` bytes long: blanks inside the JSON object pad it.
std::string padded_event(std::size_t size, std::int64_t id) {
  std::string line = event_line("pad", 1, id);
  line.insert(line.size() - 1, size - line.size(), ' ');
  return line;
}

// A line of exactly max bytes is processed (also with CRLF); one more: line_too_long, and on.
TEST(E2eLimits, LineOfExactlyMaxBytesIsProcessedAndOneMoreIsRefused) {
  constexpr std::size_t kMax = 4'096;  // the default
  const std::string too_long =
      R"({"status":"error","reason":"line_too_long","detail":"line longer than 4096 bytes; skipped to the next newline"})";
  ServerProcess server({});
  Client client(server.port());

  ASSERT_EQ(padded_event(kMax, 1).size(), kMax);
  EXPECT_EQ(client.request(padded_event(kMax, 1)), accepted_reply(1));
  EXPECT_EQ(client.request(padded_event(kMax + 1, 2)), too_long);
  EXPECT_EQ(client.request(health_line(3)), health_reply(3)) << "the connection must go on";
  ASSERT_TRUE(client.send(padded_event(kMax, 4) + "\r\n"));  // the '\r' is not part of the line
  EXPECT_EQ(client.read_line(), accepted_reply(4));
  ASSERT_TRUE(client.send(padded_event(kMax + 1, 5) + "\r\n"));
  EXPECT_EQ(client.read_line(), too_long);
  // Far longer than the read buffer: skipped to its newline, then the next line is served.
  ASSERT_TRUE(client.send(padded_event(50'000, 6) + "\n" + health_line(7) + "\n"));
  EXPECT_EQ(client.read_line(), too_long);
  EXPECT_EQ(client.read_line(), health_reply(7));

  const auto counters = wait_until_drained(client, deadline_in(kExitTimeout));
  ASSERT_TRUE(counters.has_value());
  EXPECT_EQ(counters->accepted, 2);
  EXPECT_EQ(counters->invalid, 3);
  stop_and_check_final(server);
}

// Past --max-connections a client gets too_many_connections and is closed, until one leaves.
TEST(E2eLimits, ConnectionsBeyondTheMaximumAreRefusedUntilOneCloses) {
  ServerProcess server({"--max-connections", "3"});
  std::vector<Client> served;
  for (int i = 0; i < 3; ++i) {
    served.emplace_back(server.port());
    ASSERT_EQ(served.back().request(health_line(i)), health_reply(i)) << "client " << i;
  }

  Client refused(server.port());
  EXPECT_EQ(
      refused.read_line(deadline_in(10s)),
      R"({"status":"error","reason":"too_many_connections","detail":"the server already has 3 connections; retry later"})");
  EXPECT_TRUE(refused.wait_closed(deadline_in(10s)));

  served.erase(served.begin());
  // Wait until the server has seen that close: its open-connection count drops to 2.
  const Deadline deadline = deadline_in(10s);
  std::optional<Counters> counters;
  do {
    const auto reply = served.front().request(kMetricsLine, deadline);
    ASSERT_TRUE(reply.has_value());
    counters = parse_counters(*reply);
    ASSERT_TRUE(counters.has_value()) << *reply;
  } while (counters->connections_open != 2 && Clock::now() < deadline);
  ASSERT_EQ(counters->connections_open, 2);
  Client next(server.port());
  EXPECT_EQ(next.request(health_line(9), deadline_in(10s)), health_reply(9));
  stop_and_check_final(server);
}

// An idle connection is closed after --idle-timeout (not before); an active one stays open.
TEST(E2eLimits, IdleConnectionIsClosedWhileAnActiveOneStaysOpen) {
  ServerProcess server({"--idle-timeout", "0.5"});
  const Clock::time_point opened = Clock::now();
  Client idle(server.port());
  Client active(server.port());
  ASSERT_EQ(idle.request(health_line(1)), health_reply(1));

  // Wait for the idle connection to end, 100 ms at a time; each time it has not, the active
  // connection sends a query, so it is never idle for long.
  const Deadline deadline = deadline_in(10s);
  bool closed = false;
  std::int64_t queries = 0;
  while (!closed && Clock::now() < deadline) {
    closed = idle.wait_closed(std::min(deadline, deadline_in(100ms)));
    if (!closed) {
      ++queries;
      ASSERT_EQ(active.request(health_line(queries)), health_reply(queries));
    }
  }
  const auto lifetime = Clock::now() - opened;
  ASSERT_TRUE(closed) << "the idle connection was still open after 10 s";
  EXPECT_GE(lifetime, 450ms) << "closed before its idle timeout";
  EXPECT_EQ(active.request(health_line(0)), health_reply(0)) << "the active one must stay open";
  Client fresh(server.port());
  EXPECT_EQ(fresh.request(health_line(2)), health_reply(2));
  stop_and_check_final(server);
}

// A client that reads its replies slowly is not idle, even while the server, waiting for it to
// read, has stopped reading from it.
TEST(E2eLimits, SlowReaderOfAPipelinedBurstIsNotIdle) {
  ServerProcess server({"--idle-timeout", "0.2"});
  Client client(server.port());
  // A receive buffer shrunk after the handshake keeps the kernel from absorbing the burst on
  // the client's behalf, so the server soon has replies it cannot send and stops reading.
  const int receive_buffer = 256 * 1024;
  ASSERT_EQ(
      ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer), 0);
  const std::string line = std::string(health_line()) + "\n";
  constexpr std::size_t kLines = 200'000;  // 3.2 MB of replies: far more than the kernel absorbs
  std::string stream;
  stream.reserve(line.size() * kLines);
  for (std::size_t i = 0; i < kLines; ++i) stream += line;

  // The whole burst goes out from its own thread, as fast as the server takes it; the reads
  // below use the socket directly, so the two threads share nothing but the descriptor.
  std::thread sender([&] { client.send(stream, deadline_in(60s)); });
  std::size_t replies = 0;
  char buf[4096];
  const Deadline deadline = deadline_in(60s);
  std::string failure;
  while (replies < kLines && failure.empty()) {
    if (Clock::now() > deadline) failure = "only " + std::to_string(replies) + " replies in 60 s";
    const ssize_t n = ::recv(client.fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
      failure = "the server ended the connection after " + std::to_string(replies) + " replies";
    }
    if (n > 0) replies += static_cast<std::size_t>(std::count(buf, buf + n, '\n'));
    // The client reads at most 4 KiB per 2 ms (less through the small window), so draining the
    // burst takes seconds, many times the idle timeout. Pacing a slow reader is a matter of time
    // itself: there is no event to wait for.
    std::this_thread::sleep_for(4ms);
  }
  if (!failure.empty()) ::shutdown(client.fd(), SHUT_RDWR);  // ends the sender's wait
  sender.join();
  ASSERT_EQ(failure, "");
  EXPECT_EQ(replies, kLines);
  stop_and_check_final(server);
}

// A client that never reads is not read past --max-output-bytes, until it reads; others are served.
TEST(E2eLimits, ClientThatNeverReadsIsThrottledUntilItReads) {
  // Once the server stops reading, what the client can send is bounded by kernel buffers, and
  // the server's memory stays small: it does not buffer the replies nobody reads.
  constexpr std::size_t kSendCap = 64u << 20;  // far beyond what kernel buffers can absorb
  constexpr std::size_t kRssBoundKib = 200 * 1024;
  ServerProcess server({"--max-output-bytes", "65536"});
  // Small pinned socket buffers on the client side keep the kernel's share predictable.
  std::optional<Client> hog(std::in_place, server.port(),
                            ClientOptions{.receive_buffer = 64 * 1024, .send_buffer = 64 * 1024});

  const std::string event = event_line("hog", 1) + "\n";
  std::string block;
  for (int i = 0; i < 1'000; ++i) block += event;
  std::size_t sent = 0;
  std::size_t offset = 0;  // into block
  bool stalled = false;
  while (sent < kSendCap) {
    const auto n = hog->try_send(std::string_view(block).substr(offset));
    ASSERT_TRUE(n.has_value()) << "the server closed the connection of a client that sends";
    if (*n == 0) {
      // No room: the server is not reading. Two seconds without progress means it stopped.
      if (!hog->wait_writable(deadline_in(2s))) {
        stalled = true;
        break;
      }
      continue;
    }
    sent += *n;
    offset = (offset + *n) % block.size();
  }
  EXPECT_TRUE(stalled) << "the server read " << sent << " bytes from a client that never reads";
  EXPECT_GT(sent, 65'536u) << "the server should read until the output bound";
  const auto rss = resident_kib(server.pid());
  ASSERT_TRUE(rss.has_value());
  EXPECT_LT(*rss, kRssBoundKib) << "server VmRSS after " << sent << " bytes from the hog";

  Client other(server.port());
  EXPECT_EQ(other.request(health_line(1), deadline_in(kPrompt)), health_reply(1));
  EXPECT_EQ(other.request(event_line("other", 1, 2), deadline_in(kPrompt)), accepted_reply(2));

  // Now the hog reads: the server resumes reading it and answers every event it sent, then a
  // health query sent after them (the rest of a half-sent event line goes first).
  std::string tail;
  if (offset % event.size() != 0) tail = event.substr(offset % event.size());
  const std::size_t events_sent = (sent + tail.size()) / event.size();
  tail += health_line(1) + "\n";
  const Deadline deadline = deadline_in(kExitTimeout);
  std::size_t replies = 0;
  bool answered = false;
  while (!answered && Clock::now() < deadline) {
    if (!tail.empty()) {
      const auto n = hog->try_send(tail);
      ASSERT_TRUE(n.has_value()) << "the hog's connection broke";
      tail.erase(0, *n);
    }
    for (const std::string& reply : hog->read_ready_lines()) {
      if (reply == health_reply(1)) {
        answered = true;
        break;
      }
      ASSERT_TRUE(reply == accepted_reply() || reply.starts_with(kServerBusyPrefix)) << reply;
      ++replies;
    }
    if (!answered) hog->wait_ready(!tail.empty(), deadline);
  }
  ASSERT_TRUE(answered) << "no health reply after " << replies << " of " << events_sent
                        << " event replies";
  EXPECT_EQ(replies, events_sent);
  hog.reset();
  stop_and_check_final(server);
}

// Out of descriptors, accepting backs off without spinning and recovers once clients leave.
TEST(E2eLimits, DescriptorExhaustionBacksOffWithoutSpinningAndRecovers) {
  // RLIMIT_NOFILE 32 in the server: new connections wait in the kernel's backlog meanwhile.
  constexpr int kMaxAttempts = 64;  // more connections than 32 descriptors can serve
  ServerProcess server({}, ServerOptions{.max_open_files = 32});
  std::vector<Client> served;
  std::optional<Client> waiting;
  std::int64_t waiting_id = 0;
  for (int i = 0; i < kMaxAttempts && !waiting; ++i) {
    Client client(server.port());  // the kernel completes the handshake even when not accepted
    ASSERT_TRUE(client.send(health_line(i) + "\n"));
    const auto reply = client.read_line(deadline_in(1s));
    if (reply) {
      ASSERT_EQ(*reply, health_reply(i));
      served.push_back(std::move(client));
    } else {
      ASSERT_FALSE(client.eof()) << "connection " << i << " was closed instead of waiting";
      waiting = std::move(client);
      waiting_id = i;
    }
  }
  ASSERT_TRUE(waiting.has_value()) << kMaxAttempts << " connections all served with 32 fds";
  ASSERT_GE(served.size(), 3u);

  // Two seconds of waiting for the queued connection's reply (which cannot come yet): the
  // server must sleep between accept attempts, not spin.
  const auto cpu_before = cpu_time(server.pid());
  EXPECT_FALSE(waiting->read_line(deadline_in(2s)).has_value());
  const auto cpu_after = cpu_time(server.pid());
  ASSERT_TRUE(cpu_before.has_value() && cpu_after.has_value());
  EXPECT_LT((*cpu_after - *cpu_before).count(), 0.5)
      << "server CPU seconds over 2 s of descriptor exhaustion";

  served.erase(served.end() - 3, served.end());  // frees three descriptors in the server
  EXPECT_EQ(waiting->read_line(deadline_in(10s)), health_reply(waiting_id))
      << "the waiting connection was not served after descriptors were freed";
  served.clear();
  Client fresh(server.port());
  EXPECT_EQ(fresh.request(health_line(100), deadline_in(10s)), health_reply(100));
  stop_and_check_final(server);
}

}  // namespace
}  // namespace anubis::test
