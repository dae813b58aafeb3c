// End-to-end tests of the server as its clients see it: many concurrent clients, a full queue,
// a shutdown under load and malformed lines, all over TCP against the real binary
// (ANUBIS_SERVER). Every test starts its own server on a free port, compares raw reply lines
// with the texts of docs/PROTOCOL.md and checks the counters of the server's `final` line.
//
// Deadlines are generous (tens of seconds) because the same tests run against ThreadSanitizer
// and AddressSanitizer builds of the server, which are several times slower; a healthy release
// server finishes each test in about a second.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <latch>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/client.hpp"
#include "support/graceful_exit.hpp"
#include "support/protocol.hpp"
#include "support/server_process.hpp"

namespace anubis::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kDrainTimeout = 60s;

std::string user_name(int n) {
  return "user-" + std::to_string(n);
}

// Queries every user in `users` on one connection (pipelined) and compares each balance reply
// with `expected` (a user missing from it must read 0 and 0).
void expect_balances(Client& client, const std::vector<std::string>& users,
                     const Balances& expected) {
  std::string queries;
  for (const auto& user : users) queries += balance_line(user) + "\n";
  ASSERT_TRUE(client.send(queries));
  const auto replies = client.read_lines(users.size(), deadline_in(kDrainTimeout));
  ASSERT_EQ(replies.size(), users.size());
  for (std::size_t i = 0; i < users.size(); ++i) {
    const auto it = expected.find(users[i]);
    const UserTotals totals = it == expected.end() ? UserTotals{} : it->second;
    EXPECT_EQ(replies[i], balance_reply(users[i], totals));
  }
}

// ---------------------------------------------------------------------------------------------
// (a) Many concurrent clients, every queue x lock combination

struct Combination {
  const char* queue;
  const char* lock;
  const char* io_threads = "1";
};

class ConcurrentClients : public ::testing::TestWithParam<Combination> {};

// 50 pipelining clients: every event accepted in order, and every balance exactly their sum.
TEST_P(ConcurrentClients, BalancesEqualTheSumOfEveryAcceptedEvent) {
  constexpr int kClients = 50;
  constexpr int kEventsPerClient = 2'000;
  constexpr int kWindow = 100;  // lines sent before reading their replies
  constexpr int kUsers = 500;
  // The lock-free queue holds at most 65,534 events; at most kClients * kWindow are in flight.
  ServerProcess server({"--queue", GetParam().queue, "--lock", GetParam().lock, "--workers", "2",
                        "--io-threads", GetParam().io_threads, "--queue-capacity", "65534"});

  std::vector<Client> clients;
  for (int c = 0; c < kClients; ++c) clients.emplace_back(server.port());
  std::vector<Balances> expected(kClients);
  std::vector<std::string> failures(kClients);
  std::latch start_gate(1);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<std::uint32_t>(c) + 1);
      std::uniform_int_distribution<int> user_of(0, kUsers - 1);
      std::uniform_int_distribution<std::int64_t> delta_of(-1'000, 1'000);
      start_gate.wait();
      const Deadline deadline = deadline_in(kDrainTimeout);
      for (int base = 0; base < kEventsPerClient; base += kWindow) {
        std::vector<std::pair<std::string, std::int64_t>> window;
        std::string bytes;
        for (int i = 0; i < kWindow; ++i) {
          std::int64_t delta = delta_of(rng);
          if (delta == 0) delta = 1;
          window.emplace_back(user_name(user_of(rng)), delta);
          bytes += event_line(window.back().first, delta, base + i) + "\n";
        }
        if (!clients[c].send(bytes, deadline)) {
          failures[c] = "send failed at event " + std::to_string(base);
          return;
        }
        const auto replies = clients[c].read_lines(kWindow, deadline);
        for (int i = 0; i < kWindow; ++i) {
          if (i >= static_cast<int>(replies.size()) || replies[i] != accepted_reply(base + i)) {
            failures[c] = "event " + std::to_string(base + i) + " got: " +
                          (i < static_cast<int>(replies.size()) ? replies[i] : "(no reply)");
            return;
          }
          add_event(expected[c], window[i].first, window[i].second);
        }
      }
    });
  }
  start_gate.count_down();
  for (auto& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) ASSERT_EQ(failures[c], "") << "client " << c;

  Balances total;
  for (const auto& per_client : expected) {
    for (const auto& [user, totals] : per_client) {
      UserTotals& sum = total[user];
      sum.balance += totals.balance;
      sum.events += totals.events;
    }
  }
  const auto counters = wait_until_drained(clients[0], deadline_in(kDrainTimeout));
  ASSERT_TRUE(counters.has_value()) << "processed never reached accepted";
  EXPECT_EQ(counters->accepted, kClients * kEventsPerClient);
  EXPECT_EQ(counters->dropped, 0);
  EXPECT_EQ(counters->invalid, 0);
  std::vector<std::string> users;
  for (int u = 0; u < kUsers; ++u) users.push_back(user_name(u));
  expect_balances(clients[0], users, total);

  clients.clear();
  const auto final_counters = stop_and_check_final(server);
  ASSERT_TRUE(final_counters.has_value());
  EXPECT_EQ(final_counters->accepted, kClients * kEventsPerClient);
  EXPECT_EQ(final_counters->received, kClients * kEventsPerClient);
}

INSTANTIATE_TEST_SUITE_P(EveryQueueAndLock, ConcurrentClients,
                         ::testing::Values(Combination{"mutex", "mutex"},
                                           Combination{"mutex", "sharded"},
                                           Combination{"lockfree", "mutex"},
                                           Combination{"lockfree", "sharded"},
                                           // Several event loops: connections on their strands,
                                           // producers racing on the queue.
                                           Combination{"mutex", "sharded", "3"},
                                           Combination{"lockfree", "sharded", "3"}),
                         [](const ::testing::TestParamInfo<Combination>& param_info) {
                           return std::string(param_info.param.queue) + "_" +
                                  param_info.param.lock + "_io" + param_info.param.io_threads;
                         });

// ---------------------------------------------------------------------------------------------
// (b) A flood into a tiny queue

// A flood of a tiny queue: server_busy with a hint in [1, 1000] ms; only accepted events apply.
TEST(E2eServer, FloodIntoATinyQueueIsRefusedWithRetryHintsAndOnlyAcceptedEventsApply) {
  constexpr int kFlood = 2'000;
  constexpr int kUsers = 20;
  ServerProcess server(
      {"--queue-capacity", "4", "--workers", "1", "--work-us", "200", "--queue", "mutex"});
  Client flood(server.port());
  Client probe(server.port());
  ASSERT_EQ(probe.request(health_line()), health_reply());  // connected and served

  std::vector<std::pair<std::string, std::int64_t>> events;
  std::string bytes;
  for (int i = 0; i < kFlood; ++i) {
    events.emplace_back(user_name(i % kUsers), (i % 7) + 1);
    bytes += event_line(events.back().first, events.back().second, i) + "\n";
  }
  ASSERT_TRUE(flood.send(bytes));  // one write
  EXPECT_EQ(probe.request(health_line(1), deadline_in(5s)), health_reply(1))
      << "a second connection must be answered while the queue is full";

  const auto replies = flood.read_lines(kFlood, deadline_in(kDrainTimeout));
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kFlood));
  Balances expected;
  int accepted = 0;
  int busy = 0;
  for (int i = 0; i < kFlood; ++i) {
    if (replies[i] == accepted_reply(i)) {
      ++accepted;
      add_event(expected, events[i].first, events[i].second);
      continue;
    }
    const auto retry = int_field(replies[i], "retry_after_ms");
    ASSERT_TRUE(retry.has_value()) << "event " << i << " got: " << replies[i];
    EXPECT_EQ(replies[i], std::string(kServerBusyPrefix) + std::to_string(*retry) +
                              ",\"id\":" + std::to_string(i) + "}");
    EXPECT_GE(*retry, 1) << replies[i];
    EXPECT_LE(*retry, 1'000) << replies[i];
    ++busy;
  }
  EXPECT_GT(busy, 0) << "a 4-slot queue cannot take a 2,000-event flood";
  EXPECT_GT(accepted, 0);

  const auto counters = wait_until_drained(probe, deadline_in(kDrainTimeout));
  ASSERT_TRUE(counters.has_value()) << "processed never reached accepted";
  EXPECT_EQ(counters->accepted, accepted);
  EXPECT_EQ(counters->dropped, busy);
  std::vector<std::string> users;
  for (int u = 0; u < kUsers; ++u) users.push_back(user_name(u));
  expect_balances(probe, users, expected);

  const auto final_counters = stop_and_check_final(server);
  ASSERT_TRUE(final_counters.has_value());
  EXPECT_EQ(final_counters->accepted, accepted);
  EXPECT_EQ(final_counters->dropped, busy);
}

// ---------------------------------------------------------------------------------------------
// (c) SIGTERM under load

// What one sending client saw until the server closed its connection.
struct SenderLog {
  Balances accepted_events;
  std::int64_t accepted = 0;
  std::int64_t busy = 0;
  std::int64_t shutting_down = 0;
  std::string failure;
};

// Sends windows of events and reads their replies until the server closes the connection;
// stops sending at the first shutting_down reply or failed send. Every reply must be accepted,
// server_busy or shutting_down, in request order. `replies_seen` counts replies for the main
// thread, which `progress` wakes.
void send_until_closed(Client& client, int seed, std::atomic<std::int64_t>& replies_seen,
                       std::condition_variable& progress, SenderLog& log) {
  constexpr int kWindow = 50;
  constexpr int kUsers = 100;
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::uniform_int_distribution<int> user_of(0, kUsers - 1);
  std::uniform_int_distribution<std::int64_t> amount_of(1, 500);
  const Deadline deadline = deadline_in(kDrainTimeout);
  struct Sent {
    std::int64_t id;
    std::string user;
    std::int64_t delta;
  };
  std::deque<Sent> unanswered;
  std::int64_t next_id = 0;
  bool sending = true;
  while (!client.eof()) {
    if (sending && unanswered.empty()) {
      std::string bytes;
      for (int i = 0; i < kWindow; ++i) {
        const std::int64_t delta = (i % 2 == 0 ? 1 : -1) * amount_of(rng);
        unanswered.push_back({next_id, user_name(user_of(rng)), delta});
        bytes += event_line(unanswered.back().user, delta, next_id++) + "\n";
      }
      sending = client.send(bytes, deadline);  // fails once the server has closed
    }
    const auto reply = client.read_line(deadline);
    if (!reply) {
      if (!client.eof()) log.failure = "no reply and no EOF before the deadline";
      return;  // EOF: the lines still unanswered were never read by the server
    }
    if (unanswered.empty()) {
      log.failure = "unexpected extra reply: " + *reply;
      return;
    }
    const Sent sent = unanswered.front();
    unanswered.pop_front();
    const std::string id = ",\"id\":" + std::to_string(sent.id) + "}";
    if (*reply == accepted_reply(sent.id)) {
      ++log.accepted;
      add_event(log.accepted_events, sent.user, sent.delta);
    } else if (reply->starts_with(kServerBusyPrefix) && reply->ends_with(id)) {
      ++log.busy;
    } else if (*reply == shutting_down_reply(sent.id)) {
      ++log.shutting_down;
      sending = false;
    } else {
      log.failure = "event " + std::to_string(sent.id) + " got: " + *reply;
      return;
    }
    replies_seen.fetch_add(1, std::memory_order_relaxed);
    progress.notify_all();
  }
}

class ShutdownUnderLoad : public ::testing::TestWithParam<const char*> {};

// SIGTERM under load: prompt exit 0 despite idle clients; --state-out is exactly what was accepted.
TEST_P(ShutdownUnderLoad, AppliesExactlyTheAcceptedEventsAndExitsPromptly) {
  // Also: every reply is accepted, server_busy or shutting_down, and the final counters are
  // exactly what the clients saw (no reply was lost on the way out).
  constexpr int kSenders = 4;
  constexpr int kIdle = 3;
  constexpr std::int64_t kRepliesBeforeStop = 4'000;
  constexpr auto kShutdownBudget = 15s;  // far below --idle-timeout 300
  const std::string state_path = ::testing::TempDir() + "anubis_e2e_state_" + GetParam() + "_" +
                                 std::to_string(::getpid()) + ".json";
  ::unlink(state_path.c_str());
  ServerProcess server({"--queue", GetParam(), "--workers", "2", "--idle-timeout", "300",
                        "--state-out", state_path});

  std::vector<Client> idle;
  for (int i = 0; i < kIdle; ++i) {
    idle.emplace_back(server.port());
    ASSERT_EQ(idle.back().request(health_line()), health_reply());  // accepted, then silent
  }

  // Connected and served once before any sends, so that every sender is in when the stop comes
  // however the threads are scheduled (one sender alone may reach kRepliesBeforeStop).
  std::vector<Client> sender_clients;
  for (int s = 0; s < kSenders; ++s) {
    sender_clients.emplace_back(server.port());
    ASSERT_EQ(sender_clients.back().request(health_line()), health_reply());
  }
  std::atomic<std::int64_t> replies_seen{0};
  std::mutex mutex;
  std::condition_variable progress;
  std::vector<SenderLog> logs(kSenders);
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      try {
        send_until_closed(sender_clients[s], s + 1, replies_seen, progress, logs[s]);
      } catch (const std::exception& e) {
        logs[s].failure = e.what();
      }
    });
  }
  {
    std::unique_lock lock(mutex);
    const bool busy_enough = progress.wait_until(lock, deadline_in(kDrainTimeout), [&] {
      return replies_seen.load(std::memory_order_relaxed) >= kRepliesBeforeStop;
    });
    EXPECT_TRUE(busy_enough) << "only " << replies_seen.load() << " replies before the deadline";
  }
  const Deadline stop_deadline = deadline_in(kShutdownBudget);
  server.terminate();
  for (auto& client : idle) EXPECT_TRUE(client.wait_closed(stop_deadline));
  for (auto& t : senders) t.join();
  const auto counters = expect_graceful_exit(server, stop_deadline);
  ASSERT_TRUE(counters.has_value()) << "no clean exit within 15 s of SIGTERM";

  Balances expected;
  SenderLog total;
  for (int s = 0; s < kSenders; ++s) {
    EXPECT_EQ(logs[s].failure, "") << "sender " << s;
    total.accepted += logs[s].accepted;
    total.busy += logs[s].busy;
    total.shutting_down += logs[s].shutting_down;
    for (const auto& [user, totals] : logs[s].accepted_events) {
      expected[user].balance += totals.balance;
      expected[user].events += totals.events;
    }
  }
  const std::string final_json = server.final_json().value_or("");
  // Every reply reached its client: the counters are exactly what the clients saw.
  EXPECT_EQ(counters->accepted, total.accepted) << final_json;
  EXPECT_EQ(counters->dropped, total.busy) << final_json;
  EXPECT_EQ(counters->rejected_shutting_down, total.shutting_down) << final_json;
  EXPECT_EQ(counters->invalid, 0) << final_json;

  const auto text = read_text_file(state_path);
  ASSERT_TRUE(text.has_value()) << "no --state-out file at " << state_path;
  const auto state = parse_state_file(*text);
  ASSERT_TRUE(state.has_value()) << *text;
  EXPECT_EQ(state->size(), expected.size());
  for (const auto& [user, totals] : expected) {
    const auto it = state->find(user);
    ASSERT_NE(it, state->end()) << user << " missing from the state file";
    EXPECT_EQ(it->second.balance, totals.balance) << user;
    EXPECT_EQ(it->second.events, totals.events) << user;
  }
  ::unlink(state_path.c_str());
}

INSTANTIATE_TEST_SUITE_P(EveryQueue, ShutdownUnderLoad, ::testing::Values("mutex", "lockfree"),
                         [](const ::testing::TestParamInfo<const char*>& param_info) {
                           return std::string(param_info.param);
                         });

// ---------------------------------------------------------------------------------------------
// (d) Malformed lines

struct BadLine {
  const char* what;
  std::string line;
  std::string reply;  // exactly
};

std::string error_reply(std::string_view code, std::string_view detail_json,
                        std::string_view id_json = {}) {
  std::string out = "{\"status\":\"error\",\"reason\":\"";
  out += code;
  out += "\",\"detail\":";
  out += detail_json;
  if (!id_json.empty()) {
    out += ",\"id\":";
    out += id_json;
  }
  out += '}';
  return out;
}

// Each kind of bad line gets its documented error (and id), and the connection goes on serving.
TEST(E2eServer, EveryBadLineGetsItsErrorAndTheConnectionGoesOn) {
  // Also: blank lines get no reply, CRLF lines are served, `invalid` counts exactly the bad lines.
  const std::string amount_rule = R"("amount must be an integer from 1 to 1000000000")";
  const std::vector<BadLine> bad_lines = {
      {"syntax error", "hello", error_reply("invalid_json", R"("syntax error at byte 0")")},
      {"incomplete object", R"({"user":"bob","action":"buy")",
       error_reply("invalid_json", R"("incomplete JSON value")")},
      {"trailing data", R"({"type":"health"} {"type":"health"})",
       error_reply("invalid_json", R"("unexpected data after the JSON value")")},
      {"not an object", "[1,2]",
       error_reply("invalid_event", R"("request must be a JSON object")")},
      {"fractional amount", R"({"user":"bob","action":"buy","amount":1.0,"id":7})",
       error_reply("invalid_event", amount_rule, "7")},
      {"zero amount", R"({"user":"bob","action":"sell","amount":0,"id":"z-1"})",
       error_reply("invalid_event", amount_rule, R"("z-1")")},
      {"amount as string", R"({"user":"bob","action":"buy","amount":"5"})",
       error_reply("invalid_event", amount_rule)},
      {"unknown field", R"({"user":"bob","action":"buy","amount":5,"color":"red","id":8})",
       error_reply("invalid_event", R"("unknown field \"color\"")", "8")},
      {"duplicate key", R"({"user":"bob","user":"eve","action":"buy","amount":5,"id":9})",
       error_reply("invalid_event", R"("duplicate field \"user\"")", "9")},
      {"missing user", R"({"action":"buy","amount":5,"id":10})",
       error_reply("invalid_event", R"("missing field \"user\"")", "10")},
      {"query with an extra field", R"({"type":"health","user":"x","id":11})",
       error_reply("invalid_event", R"("unknown field \"user\"")", "11")},
      {"invalid id (not echoed)", R"({"user":"bob","action":"buy","amount":5,"id":1.5})",
       error_reply(
           "invalid_event",
           R"("id must be a string of at most 64 bytes or an integer from -2^63 to 2^63-1")")},
      {"unknown type", R"({"type":"stats","id":12})",
       error_reply("unknown_type",
                   R"x("unknown request type \"stats\" (expected health, metrics or balance)")x",
                   "12")},
      {"line too long",
       R"({"user":")" + std::string(5'000, 'x') + R"(","action":"buy","amount":1})",
       error_reply("line_too_long",
                   R"("line longer than 4096 bytes; skipped to the next newline")")},
  };
  ServerProcess server({});
  Client client(server.port());
  std::int64_t next_id = 1'000;
  int valid_events = 0;
  for (const BadLine& bad : bad_lines) {
    const std::int64_t event_id = next_id++;
    const std::int64_t health_id = next_id++;
    ASSERT_TRUE(client.send(bad.line + "\n" + event_line("bob", 1, event_id) + "\n" +
                            health_line(health_id) + "\n"));
    const auto replies = client.read_lines(3);
    ASSERT_EQ(replies.size(), 3u) << bad.what;
    EXPECT_EQ(replies[0], bad.reply) << bad.what;
    EXPECT_EQ(replies[1], accepted_reply(event_id)) << "event after: " << bad.what;
    EXPECT_EQ(replies[2], health_reply(health_id)) << "health after: " << bad.what;
    ++valid_events;
  }

  // Blank lines (empty, blanks only, a bare CR) are skipped: the next reply is the health one.
  ASSERT_TRUE(client.send("\n   \t \n\r\n \t\r\n" + health_line(1) + "\n"));
  EXPECT_EQ(client.read_line(), health_reply(1));
  // CRLF endings: the '\r' is stripped, the request is served.
  ASSERT_TRUE(client.send(event_line("bob", 1, 2) + "\r\n" + health_line(3) + "\r\n"));
  EXPECT_EQ(client.read_line(), accepted_reply(2));
  EXPECT_EQ(client.read_line(), health_reply(3));
  ++valid_events;

  ASSERT_TRUE(wait_until_drained(client, deadline_in(kDrainTimeout)).has_value());
  EXPECT_EQ(client.request(balance_line("bob")),
            balance_reply("bob", UserTotals{valid_events, valid_events}));

  const auto counters = stop_and_check_final(server);
  ASSERT_TRUE(counters.has_value());
  EXPECT_EQ(counters->invalid, static_cast<std::int64_t>(bad_lines.size()));
  EXPECT_EQ(counters->accepted, valid_events);
  EXPECT_EQ(counters->received, static_cast<std::int64_t>(bad_lines.size()) + valid_events);
}

}  // namespace
}  // namespace anubis::test
