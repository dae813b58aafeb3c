// The protocols the load client speaks, as one compile-time interface: the connection is a
// template over the protocol, so formatting and framing inline into the hot path with no virtual
// call per request (main picks the protocol by name once).
//
// A protocol provides:
//   kName                                    the --target name
//   max_request_bytes(prefix_bytes)          an upper bound on one request's size
//   append_event(out, prefix, event) -> end  formats one event's request at `out`
//   frame_reply(begin, end) -> Framed        frames and classifies the reply at `begin`
// Replies come in request order on a connection (both servers promise it), so the n-th framed
// reply answers the n-th request.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "load/keys.hpp"
#include "load/resp.hpp"

namespace anubis::harness::load {

enum class ReplyKind : std::uint8_t { accepted, server_busy, shutting_down, error };

struct Framed {
  enum class Status : std::uint8_t { complete, incomplete, malformed };
  Status status = Status::incomplete;
  std::size_t size = 0;  // bytes of the reply, when complete
  ReplyKind kind = ReplyKind::error;
  std::string_view text;  // the reply, for reporting the first error
};

inline constexpr std::size_t kMaxIndexDigits = 10;  // a std::uint32_t user index
inline constexpr std::size_t kMaxAmountDigits = 4;
static_assert(EventStream::kMaxEventAmount <= 9'999, "amounts must fit kMaxAmountDigits");

// docs/PROTOCOL.md: one JSON object per line each way.
struct AnubisProtocol {
  static constexpr std::string_view kName = "anubis";

  // {"user":"<prefix><index>","action":"buy","amount":<amount>}\n
  static constexpr std::string_view kHead = "{\"user\":\"";
  static constexpr std::string_view kBuy = "\",\"action\":\"buy\",\"amount\":";
  static constexpr std::string_view kSell = "\",\"action\":\"sell\",\"amount\":";
  static constexpr std::string_view kTail = "}\n";

  static constexpr std::size_t max_request_bytes(std::size_t prefix_bytes) noexcept {
    return kHead.size() + prefix_bytes + kMaxIndexDigits + kSell.size() + kMaxAmountDigits +
           kTail.size();
  }

  static char* append_event(char* out, std::string_view prefix, const Event& event) noexcept {
    out = resp::append_bytes(out, kHead);
    out = resp::append_bytes(out, prefix);
    out = std::to_chars(out, out + kMaxIndexDigits, event.user).ptr;
    out = resp::append_bytes(out, event.sell ? kSell : kBuy);
    out = std::to_chars(out, out + kMaxAmountDigits, event.amount).ptr;
    return resp::append_bytes(out, kTail);
  }

  // Replies put "status" and then "reason" first (docs/PROTOCOL.md), so a prefix names the kind.
  // A line without '\n' is incomplete; this protocol has no malformed framing.
  static Framed frame_reply(const char* begin, const char* end) noexcept {
    const auto* newline =
        static_cast<const char*>(std::memchr(begin, '\n', static_cast<std::size_t>(end - begin)));
    if (newline == nullptr) return {};
    const std::string_view line(begin, static_cast<std::size_t>(newline - begin));
    Framed framed{Framed::Status::complete, line.size() + 1, ReplyKind::error, line};
    if (line.starts_with(R"({"status":"accepted")")) {
      framed.kind = ReplyKind::accepted;
    } else if (line.starts_with(R"({"status":"rejected","reason":"server_busy")")) {
      framed.kind = ReplyKind::server_busy;
    } else if (line.starts_with(R"({"status":"rejected","reason":"shutting_down")")) {
      framed.kind = ReplyKind::shutting_down;
    }
    return framed;
  }
};

// Redis over RESP: a buy is INCRBY <prefix><index> <amount>, a sell DECRBY; the reply is the new
// value as an integer (":<n>"), counted as accepted. Redis has no notion of load shedding, so
// any other reply (an error such as a key holding a non-integer) is an error.
struct RespProtocol {
  static constexpr std::string_view kName = "redis";

  static constexpr std::size_t max_request_bytes(std::size_t prefix_bytes) noexcept {
    return std::string_view("*3\r\n").size() + resp::bulk_bytes(6) +
           resp::bulk_bytes(prefix_bytes + kMaxIndexDigits) + resp::bulk_bytes(kMaxAmountDigits);
  }

  static char* append_event(char* out, std::string_view prefix, const Event& event) noexcept {
    static constexpr std::string_view kIncrBy = "*3\r\n$6\r\nINCRBY\r\n$";
    static constexpr std::string_view kDecrBy = "*3\r\n$6\r\nDECRBY\r\n$";
    char index[kMaxIndexDigits];
    const char* const index_end = std::to_chars(index, index + sizeof index, event.user).ptr;
    const auto index_bytes = static_cast<std::size_t>(index_end - index);
    char amount[kMaxAmountDigits];
    const char* const amount_end = std::to_chars(amount, amount + sizeof amount, event.amount).ptr;
    const auto amount_bytes = static_cast<std::size_t>(amount_end - amount);

    out = resp::append_bytes(out, event.sell ? kDecrBy : kIncrBy);
    out = std::to_chars(out, out + 3, prefix.size() + index_bytes).ptr;
    *out++ = '\r';
    *out++ = '\n';
    out = resp::append_bytes(out, prefix);
    out = resp::append_bytes(out, {index, index_bytes});
    out = resp::append_bytes(out, "\r\n$");
    *out++ = static_cast<char>('0' + amount_bytes);
    *out++ = '\r';
    *out++ = '\n';
    out = resp::append_bytes(out, {amount, amount_bytes});
    *out++ = '\r';
    *out++ = '\n';
    return out;
  }

  static Framed frame_reply(const char* begin, const char* end) noexcept {
    resp::Reply reply;
    const resp::Parsed parsed = resp::parse(begin, end, reply);
    if (parsed.status == resp::Status::incomplete) return {};
    if (parsed.status == resp::Status::malformed) {
      Framed malformed;
      malformed.status = Framed::Status::malformed;
      return malformed;
    }
    const ReplyKind kind =
        reply.type == resp::Type::integer ? ReplyKind::accepted : ReplyKind::error;
    return {Framed::Status::complete, parsed.size, kind, {begin, parsed.size}};
  }
};

}  // namespace anubis::harness::load
