// RESP2, the Redis serialization protocol (https://redis.io/docs/reference/protocol-spec/): an
// encoder for commands and a parser for replies.
//
// The parser is incremental in the way a load client needs: parse() looks at the unread bytes of
// a read buffer and either returns one complete reply and its size, or says the reply is not
// complete yet (the caller keeps the bytes and calls again after the next read, so a reply split
// across reads at any byte is parsed once it is whole), or says the bytes are no RESP at all.
// Replies are views into the buffer; nothing is allocated. Aggregates (arrays) are checked and
// skipped whole; their elements are not returned, as no reply this client expects is one.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

namespace anubis::harness::load::resp {

enum class Type : char {
  simple_string = '+',
  error = '-',
  integer = ':',
  bulk_string = '$',
  array = '*',
};

struct Reply {
  Type type = Type::simple_string;
  // simple_string, error, bulk_string: the payload (bulk: without its CRLF).
  std::string_view text;
  // integer: the value; bulk_string and array: the length, -1 for a nil reply.
  std::int64_t integer = 0;
  bool nil() const noexcept {
    return integer < 0 && (type == Type::bulk_string || type == Type::array);
  }
};

enum class Status : std::uint8_t { complete, incomplete, malformed };

struct Parsed {
  Status status = Status::incomplete;
  std::size_t size = 0;  // bytes of the reply, when complete
};

namespace detail {

// Nesting deeper than this is refused as malformed, so hostile input cannot exhaust the stack.
inline constexpr int kMaxDepth = 8;
// Redis caps bulk strings at 512 MB (proto-max-bulk-len); larger lengths are malformed.
inline constexpr std::int64_t kMaxBulk = 512LL * 1024 * 1024;

// Parses the integer of the header line at `p` (after the type byte) up to its CRLF: status
// complete with `next` after the CRLF, incomplete, or malformed.
struct Header {
  Status status = Status::incomplete;
  const char* next = nullptr;
};
inline Header parse_header(const char* p, const char* end, std::int64_t& value) {
  const auto* cr =
      static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
  if (cr == nullptr || cr + 1 == end) return {};
  if (cr[1] != '\n') return {Status::malformed};
  const auto [stop, ec] = std::from_chars(p, cr, value);
  if (ec != std::errc{} || stop != cr || p == cr) return {Status::malformed};
  return {Status::complete, cr + 2};
}

inline Parsed parse(const char* begin, const char* end, Reply& out, int depth) {
  if (begin == end) return {};
  const char* p = begin + 1;
  switch (static_cast<Type>(*begin)) {
    case Type::simple_string:
    case Type::error: {
      const auto* lf =
          static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      if (lf == nullptr) return {};
      if (lf == p || lf[-1] != '\r') return {Status::malformed, 0};
      out.type = static_cast<Type>(*begin);
      out.text = {p, lf - 1};
      out.integer = 0;
      return {Status::complete, static_cast<std::size_t>(lf + 1 - begin)};
    }
    case Type::integer: {
      const Header header = parse_header(p, end, out.integer);
      if (header.status != Status::complete) return {header.status, 0};
      out.type = Type::integer;
      out.text = {};
      return {Status::complete, static_cast<std::size_t>(header.next - begin)};
    }
    case Type::bulk_string: {
      std::int64_t length = 0;
      const Header header = parse_header(p, end, length);
      if (header.status != Status::complete) return {header.status, 0};
      if (length < -1 || length > kMaxBulk) return {Status::malformed, 0};
      const char* const next = header.next;
      out.type = Type::bulk_string;
      out.integer = length;
      if (length < 0) {
        out.text = {};
        return {Status::complete, static_cast<std::size_t>(next - begin)};
      }
      const auto bytes = static_cast<std::size_t>(length);
      if (static_cast<std::size_t>(end - next) < bytes + 2) return {};
      if (next[bytes] != '\r' || next[bytes + 1] != '\n') return {Status::malformed, 0};
      out.text = {next, bytes};
      return {Status::complete, static_cast<std::size_t>(next + bytes + 2 - begin)};
    }
    case Type::array: {
      std::int64_t count = 0;
      const Header header = parse_header(p, end, count);
      if (header.status != Status::complete) return {header.status, 0};
      if (count < -1 || depth >= kMaxDepth) return {Status::malformed, 0};
      const char* next = header.next;
      for (std::int64_t i = 0; i < count; ++i) {
        Reply element;
        const Parsed parsed = parse(next, end, element, depth + 1);
        if (parsed.status != Status::complete) return parsed;
        next += parsed.size;
      }
      out.type = Type::array;
      out.integer = count;
      out.text = {};
      return {Status::complete, static_cast<std::size_t>(next - begin)};
    }
  }
  return {Status::malformed, 0};
}

}  // namespace detail

// Parses the reply at the start of [begin, end) into `out` (valid while the buffer is).
inline Parsed parse(const char* begin, const char* end, Reply& out) {
  return detail::parse(begin, end, out, 0);
}

// Encoding: a command is an array of bulk strings. Bytes needed for one argument of n bytes:
// "$" + up to 10 length digits + CRLF + payload + CRLF.
constexpr std::size_t bulk_bytes(std::size_t n) {
  return 1 + 10 + 2 + n + 2;
}

inline char* append_bytes(char* out, std::string_view text) noexcept {
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

inline char* append_header(char* out, char type, std::size_t value) noexcept {
  *out++ = type;
  out = std::to_chars(out, out + 20, value).ptr;
  *out++ = '\r';
  *out++ = '\n';
  return out;
}

inline char* append_bulk(char* out, std::string_view payload) noexcept {
  out = append_header(out, '$', payload.size());
  out = append_bytes(out, payload);
  *out++ = '\r';
  *out++ = '\n';
  return out;
}

// The command as RESP, for paths off the hot one (verification, tests).
inline std::string command(std::initializer_list<std::string_view> arguments) {
  std::size_t bytes = 1 + 10 + 2;
  for (const auto argument : arguments) bytes += bulk_bytes(argument.size());
  std::string out(bytes, '\0');
  char* p = append_header(out.data(), '*', arguments.size());
  for (const auto argument : arguments) p = append_bulk(p, argument);
  out.resize(static_cast<std::size_t>(p - out.data()));
  return out;
}

}  // namespace anubis::harness::load::resp
