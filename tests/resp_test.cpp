#include "load/resp.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "load/protocol.hpp"

namespace anubis::harness::load {
namespace {

// The encoder writes a command as an array of bulk strings.
TEST(Resp, EncodesCommands) {
  EXPECT_EQ(resp::command({"GET", "k:1"}), "*2\r\n$3\r\nGET\r\n$3\r\nk:1\r\n");
  EXPECT_EQ(resp::command({"SET", "", "x"}), "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$1\r\nx\r\n");
}

// The hot-path INCRBY/DECRBY encoding is byte-identical to the generic encoder and within the
// advertised size bound, for short and long keys and amounts.
TEST(Resp, EventEncodingMatchesGenericEncoder) {
  for (const std::string& prefix : {std::string(), std::string("p-"), std::string(50, 'k')}) {
    for (const Event event :
         {Event{0, false, 1}, Event{4'294'967'295U, true, 1'000}, Event{12'345, false, 999}}) {
      std::vector<char> buffer(RespProtocol::max_request_bytes(prefix.size()));
      const char* end = RespProtocol::append_event(buffer.data(), prefix, event);
      const std::string encoded(static_cast<const char*>(buffer.data()), end);
      const std::string key = prefix + std::to_string(event.user);
      EXPECT_EQ(encoded, resp::command({event.sell ? "DECRBY" : "INCRBY", key,
                                        std::to_string(event.amount)}));
    }
  }
}

struct Expected {
  resp::Type type;
  std::int64_t integer;
  std::string text;
};

// Parses `stream` handing the parser `chunk` new bytes at a time, as reads would, keeping the
// unparsed rest; returns the replies in order.
std::vector<Expected> parse_in_chunks(const std::string& stream, std::size_t chunk) {
  std::vector<Expected> replies;
  std::string buffer;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    buffer += stream.substr(at, chunk);
    for (;;) {
      resp::Reply reply;
      const resp::Parsed parsed = resp::parse(buffer.data(), buffer.data() + buffer.size(), reply);
      EXPECT_NE(parsed.status, resp::Status::malformed);
      if (parsed.status != resp::Status::complete) break;
      replies.push_back({reply.type, reply.integer, std::string(reply.text)});
      buffer.erase(0, parsed.size);
    }
  }
  EXPECT_TRUE(buffer.empty());
  return replies;
}

// Every reply type comes back whole and in order however the stream is split, down to single
// bytes (a split inside CRLF, inside a length, inside a bulk payload).
TEST(Resp, ParsesAcrossSplitReads) {
  const std::string stream =
      ":42\r\n:-7\r\n+OK\r\n-ERR value is not an integer\r\n$5\r\nhe\r\no\r\n$-1\r\n$0\r\n\r\n"
      "*2\r\n:1\r\n$1\r\nx\r\n*-1\r\n";
  const std::vector<Expected> want = {
      {resp::Type::integer, 42, ""},
      {resp::Type::integer, -7, ""},
      {resp::Type::simple_string, 0, "OK"},
      {resp::Type::error, 0, "ERR value is not an integer"},
      {resp::Type::bulk_string, 5, "he\r\no"},
      {resp::Type::bulk_string, -1, ""},
      {resp::Type::bulk_string, 0, ""},
      {resp::Type::array, 2, ""},
      {resp::Type::array, -1, ""},
  };
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    const std::vector<Expected> got = parse_in_chunks(stream, chunk);
    ASSERT_EQ(got.size(), want.size()) << "chunk " << chunk;
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].type, want[i].type) << i;
      EXPECT_EQ(got[i].integer, want[i].integer) << i;
      EXPECT_EQ(got[i].text, want[i].text) << i;
    }
  }
}

// Every proper prefix of a reply is incomplete, never malformed or complete.
TEST(Resp, PrefixesAreIncomplete) {
  for (const std::string reply : {":12345\r\n", "$3\r\nabc\r\n", "*1\r\n$1\r\nz\r\n", "+OK\r\n"}) {
    for (std::size_t n = 0; n < reply.size(); ++n) {
      resp::Reply parsed;
      EXPECT_EQ(resp::parse(reply.data(), reply.data() + n, parsed).status,
                resp::Status::incomplete)
          << reply << " " << n;
    }
  }
}

// Bytes that are no RESP are malformed rather than waited for.
TEST(Resp, RejectsMalformedReplies) {
  for (const std::string bad : {"?\r\n", ":12a\r\n", ":\r\n", ":1\rx", "$-2\r\n", "$3\r\nabcd\r\n",
                                "*-5\r\n", "$x\r\n", "+OK\n", "*1\r\n:x\r\n"}) {
    resp::Reply reply;
    EXPECT_EQ(resp::parse(bad.data(), bad.data() + bad.size(), reply).status,
              resp::Status::malformed)
        << bad;
  }
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  resp::Reply reply;
  EXPECT_EQ(resp::parse(deep.data(), deep.data() + deep.size(), reply).status,
            resp::Status::malformed);
}

// The redis target counts an integer reply as accepted and anything else as an error.
TEST(Resp, TargetClassifiesReplies) {
  const std::string stream = ":10\r\n-ERR no\r\n$1\r\n5\r\n";
  const char* p = stream.data();
  const char* const end = p + stream.size();
  std::vector<ReplyKind> kinds;
  while (p != end) {
    const Framed framed = RespProtocol::frame_reply(p, end);
    ASSERT_EQ(framed.status, Framed::Status::complete);
    kinds.push_back(framed.kind);
    p += framed.size;
  }
  EXPECT_EQ(kinds,
            (std::vector<ReplyKind>{ReplyKind::accepted, ReplyKind::error, ReplyKind::error}));
  EXPECT_EQ(RespProtocol::frame_reply(stream.data(), stream.data() + 3).status,
            Framed::Status::incomplete);
}

// The anubis target frames by line and classifies by the reply's leading members.
TEST(AnubisProtocol, FramesAndClassifies) {
  const std::string stream =
      "{\"status\":\"accepted\"}\n{\"status\":\"rejected\",\"reason\":\"server_busy\"}\n"
      "{\"status\":\"rejected\",\"reason\":\"shutting_down\"}\n{\"status\":\"error\"}\n{\"sta";
  const char* p = stream.data();
  const char* const end = p + stream.size();
  std::vector<ReplyKind> kinds;
  for (;;) {
    const Framed framed = AnubisProtocol::frame_reply(p, end);
    if (framed.status != Framed::Status::complete) break;
    kinds.push_back(framed.kind);
    p += framed.size;
  }
  EXPECT_EQ(kinds, (std::vector<ReplyKind>{ReplyKind::accepted, ReplyKind::server_busy,
                                           ReplyKind::shutting_down, ReplyKind::error}));
  EXPECT_EQ(std::string(p, end), "{\"sta");
}

}  // namespace
}  // namespace anubis::harness::load
