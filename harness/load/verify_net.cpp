// The query loops of --verify (see verify.hpp): off the hot path, so written for clarity.
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "load/verify.hpp"

namespace anubis::harness::load {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr auto kConnectTimeout = std::chrono::seconds(10);
// How long the server may take to apply what it accepted, and to answer each batch.
constexpr auto kVerifyTimeout = std::chrono::seconds(30);
constexpr auto kVerifyPollInterval = std::chrono::milliseconds(10);
constexpr std::size_t kVerifyPipeline = 256;
constexpr std::size_t kUntouchedSample = 100;  // users without events, checked to be 0
constexpr std::size_t kMaxReportedMismatches = 10;
constexpr std::size_t kReadBufferBytes = 64 * 1024;

// A blocking client in which every operation has a deadline. Asio's blocking calls cannot time
// out, so each operation is started asynchronously and the io_context is run until it completes
// or the deadline passes, as in Asio's blocking_tcp_client example.
class BlockingClient {
 public:
  error_code connect(const std::string& host, std::uint16_t port, Clock::time_point deadline) {
    error_code ec;
    const auto endpoints = tcp::resolver(io_).resolve(host, std::to_string(port), ec);
    if (ec) return ec;
    error_code result;
    asio::async_connect(socket_, endpoints,
                        [&result](const error_code& e, const tcp::endpoint&) { result = e; });
    if (!run_until(deadline)) return asio::error::timed_out;
    return result;
  }

  error_code write(std::string_view data, Clock::time_point deadline) {
    error_code result;
    asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                      [&result](const error_code& ec, std::size_t) { result = ec; });
    if (!run_until(deadline)) return asio::error::timed_out;
    return result;
  }

  // Reads until frame(begin, end) finds a whole reply at the start of the unread bytes, and
  // returns it in `reply` (valid until the next call). frame returns the reply's size, 0 while
  // it is incomplete, or SIZE_MAX when the bytes are malformed (answered with bad_message).
  template <class Frame>
  error_code read(Frame&& frame, std::string_view& reply, Clock::time_point deadline) {
    for (;;) {
      const char* const data = buffer_.data();
      const std::size_t size = frame(data + begin_, data + end_);
      if (size == SIZE_MAX) return asio::error::make_error_code(asio::error::invalid_argument);
      if (size > 0) {
        reply = {data + begin_, size};
        begin_ += size;
        return {};
      }
      std::memmove(buffer_.data(), data + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (end_ == buffer_.size()) return asio::error::message_size;
      error_code result;
      std::size_t bytes = 0;
      socket_.async_read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                              [&](const error_code& ec, std::size_t n) {
                                result = ec;
                                bytes = n;
                              });
      if (!run_until(deadline)) return asio::error::timed_out;
      if (result) return result;
      end_ += bytes;
    }
  }

  error_code read_line(std::string_view& line, Clock::time_point deadline) {
    const error_code ec = read(
        [](const char* begin, const char* end) -> std::size_t {
          const void* newline = std::memchr(begin, '\n', static_cast<std::size_t>(end - begin));
          return newline == nullptr
                     ? 0
                     : static_cast<std::size_t>(static_cast<const char*>(newline) - begin + 1);
        },
        line, deadline);
    if (!ec) line.remove_suffix(1);
    return ec;
  }

  error_code read_resp(resp::Reply& reply, Clock::time_point deadline) {
    std::string_view ignored;
    return read(
        [&reply](const char* begin, const char* end) -> std::size_t {
          const resp::Parsed parsed = resp::parse(begin, end, reply);
          if (parsed.status == resp::Status::malformed) return SIZE_MAX;
          return parsed.status == resp::Status::complete ? parsed.size : 0;
        },
        ignored, deadline);
  }

 private:
  // Runs the one pending operation to completion; false if the deadline came first, in which
  // case the socket is closed (completing the operation with operation_aborted).
  bool run_until(Clock::time_point deadline) {
    io_.restart();
    io_.run_until(deadline);
    if (io_.stopped()) return true;  // out of work: the operation completed
    error_code ignored;
    socket_.close(ignored);
    io_.run();
    return false;
  }

  asio::io_context io_{1};
  tcp::socket socket_{io_};
  std::vector<char> buffer_ = std::vector<char>(kReadBufferBytes);
  std::size_t begin_ = 0;  // unread bytes are [begin_, end_)
  std::size_t end_ = 0;
};

VerifyResult stop(VerifyResult result, VerifyOutcome outcome, std::string_view what,
                  const error_code& ec) {
  std::fprintf(stderr, "verify: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               ec.message().c_str());
  result.outcome = (ec == asio::error::timed_out) ? VerifyOutcome::timed_out : outcome;
  return result;
}

void report_mismatch(VerifyResult& result, const std::string& name, const Expected& want,
                     std::string_view reply) {
  if (++result.mismatches > kMaxReportedMismatches) return;
  // RESP replies end in CRLF; the report wants one line.
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.remove_suffix(1);
  std::fprintf(
      stderr,
      "verify: user %s: expected balance %" PRId64 " events %" PRIu64 ", server replied %.*s\n",
      name.c_str(), want.balance, want.events, static_cast<int>(reply.size()), reply.data());
}

VerifyResult finish(VerifyResult result) {
  if (result.mismatches > kMaxReportedMismatches) {
    std::fprintf(stderr, "verify: ... and %" PRIu64 " more mismatches\n",
                 result.mismatches - kMaxReportedMismatches);
  }
  if (result.mismatches > 0) result.outcome = VerifyOutcome::mismatch;
  return result;
}

// The integer after `"name":` in a metrics reply.
std::optional<std::uint64_t> metric(std::string_view reply, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const std::size_t at = reply.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::uint64_t value = 0;
  const char* const begin = reply.data() + at + key.size();
  const auto [end, ec] = std::from_chars(begin, reply.data() + reply.size(), value);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return value;
}

// Asks about every user in `users`, kVerifyPipeline queries per write over one connection:
// append_query(batch, name) adds one user's query; check(result, name, user, deadline) reads its
// reply and compares it (counting a mismatch in `result`), returning a result to stop with when the
// reply could not be read. Returns the final result.
template <class AppendQuery, class Check>
VerifyResult check_users(BlockingClient& client, const std::vector<std::uint32_t>& users,
                         const std::string& user_prefix, std::string_view what, VerifyResult result,
                         AppendQuery&& append_query, Check&& check) {
  std::string batch;
  std::vector<std::string> names;
  for (std::size_t first = 0; first < users.size(); first += kVerifyPipeline) {
    const std::size_t last = std::min(users.size(), first + kVerifyPipeline);
    batch.clear();
    names.clear();
    for (std::size_t i = first; i < last; ++i) {
      names.push_back(user_prefix + std::to_string(users[i]));
      append_query(batch, names.back());
    }
    const Clock::time_point deadline = Clock::now() + kVerifyTimeout;
    if (const error_code ec = client.write(batch, deadline)) {
      return stop(result, VerifyOutcome::connection_failed, what, ec);
    }
    for (std::size_t i = first; i < last; ++i) {
      if (std::optional<VerifyResult> stopped =
              check(result, names[i - first], users[i], deadline)) {
        return *stopped;
      }
      ++result.checked_users;
    }
  }
  return finish(result);
}

}  // namespace

// Waits until the server has applied every event it accepted (the server publishes processed
// with release ordering after the state update, so balances then include them), then compares.
VerifyResult verify_anubis(const std::string& host, std::uint16_t port,
                           const std::string& user_prefix, const ExpectedSums& expected) {
  VerifyResult result;
  BlockingClient client;
  if (const error_code ec = client.connect(host, port, Clock::now() + kConnectTimeout)) {
    return stop(result, VerifyOutcome::connection_failed, "cannot connect", ec);
  }

  const Clock::time_point caught_up_deadline = Clock::now() + kVerifyTimeout;
  for (;;) {
    std::string_view reply;
    error_code ec = client.write("{\"type\":\"metrics\"}\n", caught_up_deadline);
    if (!ec) ec = client.read_line(reply, caught_up_deadline);
    if (ec) return stop(result, VerifyOutcome::connection_failed, "metrics query failed", ec);
    const auto processed = metric(reply, "processed");
    const auto accepted = metric(reply, "accepted");
    if (!processed || !accepted) {
      std::fprintf(stderr, "verify: unexpected metrics reply: %.*s\n",
                   static_cast<int>(reply.size()), reply.data());
      result.outcome = VerifyOutcome::bad_reply;
      return result;
    }
    if (*processed == *accepted) break;
    if (Clock::now() + kVerifyPollInterval >= caught_up_deadline) {
      std::fprintf(
          stderr, "verify: server processed %" PRIu64 " of %" PRIu64 " accepted events in %lld s\n",
          *processed, *accepted, static_cast<long long>(kVerifyTimeout.count()));
      result.outcome = VerifyOutcome::timed_out;
      return result;
    }
    std::this_thread::sleep_for(kVerifyPollInterval);
  }

  return check_users(
      client, users_to_verify(expected.events, kUntouchedSample), user_prefix,
      "balance queries failed", result,
      [](std::string& batch, const std::string& name) {
        batch += R"({"type":"balance","user":")";
        batch += name;
        batch += "\"}\n";
      },
      [&](VerifyResult& partial, const std::string& name, std::uint32_t user,
          Clock::time_point deadline) -> std::optional<VerifyResult> {
        std::string_view reply;
        if (const error_code ec = client.read_line(reply, deadline)) {
          return stop(partial, VerifyOutcome::connection_failed, "balance queries failed", ec);
        }
        const Expected want = expected.at(user);
        if (!matches(want, parse_anubis_balance(reply, name))) {
          report_mismatch(partial, name, want, reply);
        }
        return std::nullopt;
      });
}

// Redis applies INCRBY before answering it, so every accepted event is visible at once.
VerifyResult verify_redis(const std::string& host, std::uint16_t port,
                          const std::string& user_prefix, const ExpectedSums& expected) {
  VerifyResult result;
  BlockingClient client;
  if (const error_code ec = client.connect(host, port, Clock::now() + kConnectTimeout)) {
    return stop(result, VerifyOutcome::connection_failed, "cannot connect", ec);
  }
  return check_users(
      client, users_to_verify(expected.events, kUntouchedSample), user_prefix, "GET queries failed",
      result,
      [](std::string& batch, const std::string& name) {
        batch += resp::command({"GET", name});
      },
      [&](VerifyResult& partial, const std::string& name, std::uint32_t user,
          Clock::time_point deadline) -> std::optional<VerifyResult> {
        resp::Reply reply;
        if (const error_code ec = client.read_resp(reply, deadline)) {
          if (ec == asio::error::invalid_argument) {
            std::fprintf(stderr, "verify: a GET reply is not RESP\n");
            partial.outcome = VerifyOutcome::bad_reply;
            return partial;
          }
          return stop(partial, VerifyOutcome::connection_failed, "GET queries failed", ec);
        }
        const Expected want = expected.at(user);
        if (!matches(want, parse_redis_get(reply))) {
          const std::string shown =
              reply.nil() ? "(nil)"
                          : std::string(1, static_cast<char>(reply.type)) + std::string(reply.text);
          report_mismatch(partial, name, want, shown);
        }
        return std::nullopt;
      });
}

}  // namespace anubis::harness::load
