// Tests for the reply formatters (docs/PROTOCOL.md): each append_* function must produce exactly
// the documented line, byte for byte, with no id, an integer id and a string id that needs
// escaping. Full strings are compared so that field order, spacing and the final '\n' are pinned.
#include "reply.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "request.hpp"

namespace anubis {
namespace {

RequestId no_id() {
  return RequestId{};
}

RequestId int_id(std::int64_t value) {
  RequestId id;
  id.kind = RequestId::Kind::integer;
  id.integer = value;
  return id;
}

// Precondition: text.size() <= kMaxIdBytes.
RequestId string_id(std::string_view text) {
  RequestId id;
  id.kind = RequestId::Kind::string;
  id.size = static_cast<std::uint8_t>(text.size());
  text.copy(id.text, text.size());
  return id;
}

// A string id exercising every escape: quote, backslash, newline, a control character, and
// UTF-8 ("é") that must pass through unchanged.
const std::string kTrickyId = "a\"b\\c\nd\x01\xc3\xa9";
// How kTrickyId must appear in a reply, quotes included.
const std::string kTrickyIdJson = "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\"";

// The reply line an append_* call produces for `id`, given the line's text before the id.
struct IdVariant {
  const char* name;
  RequestId id;
  std::string suffix;  // what close_reply must append: the id member (if any), "}\n"
};

std::vector<IdVariant> id_variants() {
  return {
      {"no id", no_id(), "}\n"},
      {"integer id", int_id(42), ",\"id\":42}\n"},
      {"negative integer id", int_id(-7), ",\"id\":-7}\n"},
      {"int64 max id", int_id(std::numeric_limits<std::int64_t>::max()),
       ",\"id\":9223372036854775807}\n"},
      {"int64 min id", int_id(std::numeric_limits<std::int64_t>::min()),
       ",\"id\":-9223372036854775808}\n"},
      {"string id", string_id("req-1"), ",\"id\":\"req-1\"}\n"},
      {"empty string id", string_id(""), ",\"id\":\"\"}\n"},
      {"string id needing escapes", string_id(kTrickyId), ",\"id\":" + kTrickyIdJson + "}\n"},
  };
}

template <class Append>
void expect_line_for_every_id(std::string_view head, Append append) {
  for (const IdVariant& v : id_variants()) {
    SCOPED_TRACE(v.name);
    std::string out;
    append(out, v.id);
    EXPECT_EQ(out, std::string(head) + v.suffix);
  }
}

MetricsSnapshot sample_metrics() {
  MetricsSnapshot m;
  m.received = 1;
  m.accepted = 2;
  m.dropped = 3;
  m.invalid = 4;
  m.rejected_shutting_down = 5;
  m.processed = 6;
  m.overflowed = 7;
  m.queue_depth = 8;
  m.connections_open = 9;
  m.connections_total = 10;
  return m;
}

const std::string kSampleMetricFields =
    "\"received\":1,\"accepted\":2,\"dropped\":3,\"invalid\":4,\"rejected_shutting_down\":5,"
    "\"processed\":6,\"overflowed\":7,\"queue_depth\":8,\"connections_open\":9,"
    "\"connections_total\":10";

// ---------------------------------------------------------------------------------------------
// One line per reply kind

// accepted: {"status":"accepted"} plus the id.
TEST(Reply, Accepted) {
  expect_line_for_every_id("{\"status\":\"accepted\"",
                           [](std::string& out, const RequestId& id) { append_accepted(out, id); });
}

// server_busy: status rejected, reason server_busy and retry_after_ms, then the id.
TEST(Reply, ServerBusy) {
  expect_line_for_every_id(
      "{\"status\":\"rejected\",\"reason\":\"server_busy\",\"retry_after_ms\":50",
      [](std::string& out, const RequestId& id) { append_server_busy(out, id, 50); });
}

// retry_after_ms is written in full at both ends of its uint32 range.
TEST(Reply, ServerBusyRetryRange) {
  std::string out;
  append_server_busy(out, no_id(), 0);
  EXPECT_EQ(out, "{\"status\":\"rejected\",\"reason\":\"server_busy\",\"retry_after_ms\":0}\n");
  out.clear();
  append_server_busy(out, no_id(), std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(out,
            "{\"status\":\"rejected\",\"reason\":\"server_busy\",\"retry_after_ms\":4294967295}\n");
}

// shutting_down: status rejected, reason shutting_down, then the id.
TEST(Reply, ShuttingDown) {
  expect_line_for_every_id(
      "{\"status\":\"rejected\",\"reason\":\"shutting_down\"",
      [](std::string& out, const RequestId& id) { append_shutting_down(out, id); });
}

// error: status error, the code's wire name as reason, the detail as a JSON string, the id.
TEST(Reply, Error) {
  expect_line_for_every_id(
      "{\"status\":\"error\",\"reason\":\"invalid_event\",\"detail\":"
      "\"amount must be an integer\"",
      [](std::string& out, const RequestId& id) {
        append_error(out, id, ErrorCode::invalid_event, "amount must be an integer");
      });
}

// error lines use the wire name of every error code.
TEST(Reply, ErrorEveryCode) {
  const struct {
    ErrorCode code;
    const char* reason;
  } rows[] = {
      {ErrorCode::invalid_json, "invalid_json"},
      {ErrorCode::invalid_event, "invalid_event"},
      {ErrorCode::line_too_long, "line_too_long"},
      {ErrorCode::unknown_type, "unknown_type"},
      {ErrorCode::too_many_connections, "too_many_connections"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.reason);
    std::string out;
    append_error(out, no_id(), row.code, "d");
    EXPECT_EQ(out, std::string("{\"status\":\"error\",\"reason\":\"") + row.reason +
                       "\",\"detail\":\"d\"}\n");
  }
}

// The error detail is escaped like any JSON string (it may quote a user-supplied field name).
TEST(Reply, ErrorDetailIsEscaped) {
  std::string out;
  append_error(out, int_id(1), ErrorCode::invalid_event, "unknown field \"a\\b\"\n\x1f");
  EXPECT_EQ(out,
            "{\"status\":\"error\",\"reason\":\"invalid_event\","
            "\"detail\":\"unknown field \\\"a\\\\b\\\"\\n\\u001f\",\"id\":1}\n");
  out.clear();
  append_error(out, no_id(), ErrorCode::invalid_json, "");
  EXPECT_EQ(out, "{\"status\":\"error\",\"reason\":\"invalid_json\",\"detail\":\"\"}\n");
}

// health: {"status":"ok"} plus the id.
TEST(Reply, Health) {
  expect_line_for_every_id("{\"status\":\"ok\"",
                           [](std::string& out, const RequestId& id) { append_health(out, id); });
}

// balance: status ok, user, balance, events, then the id.
TEST(Reply, Balance) {
  expect_line_for_every_id(
      "{\"status\":\"ok\",\"user\":\"alice\",\"balance\":-250,\"events\":3",
      [](std::string& out, const RequestId& id) { append_balance(out, id, "alice", -250, 3); });
}

// balance writes the int64 and uint64 extremes in full and escapes/passes through the user.
TEST(Reply, BalanceExtremesAndUserEscaping) {
  std::string out;
  append_balance(out, no_id(), "b\"o\\b\xc3\xa9", std::numeric_limits<std::int64_t>::min(),
                 std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(out,
            "{\"status\":\"ok\",\"user\":\"b\\\"o\\\\b\xc3\xa9\","
            "\"balance\":-9223372036854775808,\"events\":18446744073709551615}\n");
  out.clear();
  append_balance(out, string_id("q"), "z", std::numeric_limits<std::int64_t>::max(), 0);
  EXPECT_EQ(out,
            "{\"status\":\"ok\",\"user\":\"z\",\"balance\":9223372036854775807,\"events\":0,"
            "\"id\":\"q\"}\n");
}

// metrics: status ok, then all ten counters in their documented order, then the id.
TEST(Reply, Metrics) {
  const MetricsSnapshot m = sample_metrics();
  expect_line_for_every_id(
      "{\"status\":\"ok\"," + kSampleMetricFields,
      [&m](std::string& out, const RequestId& id) { append_metrics(out, id, m); });
}

// metrics_json: the same ten keys in the same order, no status, no id, no newline.
TEST(Reply, MetricsJson) {
  EXPECT_EQ(metrics_json(sample_metrics()), "{" + kSampleMetricFields + "}");
  EXPECT_EQ(metrics_json(MetricsSnapshot{}),
            "{\"received\":0,\"accepted\":0,\"dropped\":0,\"invalid\":0,"
            "\"rejected_shutting_down\":0,\"processed\":0,\"overflowed\":0,\"queue_depth\":0,"
            "\"connections_open\":0,\"connections_total\":0}");
}

// metrics_json writes uint64 max counters in full.
TEST(Reply, MetricsJsonLargeValues) {
  MetricsSnapshot m;
  m.connections_total = std::numeric_limits<std::uint64_t>::max();
  const std::string json = metrics_json(m);
  EXPECT_NE(json.find("\"connections_total\":18446744073709551615}"), std::string::npos) << json;
}

// metrics_json's keys, read back by a JSON parser, are exactly the ten counters, in order.
TEST(Reply, MetricsJsonHasTenKeysInOrder) {
  const boost::json::object obj = boost::json::parse(metrics_json(sample_metrics())).as_object();
  const char* const keys[] = {
      "received",  "accepted",   "dropped",     "invalid",          "rejected_shutting_down",
      "processed", "overflowed", "queue_depth", "connections_open", "connections_total"};
  ASSERT_EQ(obj.size(), 10u);
  std::size_t i = 0;
  for (const auto& kv : obj) {
    EXPECT_EQ(std::string_view(kv.key()), keys[i]);
    EXPECT_EQ(boost::json::value_to<std::uint64_t>(kv.value()), i + 1) << keys[i];
    ++i;
  }
}

// ---------------------------------------------------------------------------------------------
// Concatenation and JSON string escaping

// append_* functions append: several replies in one buffer leave in order, each one line.
TEST(Reply, AppendsWithoutClearing) {
  std::string out = "prefix\n";
  append_accepted(out, int_id(1));
  append_health(out, string_id("h"));
  append_shutting_down(out, no_id());
  EXPECT_EQ(out,
            "prefix\n"
            "{\"status\":\"accepted\",\"id\":1}\n"
            "{\"status\":\"ok\",\"id\":\"h\"}\n"
            "{\"status\":\"rejected\",\"reason\":\"shutting_down\"}\n");
}

// append_json_string escapes " \\ \n \r \t by name, other C0 as \u00xx; DEL and UTF-8 pass.
TEST(Reply, JsonStringEscaping) {
  const struct {
    std::string in;
    std::string out;
  } rows[] = {
      {"", "\"\""},
      {"plain", "\"plain\""},
      {"\"", "\"\\\"\""},
      {"\\", "\"\\\\\""},
      {"\n", "\"\\n\""},
      {"\r", "\"\\r\""},
      {"\t", "\"\\t\""},
      {std::string("\0", 1), "\"\\u0000\""},
      {"\x01", "\"\\u0001\""},
      {"\x08", "\"\\u0008\""},
      {"\x0c", "\"\\u000c\""},
      {"\x1f", "\"\\u001f\""},
      {"\x7f", "\"\x7f\""},
      {"/", "\"/\""},
      {"\xc3\xa9", "\"\xc3\xa9\""},
      {"\xc2\x85", "\"\xc2\x85\""},
      {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
      {kTrickyId, kTrickyIdJson},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.out);
    std::string out = "x";
    append_json_string(out, row.in);
    EXPECT_EQ(out, "x" + row.out);
  }
}

// ASCII round-trips through append_json_string; a reply line is one JSON object, id intact.
TEST(Reply, RoundTripsThroughJsonParser) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  std::string quoted;
  append_json_string(quoted, all);
  EXPECT_EQ(boost::json::parse(quoted).as_string(), all);

  for (const IdVariant& v : id_variants()) {
    SCOPED_TRACE(v.name);
    std::string out;
    append_balance(out, v.id, kTrickyId, -1, 1);
    ASSERT_EQ(out.back(), '\n');
    ASSERT_EQ(out.find('\n'), out.size() - 1) << "a reply is exactly one line";
    const boost::json::object obj = boost::json::parse(out).as_object();
    EXPECT_EQ(obj.at("user").as_string(), kTrickyId);
    switch (v.id.kind) {
      case RequestId::Kind::none:
        EXPECT_FALSE(obj.contains("id"));
        break;
      case RequestId::Kind::integer:
        EXPECT_EQ(boost::json::value_to<std::int64_t>(obj.at("id")), v.id.integer);
        break;
      case RequestId::Kind::string:
        EXPECT_EQ(obj.at("id").as_string(), v.id.string_view());
        break;
    }
  }
}

// A string id parsed from a request comes back in the reply as the same JSON value.
TEST(Reply, ParsedIdEchoesUnchanged) {
  RequestParser parser;
  const Request& r =
      parser.parse("{\"type\":\"health\",\"id\":\"q\\\"\\\\\\n\\u0001\\u00e9\\ud83d\\ude00\"}");
  ASSERT_EQ(r.type, RequestType::health) << r.detail;
  std::string out;
  append_health(out, r.id);
  EXPECT_EQ(out, "{\"status\":\"ok\",\"id\":\"q\\\"\\\\\\n\\u0001\xc3\xa9\xf0\x9f\x98\x80\"}\n");
}

}  // namespace
}  // namespace anubis
