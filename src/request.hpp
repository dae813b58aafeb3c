// Parsing and validation of one protocol line (docs/PROTOCOL.md) into a Request.
//
// The parser is a Boost.JSON SAX handler rather than a DOM parse, for two reasons: Boost.JSON
// 1.81's DOM silently keeps the last of duplicate keys and turns 1e400 into infinity, and the
// handler sees both (keys one by one, and the kind of every number as it was written); and a
// handler builds no DOM, so a valid event is parsed without touching the heap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "event.hpp"

namespace anubis {

inline constexpr std::size_t kMaxIdBytes = 64;
// Deepest nesting of arrays/objects accepted before the line is refused as invalid_json.
// A valid request nests one level; the limit only bounds the parser's work on hostile input.
inline constexpr std::size_t kMaxNestingDepth = 32;

enum class RequestType : std::uint8_t { event, health, metrics, balance, invalid };

enum class ErrorCode : std::uint8_t {
  invalid_json,
  invalid_event,
  line_too_long,
  unknown_type,
  too_many_connections,
};

std::string_view to_string(ErrorCode code) noexcept;

// The optional "id" of a request, echoed verbatim in its reply.
struct RequestId {
  enum class Kind : std::uint8_t { none, string, integer };
  Kind kind = Kind::none;
  std::int64_t integer = 0;
  std::uint8_t size = 0;        // bytes used in text when kind == string
  char text[kMaxIdBytes] = {};  // the decoded string (not JSON-escaped)

  std::string_view string_view() const noexcept { return {text, size}; }
};

struct Request {
  RequestType type = RequestType::invalid;
  Event event;   // type == event: the update; type == balance: event.user is the user asked for
  RequestId id;  // valid whenever type != invalid
  ErrorCode error = ErrorCode::invalid_json;  // type == invalid
  std::string detail;                         // type == invalid: human-readable reason
};

// Parses lines one at a time. Keep one per connection: it reuses its buffers, so a valid line
// costs no allocation. Not thread-safe.
class RequestParser {
 public:
  RequestParser();
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses one line, without its line ending. The result stays valid until the next call.
  // Never throws on bad input: it is reported as RequestType::invalid with a code and detail.
  const Request& parse(std::string_view line);

 private:
  struct Impl;  // hides Boost.JSON from every includer (it is slow to compile)
  std::unique_ptr<Impl> impl_;
};

}  // namespace anubis
