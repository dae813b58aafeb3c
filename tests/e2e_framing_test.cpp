// End-to-end tests of framing: how the server cuts a byte stream into lines must not depend on
// how TCP happens to cut it into segments. A seeded stream of mixed lines is sent once in one
// write and once in random small pieces; both must produce the reply sequence a line-by-line
// model of docs/PROTOCOL.md predicts. Also: an unterminated last line before EOF, and blank
// lines longer than --max-line-bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/client.hpp"
#include "support/protocol.hpp"
#include "support/server_process.hpp"

namespace anubis::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxLine = 128;  // --max-line-bytes of these tests: long lines are cheap
constexpr auto kExchangeTimeout = 60s;

const std::string kTooLongReply =
    R"({"status":"error","reason":"line_too_long","detail":"line longer than 128 bytes; skipped to the next newline"})";

// A stream to send and the replies it must produce, in order.
struct Stream {
  std::string bytes;
  std::vector<std::string> replies;
};

// Builds a deterministic stream of mixed lines: events (with integer, string or no id), health
// queries, blank lines, invalid JSON, invalid events, unknown types, lines longer than
// kMaxLine (some longer than the server's read buffer), lines of exactly kMaxLine and
// kMaxLine + 1 bytes; about one line in six ends with CRLF. No metrics or balance queries:
// their replies depend on timing.
class StreamBuilder {
 public:
  explicit StreamBuilder(std::uint32_t seed) : rng_(seed) {}

  Stream build(std::size_t lines) {
    Stream out;
    for (std::size_t i = 0; i < lines; ++i) add_line(out);
    return out;
  }

 private:
  int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(rng_); }

  // An id as JSON text, or "" for none.
  std::string id_json() {
    const std::int64_t n = next_id_++;
    switch (pick(0, 2)) {
      case 0:
        return "";
      case 1:
        return std::to_string(n);
      default:
        return "\"s-" + std::to_string(n) + "\"";
    }
  }

  static std::string with_id(std::string head, const std::string& id) {
    if (!id.empty()) head += ",\"id\":" + id;
    return head + "}";
  }

  // A valid event exactly `size` bytes long: blanks inside the object pad it.
  std::string padded_event(std::size_t size, std::int64_t id) {
    std::string head =
        "{\"user\":\"pad\",\"action\":\"buy\",\"amount\":1,\"id\":" + std::to_string(id);
    head += std::string(size - head.size() - 1, pick(0, 1) == 0 ? ' ' : '\t');
    return head + "}";
  }

  void add_line(Stream& out) {
    std::string line;
    std::optional<std::string> reply;
    const int kind = pick(0, 99);
    if (kind < 40) {
      const std::string id = id_json();
      const std::string user = "u" + std::to_string(pick(0, 19));
      line = with_id("{\"user\":\"" + user + "\",\"action\":\"" + (pick(0, 1) ? "buy" : "sell") +
                         "\",\"amount\":" + std::to_string(pick(1, 1'000'000'000)),
                     id);
      reply = with_id("{\"status\":\"accepted\"", id);
    } else if (kind < 50) {
      const std::string id = id_json();
      line = with_id("{\"type\":\"health\"", id);
      reply = with_id("{\"status\":\"ok\"", id);
    } else if (kind < 58) {
      const int blanks = pick(0, 20);
      for (int b = 0; b < blanks; ++b) line += pick(0, 1) ? ' ' : '\t';
    } else if (kind < 64) {
      static const std::pair<const char*, const char*> kInvalidJson[] = {
          {"hello", "syntax error at byte 0"},
          {R"({"user":"bob","action":"buy")", "incomplete JSON value"},
          {R"({"type":"health"} 1)", "unexpected data after the JSON value"},
      };
      const auto& [text, detail] = kInvalidJson[pick(0, 2)];
      line = text;
      reply =
          std::string(R"({"status":"error","reason":"invalid_json","detail":")") + detail + "\"}";
    } else if (kind < 72) {
      static const std::pair<const char*, const char*> kInvalidEvent[] = {
          {R"({"user":"bob","action":"buy","amount":0)",
           R"(amount must be an integer from 1 to 1000000000)"},
          {R"({"user":"bob","action":"buy","amount":5,"color":"red")",
           R"(unknown field \"color\")"},
          {R"({"user":"bob","user":"eve","action":"buy","amount":5)",
           R"(duplicate field \"user\")"},
          {R"({"action":"buy","amount":5)", R"(missing field \"user\")"},
          {R"({"user":"bob","action":"hold","amount":5)", R"(action must be \"buy\" or \"sell\")"},
      };
      const auto& [head, detail] = kInvalidEvent[pick(0, 4)];
      const std::string id = id_json();
      line = with_id(head, id);
      reply = with_id(
          std::string(R"({"status":"error","reason":"invalid_event","detail":")") + detail + "\"",
          id);
    } else if (kind < 75) {
      const std::string id = id_json();
      line = with_id(R"({"type":"stats")", id);
      reply = with_id(
          R"x({"status":"error","reason":"unknown_type","detail":"unknown request type \"stats\" (expected health, metrics or balance)")x",
          id);
    } else if (kind < 88) {
      // Longer than kMaxLine, and now and then longer than the server's 8 KiB read buffer.
      const std::size_t size = pick(0, 9) == 0 ? static_cast<std::size_t>(pick(8'000, 20'000))
                                               : static_cast<std::size_t>(pick(129, 700));
      line = "{\"user\":\"" + std::string(size - 37, 'x') + "\",\"action\":\"buy\",\"amount\":1}";
      reply = kTooLongReply;
    } else {
      const std::int64_t id = next_id_++;
      const bool fits = pick(0, 1) == 0;
      line = padded_event(fits ? kMaxLine : kMaxLine + 1, id);
      reply = fits ? accepted_reply(id) : kTooLongReply;
    }
    out.bytes += line;
    out.bytes += pick(0, 5) == 0 ? "\r\n" : "\n";
    if (reply) out.replies.push_back(std::move(*reply));
  }

  std::mt19937 rng_;
  std::int64_t next_id_ = 1;
};

// Sends `chunks` one write each on a new connection (collecting replies as they come, so
// neither side's buffers fill up), then closes the sending side and reads every reply up to
// the server's EOF.
std::vector<std::string> exchange(std::uint16_t port, const std::vector<std::string>& chunks) {
  const Deadline deadline = deadline_in(kExchangeTimeout);
  Client client(port);
  std::vector<std::string> replies;
  for (const std::string& chunk : chunks) {
    if (!client.send(chunk, deadline)) {
      ADD_FAILURE() << "send failed (the server closed the connection or stopped reading)";
      break;
    }
    for (auto& line : client.read_ready_lines()) replies.push_back(std::move(line));
  }
  client.shutdown_write();
  bool closed = false;
  for (auto& line : client.read_until_eof(deadline, &closed)) replies.push_back(std::move(line));
  EXPECT_TRUE(closed) << "the server did not close the connection after EOF";
  return replies;
}

// "" if equal, else where the two reply sequences first differ.
std::string first_difference(const std::vector<std::string>& actual,
                             const std::vector<std::string>& expected) {
  std::ostringstream out;
  for (std::size_t i = 0; i < std::max(actual.size(), expected.size()); ++i) {
    const std::string a = i < actual.size() ? actual[i] : "(none)";
    const std::string e = i < expected.size() ? expected[i] : "(none)";
    if (a != e) {
      out << "reply " << i << " of " << actual.size() << " (expected " << expected.size()
          << "):\n  actual:   " << a.substr(0, 200) << "\n  expected: " << e.substr(0, 200);
      return out.str();
    }
  }
  return "";
}

// SIGTERMs the server and checks a clean exit (a sanitizer report would make it fail).
void stop_cleanly(ServerProcess& server) {
  server.terminate();
  EXPECT_EQ(server.wait_exit(deadline_in(kExchangeTimeout)), std::optional<int>(0));
  const auto final_json = server.final_json();
  ASSERT_TRUE(final_json.has_value()) << server.output();
  const auto counters = parse_counters(*final_json);
  ASSERT_TRUE(counters.has_value()) << *final_json;
  EXPECT_TRUE(counters_balance(*counters)) << *final_json;
}

// Random pieces of 1..64 bytes.
std::vector<std::string> split_randomly(const std::string& bytes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> size_of(1, 64);
  std::vector<std::string> chunks;
  for (std::size_t at = 0; at < bytes.size();) {
    const std::size_t n = std::min(size_of(rng), bytes.size() - at);
    chunks.push_back(bytes.substr(at, n));
    at += n;
  }
  return chunks;
}

// 2,000 mixed lines get the predicted replies whether sent in one write or in 1..64-byte pieces.
TEST(E2eFraming, RepliesDoNotDependOnHowTheStreamIsCut) {
  constexpr std::uint32_t kSeed = 20'240'601;
  const Stream stream = StreamBuilder(kSeed).build(2'000);
  // A queue far larger than the stream's events: no reply is ever server_busy.
  ServerProcess server({"--max-line-bytes", std::to_string(kMaxLine), "--queue-capacity", "65534",
                        "--queue", "mutex"});

  const auto whole = exchange(server.port(), {stream.bytes});
  EXPECT_EQ(first_difference(whole, stream.replies), "") << "sent in one write";
  const auto pieces = split_randomly(stream.bytes, kSeed + 1);
  const auto cut = exchange(server.port(), pieces);
  EXPECT_EQ(first_difference(cut, stream.replies), "")
      << "sent in " << pieces.size() << " writes of 1 to 64 bytes";
  EXPECT_EQ(first_difference(cut, whole), "");
  stop_cleanly(server);
}

// At EOF an unterminated last line (even ending in '\r') is answered, then the server closes.
TEST(E2eFraming, UnterminatedLastLineIsAnsweredBeforeTheServerCloses) {
  ServerProcess server({"--max-line-bytes", std::to_string(kMaxLine)});
  EXPECT_EQ(exchange(server.port(), {event_line("eve", 5, 1) + "\n" + health_line(2)}),
            (std::vector<std::string>{accepted_reply(1), health_reply(2)}));
  EXPECT_EQ(exchange(server.port(), {health_line(3) + "\n" + event_line("eve", -5, 4) + "\r"}),
            (std::vector<std::string>{health_reply(3), accepted_reply(4)}));
  // Cut inside the last line too: the server must not answer the line before it is complete.
  EXPECT_EQ(exchange(server.port(), {"{\"type\":\"hea", "lth\",\"id\":5}"}),
            (std::vector<std::string>{health_reply(5)}));
  stop_cleanly(server);
}

// A blank line longer than --max-line-bytes is answered the same way whatever its length.
TEST(E2eFraming, OverlongBlankLineGetsTheSameTreatmentAtAnyLength) {
  // Such a line is blank and too long at once; the protocol may treat it either way (no reply,
  // or line_too_long), but always the same way. A 200-byte one arrives in one read; a
  // 10,000-byte one cannot (the server reads at most 8 KiB at a time), so a difference between
  // them means the reply depends on where the stream was cut.
  ServerProcess server({"--max-line-bytes", std::to_string(kMaxLine)});
  const auto replies =
      exchange(server.port(), {std::string(200, ' ') + "\n" + health_line(1) + "\n" +
                               std::string(10'000, ' ') + "\n" + health_line(2) + "\n"});
  const auto first_health = std::find(replies.begin(), replies.end(), health_reply(1));
  const auto second_health = std::find(replies.begin(), replies.end(), health_reply(2));
  ASSERT_NE(first_health, replies.end());
  ASSERT_NE(second_health, replies.end());
  const std::vector<std::string> after_short(replies.begin(), first_health);
  const std::vector<std::string> after_long(first_health + 1, second_health);
  EXPECT_EQ(after_short, after_long)
      << "replies to a 200-byte blank line vs a 10,000-byte one (--max-line-bytes 128)";
  stop_cleanly(server);
}

}  // namespace
}  // namespace anubis::test
