// The server's process-level contract: start-up errors are one clear line and a non-zero exit,
// and signals stay handled while a shutdown drains the queue.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "support/client.hpp"
#include "support/graceful_exit.hpp"
#include "support/protocol.hpp"
#include "support/server_process.hpp"

namespace anubis::test {
namespace {

using namespace std::chrono_literals;

struct RunResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs the server with `args` to completion (these runs fail at start-up, so they end at once).
RunResult run_server(const std::string& args) {
  RunResult result;
  FILE* pipe = ::popen((server_binary() + " " + args + " 2>&1 </dev/null").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) result.output += buf;
  const int raw = ::pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return result;
}

// A start-up failure is reported on exactly one line that begins with the program's name.
void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.rfind("anubis-server: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
}

// A port that is already taken is a one-line error and a non-zero exit, not a crash, and
// --check finds it too (the same words) rather than passing what the start refuses.
TEST(E2eCli, OccupiedPortIsAOneLineError) {
  ServerProcess holder({});
  const std::string port = std::to_string(holder.port());
  expect_one_line_error(run_server("--port " + port), "cannot listen");
  expect_one_line_error(run_server("--check --port " + port), "cannot listen");
}

// An IPv6 address is printed in brackets, so "HOST:PORT" splits at the last colon and reads as
// a URL authority.
TEST(E2eCli, Ipv6ListeningAddressIsBracketed) {
  std::ifstream interfaces("/proc/net/if_inet6");
  const std::string table((std::istreambuf_iterator<char>(interfaces)), {});
  if (table.find("00000000000000000000000000000001") == std::string::npos) {
    GTEST_SKIP() << "this machine has no IPv6 loopback address";
  }
  ServerProcess server({"--bind", "::1"});
  EXPECT_EQ(server.listening_address(), "[::1]:" + std::to_string(server.port()));
}

// --check accepts a valid configuration without listening, and refuses an invalid one (a range
// a strategy capability or an address) with the same one-line error a start would give.
TEST(E2eCli, CheckValidatesWithoutListening) {
  const RunResult ok = run_server("--check --queue lockfree --queue-capacity 65534 --port 0");
  EXPECT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(ok.output, "");
  expect_one_line_error(run_server("--check --port 0 --workers 0"), "--workers");
  expect_one_line_error(run_server("--check --port 0 --queue lockfree --queue-capacity 100000"),
                        "65534");
  expect_one_line_error(run_server("--check --port 0 --bind 999.1.1.1"), "999.1.1.1");
  // Well formed, but a documentation address (RFC 5737) that no interface here has.
  expect_one_line_error(run_server("--check --port 0 --bind 192.0.2.1"),
                        "cannot listen on 192.0.2.1");
}

// Unknown flags, unknown strategies and out-of-range values are refused the same way.
TEST(E2eCli, BadFlagsAreOneLineErrors) {
  expect_one_line_error(run_server("--no-such-flag"), "--no-such-flag");
  expect_one_line_error(run_server("--queue nosuch"), "nosuch");
  expect_one_line_error(run_server("--workers 0"), "--workers");
  expect_one_line_error(run_server("--bind not-an-address --port 0"), "not-an-address");
  expect_one_line_error(run_server("--idle-timeout nan"), "--idle-timeout");
  expect_one_line_error(run_server("--shutdown-timeout nan"), "--shutdown-timeout");
}

// A --state-out that could not be written is refused at start, not discovered after the drain.
TEST(E2eCli, UnwritableStateOutIsRefusedAtStart) {
  expect_one_line_error(run_server("--port 0 --state-out /tmp"), "directory");
  expect_one_line_error(run_server("--port 0 --state-out /nonexistent-dir/state.json"),
                        "/nonexistent-dir/state.json");
  // Replaced by a rename, a device or a link would become a plain file: only regular files.
  // With --check the refusal is shown without anything written, even where it is missing.
  expect_one_line_error(run_server("--check --port 0 --state-out /dev/null"), "not a regular file");
  expect_one_line_error(run_server("--check --port 0 --state-out ''"),
                        "--state-out: needs a file name");
}

// The registry's declared limit is enforced at start: Boost.Lockfree holds at most 65,534.
TEST(E2eCli, LockfreeCapacityBeyondItsLimitIsRefused) {
  expect_one_line_error(run_server("--queue lockfree --queue-capacity 65535"), "65534");
  ServerProcess ok({"--queue", "lockfree", "--queue-capacity", "65534"});
  Client client(ok.port());
  EXPECT_EQ(client.request(health_line()), health_reply());
}

// A second SIGTERM while the workers drain is handled, not fatal: the drain completes, every
// accepted event is applied and the exit status is still 0.
TEST(E2eCli, SecondSignalDuringTheDrainDoesNotInterruptIt) {
  constexpr int kEvents = 400;
  // One slow worker (2 ms per event) keeps the drain going for about a second.
  ServerProcess server(
      {"--workers", "1", "--work-us", "2000", "--queue-capacity", "1000", "--queue", "mutex"});
  Client client(server.port());
  std::string bytes;
  for (int i = 0; i < kEvents; ++i) bytes += event_line("drainer", 1) + "\n";
  ASSERT_TRUE(client.send(bytes));
  const auto replies = client.read_lines(kEvents, deadline_in(30s));
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kEvents));
  for (const auto& r : replies) ASSERT_EQ(r, accepted_reply());

  server.terminate();
  // The server closes connections before it drains the queue: once this one is closed the
  // workers are draining (the queue still holds most of the 400 slow events).
  ASSERT_TRUE(client.wait_closed(deadline_in(30s)));
  server.terminate();

  const auto counters = expect_graceful_exit(server, deadline_in(60s));
  ASSERT_TRUE(counters.has_value());
  EXPECT_EQ(counters->accepted, kEvents);
}

// Signals arriving at any moment of a shutdown, up to the very end, never kill the server: it
// exits 0 after its final line however many SIGTERMs it gets.
TEST(E2eCli, ASignalStormDuringShutdownDoesNotKillTheServer) {
  ServerProcess server({});
  Client client(server.port());
  ASSERT_EQ(client.request(event_line("storm", 1)), accepted_reply());
  const Deadline deadline = deadline_in(60s);
  std::optional<int> status;
  while (!status && Clock::now() < deadline) {
    server.terminate();
    status = server.wait_exit(deadline_in(1ms));
  }
  EXPECT_EQ(status, std::optional<int>(0)) << server.output();
  EXPECT_TRUE(server.final_json().has_value()) << server.output();
}

}  // namespace
}  // namespace anubis::test
