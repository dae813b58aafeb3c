// anubis-load: a closed-loop load generator and end-to-end checker for anubis-server
// (protocol: docs/PROTOCOL.md).
//
// Each of --connections connections keeps --pipeline event lines in flight: it writes as many
// lines as the window allows in one write, matches each reply to its oldest outstanding line (the
// server answers in request order per connection), records the latency and refills the window.
// --verify then asks the server for the balance of every user the run touched and compares it
// with the sum of the events the server accepted. The client knows those sums exactly because
// --user-prefix gives every run users of its own.
//
// Threading: min(--threads, --connections) shards, each an io_context run by exactly one thread
// and owning every n-th connection. A connection's state and its shard's statistics are touched
// only by handlers on that thread, so the hot path has no locks, atomics or strands; the main
// thread reads the statistics only after joining the shard threads (the join orders the reads).
//
// Cost per request: no allocation. Lines are formatted into a per-connection buffer sized for a
// full window, send times wait in a fixed ring, replies are split with memchr inside the read
// buffer and classified by prefix, and the latency histogram is a fixed array.
//
// Latency is closed-loop: a line is timed from the write that carries it to the read that brings
// its reply. While the server stalls the client sends nothing, so a stall is counted once, not
// once per request a real user would have sent meanwhile ("coordinated omission"). Open-loop tools
// (wrk2, HdrHistogram's expected-interval correction) send at a fixed rate and time from the
// intended send; this harness measures throughput at saturation, and its output says so.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "histogram.hpp"

namespace anubis::harness {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr int kExitOk = 0;
constexpr int kExitVerifyFailed = 1;  // a balance mismatch, or the server did not catch up
constexpr int kExitUnusable = 2;      // bad flags, or the server could not be reached or kept

constexpr std::size_t kMaxUserBytes = 64;  // protocol limit on a user name
constexpr std::uint64_t kMaxEventAmount = 1'000;
// Expected sums take 16 bytes per user per thread; this caps them at 160 MB a thread.
constexpr std::uint32_t kMaxUsers = 10'000'000;
constexpr std::uint32_t kMaxPipeline = 4'096;
constexpr std::uint32_t kMaxConnections = 10'000;
// Replies to events are tens of bytes, so one read takes hundreds of them.
constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
// A connection that waits this long for any reply fails, so a wedged server ends the run with an
// error instead of hanging it (and the CI job running it). Checked once per kWatchdogPeriod.
constexpr auto kStallTimeout = std::chrono::seconds(30);
constexpr auto kWatchdogPeriod = std::chrono::seconds(1);
// --verify: how long the server may take to apply what it accepted, and to answer each batch.
constexpr auto kVerifyTimeout = std::chrono::seconds(30);
constexpr auto kVerifyPollInterval = std::chrono::milliseconds(10);
constexpr std::size_t kVerifyPipeline = 256;
constexpr std::size_t kVerifyUntouchedSample = 100;  // users without events, checked to be 0/0
constexpr std::size_t kMaxReportedMismatches = 10;

// An event line in pieces: {"user":"<prefix><index>","action":"buy","amount":<amount>}\n
constexpr std::string_view kEventHead = "{\"user\":\"";
constexpr std::string_view kEventBuy = "\",\"action\":\"buy\",\"amount\":";
constexpr std::string_view kEventSell = "\",\"action\":\"sell\",\"amount\":";
constexpr std::string_view kEventTail = "}\n";
constexpr std::size_t kMaxIndexDigits = 10;  // a std::uint32_t user index
constexpr std::size_t kMaxAmountDigits = 4;
static_assert(kMaxEventAmount <= 9'999, "amounts must fit kMaxAmountDigits");

constexpr std::size_t max_event_line_bytes(std::size_t prefix_bytes) {
  return kEventHead.size() + prefix_bytes + kMaxIndexDigits + kEventSell.size() + kMaxAmountDigits +
         kEventTail.size();
}

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::uint32_t connections = 50;
  std::uint32_t pipeline = 16;
  std::optional<std::uint64_t> events;  // set: send exactly this many; unset: run for duration_s
  double duration_s = 10.0;
  std::uint32_t users = 10'000;
  std::string user_prefix;
  std::uint64_t seed = 1;
  std::uint32_t threads = 1;
  std::string json_out;
  bool verify = false;
  bool quiet = false;
};

// Returns an exit code when the program should stop now (--help, bad flags), else nullopt.
std::optional<int> parse_options(int argc, char** argv, Options& options) {
  CLI::App app{"anubis-load: closed-loop load generator and balance checker for anubis-server"};
  options.user_prefix = "load" + std::to_string(::getpid()) + "-";
  std::uint64_t events = 0;

  app.add_option("--host", options.host, "Server address")->capture_default_str();
  app.add_option("--port", options.port, "Server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--connections", options.connections, "TCP connections")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxConnections));
  app.add_option("--pipeline", options.pipeline, "Requests in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxPipeline));
  auto* events_option =
      app.add_option("--events", events, "Total events across all connections, then stop")
          ->check(CLI::PositiveNumber);
  auto* duration_option =
      app.add_option("--duration", options.duration_s, "Seconds to send for (without --events)")
          ->capture_default_str()
          ->check(CLI::Range(0.001, 1e6));
  events_option->excludes(duration_option);
  app.add_option("--users", options.users, "Distinct users the events are spread over")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxUsers));
  app.add_option("--user-prefix", options.user_prefix,
                 "User name prefix; the default is unique per process, so runs never share users")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Seed of the event sequence")->capture_default_str();
  app.add_option("--threads", options.threads, "Client I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxConnections));
  app.add_option("--json-out", options.json_out, "Write parameters and results to FILE as JSON");
  app.add_flag("--verify", options.verify,
               "After the load, check every touched user's balance against the accepted events");
  app.add_flag("--quiet", options.quiet, "Print nothing to stdout (errors still go to stderr)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUnusable;
  }
  if (events_option->count() > 0) options.events = events;

  // Names go into the request lines unescaped: keep them to characters JSON needs no escape for.
  const bool printable =
      std::all_of(options.user_prefix.begin(), options.user_prefix.end(),
                  [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '\\'; });
  if (!printable) {
    std::fprintf(stderr, "anubis-load: --user-prefix must be printable ASCII without '\"', '\\'\n");
    return kExitUnusable;
  }
  if (options.user_prefix.size() + std::to_string(options.users - 1).size() > kMaxUserBytes) {
    std::fprintf(stderr, "anubis-load: --user-prefix too long: user names are at most %zu bytes\n",
                 kMaxUserBytes);
    return kExitUnusable;
  }
  return std::nullopt;
}

// splitmix64 (Steele, Lea, Flood 2014): 8 bytes of state, plenty for picking users and amounts,
// and its output is defined by these lines alone, so a seed replays the same events with any
// compiler or standard library (std::uniform_int_distribution gives no such promise).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t state) noexcept : state_(state) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

// What every connection is asked to do. Written by main before the shard threads start (thread
// creation publishes it), read-only afterwards.
struct LoadPlan {
  std::string user_prefix;
  std::uint32_t users = 0;
  std::uint32_t pipeline = 0;
  std::uint64_t seed = 0;
  // No new line is sent at or after this time; max() with --events.
  Clock::time_point deadline = Clock::time_point::max();
};

// What one shard saw. Each shard writes its own from its thread; main merges them after join.
struct LoadStats {
  explicit LoadStats(std::uint32_t users) : expected_balance(users, 0), expected_events(users, 0) {}

  void merge(const LoadStats& other) {
    sent += other.sent;
    accepted += other.accepted;
    dropped += other.dropped;
    rejected_shutting_down += other.rejected_shutting_down;
    errors += other.errors;
    unanswered += other.unanswered;
    failed_connections += other.failed_connections;
    for (std::size_t user = 0; user < expected_balance.size(); ++user) {
      expected_balance[user] += other.expected_balance[user];
      expected_events[user] += other.expected_events[user];
    }
    latency.merge(other.latency);
    first_send = std::min(first_send, other.first_send);
    last_reply = std::max(last_reply, other.last_reply);
    if (first_error_reply.empty()) first_error_reply = other.first_error_reply;
    if (first_failure.empty()) first_failure = other.first_failure;
  }

  std::uint64_t sent = 0;
  std::uint64_t accepted = 0;
  std::uint64_t dropped = 0;  // rejected with server_busy
  std::uint64_t rejected_shutting_down = 0;
  std::uint64_t errors = 0;      // status "error", or a line that is no reply to an event
  std::uint64_t unanswered = 0;  // in flight when a connection ended early
  std::uint64_t failed_connections = 0;
  // By user index, over accepted events only: what the server's balance query must answer.
  std::vector<std::int64_t> expected_balance;
  std::vector<std::uint64_t> expected_events;
  Histogram latency;
  Clock::time_point first_send = Clock::time_point::max();
  Clock::time_point last_reply = Clock::time_point::min();
  // The first of each kind of trouble, for the report (it usually names the problem); one line
  // each rather than one per connection when the server goes away under 50 connections.
  std::string first_error_reply;
  std::string first_failure;
};

enum class Reply : std::uint8_t { accepted, server_busy, shutting_down, error };

// Replies put "status" and then "reason" first (docs/PROTOCOL.md), so a prefix names the kind.
Reply classify(std::string_view line) noexcept {
  if (line.starts_with(R"({"status":"accepted")")) return Reply::accepted;
  if (line.starts_with(R"({"status":"rejected","reason":"server_busy")")) {
    return Reply::server_busy;
  }
  if (line.starts_with(R"({"status":"rejected","reason":"shutting_down")")) {
    return Reply::shutting_down;
  }
  return Reply::error;
}

char* append(char* out, std::string_view text) noexcept {
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

class Shard;

// One TCP connection keeping up to plan.pipeline event lines in flight. Every member is touched
// only by handlers on the owning shard's thread.
class Connection {
 public:
  Connection(Shard& shard, std::uint64_t index, std::uint64_t quota);

  tcp::socket& socket() noexcept { return socket_; }

  // Sends the first window and starts reading. The connection then runs until it has nothing
  // left to send and nothing in flight, and closes itself.
  void start();
  // Fails the connection if it has lines in flight and no reply for kStallTimeout.
  void check_stall(Clock::time_point now);

 private:
  // What the client must remember about a line until its reply arrives.
  struct InFlight {
    Clock::time_point sent;
    std::uint32_t user = 0;
    std::int32_t delta = 0;
  };

  void send_window(Clock::time_point now);
  void append_event(Clock::time_point now);
  void read_more();
  void on_read(const error_code& ec, std::size_t bytes);
  void on_reply(std::string_view line, Clock::time_point now);
  bool done() const noexcept { return remaining_ == 0 && outstanding_ == 0 && !writing_; }
  void close();
  void fail(std::string_view what, const error_code& ec);

  Shard& shard_;
  const LoadPlan& plan_;
  LoadStats& stats_;
  const std::uint64_t index_;
  tcp::socket socket_;
  SplitMix64 rng_;
  std::uint64_t remaining_;  // lines still to send; max() with --duration until the deadline
  // Lines awaiting replies, oldest first: a ring of plan.pipeline slots starting at head_.
  std::vector<InFlight> in_flight_;
  std::size_t head_ = 0;
  std::size_t outstanding_ = 0;
  // The lines of the current write; Asio reads them until the write completes (writing_).
  std::vector<char> write_buffer_;
  std::size_t write_size_ = 0;
  bool writing_ = false;
  // Bytes read and not yet parsed, from the start: at most one partial line between reads.
  std::vector<char> read_buffer_;
  std::size_t read_size_ = 0;
  Clock::time_point last_progress_;  // the last read (or the start), for check_stall
  // Set once, by close(); handlers that run afterwards (operation_aborted) return at once.
  bool closed_ = false;
};

// One thread's share of the connections: an io_context run by exactly one thread, so the
// handlers of its connections never run concurrently and need no locks.
class Shard {
 public:
  explicit Shard(const LoadPlan& plan) : plan_(plan), stats_(plan.users) {}

  void add_connection(std::uint64_t index, std::uint64_t quota) {
    connections_.push_back(std::make_unique<Connection>(*this, index, quota));
  }

  // Connects every connection, on the calling thread, before the load starts (so connection
  // set-up is not timed). Returns the first error; timed_out if `deadline` passes first.
  error_code connect(const tcp::resolver::results_type& endpoints, Clock::time_point deadline) {
    error_code first_error;
    for (auto& connection : connections_) {
      asio::async_connect(connection->socket(), endpoints,
                          [&first_error](const error_code& ec, const tcp::endpoint&) {
                            if (ec && !first_error) first_error = ec;
                          });
    }
    io_.run_until(deadline);
    if (!io_.stopped()) {  // the deadline passed with connects pending: abort them
      error_code ignored;
      for (auto& connection : connections_) connection->socket().close(ignored);
      io_.run();
      first_error = asio::error::timed_out;
    }
    io_.restart();
    if (first_error) return first_error;
    // Without TCP_NODELAY a window's tail can sit in Nagle's buffer until the server ACKs.
    for (auto& connection : connections_) connection->socket().set_option(tcp::no_delay(true));
    return {};
  }

  // Runs the load on the calling thread until every connection has closed.
  void run() {
    open_ = connections_.size();
    for (auto& connection : connections_) connection->start();
    if (open_ > 0) arm_watchdog();
    io_.run();
  }

  // Called by each connection once, when it closes; the last one stops the watchdog so run()
  // returns.
  void connection_closed() {
    if (--open_ == 0) watchdog_.cancel();
  }

  asio::io_context& io() noexcept { return io_; }
  const LoadPlan& plan() const noexcept { return plan_; }
  LoadStats& stats() noexcept { return stats_; }

 private:
  void arm_watchdog() {
    watchdog_.expires_after(kWatchdogPeriod);
    watchdog_.async_wait([this](const error_code& ec) {
      // open_ == 0: the timer had already fired when the last connection cancelled it.
      if (ec || open_ == 0) return;
      const Clock::time_point now = Clock::now();
      for (auto& connection : connections_) connection->check_stall(now);
      if (open_ > 0) arm_watchdog();
    });
  }

  // Declared first so that it is destroyed last: the sockets and the timer below use it.
  asio::io_context io_{1};  // concurrency hint: one thread runs it
  const LoadPlan& plan_;
  LoadStats stats_;
  asio::steady_timer watchdog_{io_};
  std::vector<std::unique_ptr<Connection>> connections_;
  std::size_t open_ = 0;  // connections not yet closed
};

Connection::Connection(Shard& shard, std::uint64_t index, std::uint64_t quota)
    : shard_(shard),
      plan_(shard.plan()),
      stats_(shard.stats()),
      index_(index),
      socket_(shard.io()),
      // Mixing the seed first keeps (seed 1, connection 1) and (seed 2, connection 0) apart.
      rng_(SplitMix64(shard.plan().seed).next() + index),
      remaining_(quota),
      in_flight_(shard.plan().pipeline),
      write_buffer_(shard.plan().pipeline * max_event_line_bytes(shard.plan().user_prefix.size())),
      read_buffer_(kReadBufferBytes) {}

void Connection::start() {
  last_progress_ = Clock::now();
  send_window(last_progress_);
  if (done()) return close();  // an --events share of zero
  read_more();
}

void Connection::check_stall(Clock::time_point now) {
  if (!closed_ && outstanding_ > 0 && now - last_progress_ > kStallTimeout) {
    fail("no reply for " + std::to_string(kStallTimeout.count()) + " s", {});
  }
}

// Fills the free part of the window and writes it in one go. Called after every read and write
// completion; a window's lines share one send time, as they leave in one write.
void Connection::send_window(Clock::time_point now) {
  if (writing_ || closed_) return;
  if (now >= plan_.deadline) remaining_ = 0;
  const std::size_t lines = std::min<std::uint64_t>(plan_.pipeline - outstanding_, remaining_);
  if (lines == 0) return;
  write_size_ = 0;
  for (std::size_t i = 0; i < lines; ++i) append_event(now);
  remaining_ -= lines;
  stats_.sent += lines;
  stats_.first_send = std::min(stats_.first_send, now);
  writing_ = true;
  asio::async_write(socket_, asio::buffer(write_buffer_.data(), write_size_),
                    [this](const error_code& ec, std::size_t) {
                      writing_ = false;
                      if (closed_) return;
                      if (ec) return fail("write failed", ec);
                      // Replies that arrived during the write have freed window slots.
                      send_window(Clock::now());
                      if (done()) close();
                    });
}

void Connection::append_event(Clock::time_point now) {
  // Modulo bias is below users / 2^64 (< 1e-12): immaterial for spreading load.
  const auto user = static_cast<std::uint32_t>(rng_.next() % plan_.users);
  const std::uint64_t draw = rng_.next();
  const bool buy = (draw & 1) != 0;
  const auto amount = static_cast<std::int32_t>(1 + (draw >> 1) % kMaxEventAmount);

  char* out = write_buffer_.data() + write_size_;
  out = append(out, kEventHead);
  out = append(out, plan_.user_prefix);
  out = std::to_chars(out, out + kMaxIndexDigits, user).ptr;
  out = append(out, buy ? kEventBuy : kEventSell);
  out = std::to_chars(out, out + kMaxAmountDigits, amount).ptr;
  out = append(out, kEventTail);
  write_size_ = static_cast<std::size_t>(out - write_buffer_.data());

  in_flight_[(head_ + outstanding_) % in_flight_.size()] = {now, user, buy ? amount : -amount};
  ++outstanding_;
}

void Connection::read_more() {
  socket_.async_read_some(
      asio::buffer(read_buffer_.data() + read_size_, read_buffer_.size() - read_size_),
      [this](const error_code& ec, std::size_t bytes) { on_read(ec, bytes); });
}

void Connection::on_read(const error_code& ec, std::size_t bytes) {
  if (closed_) return;
  // A graceful server stop lands here too: the server answers the lines it has read, then
  // closes; lines it had not read were neither applied nor answered, so the run is incomplete.
  if (ec) return fail(ec == asio::error::eof ? "server closed the connection" : "read failed", ec);

  // One timestamp for every reply this read brought: they were parsed together.
  const Clock::time_point now = Clock::now();
  last_progress_ = now;
  read_size_ += bytes;
  const char* line = read_buffer_.data();
  const char* const end = line + read_size_;
  while (const auto* newline = static_cast<const char*>(
             std::memchr(line, '\n', static_cast<std::size_t>(end - line)))) {
    if (outstanding_ == 0) {
      ++stats_.errors;
      return fail("a reply arrived with no request outstanding", {});
    }
    on_reply({line, newline}, now);
    line = newline + 1;
  }
  if (line != read_buffer_.data()) stats_.last_reply = now;
  read_size_ = static_cast<std::size_t>(end - line);
  std::memmove(read_buffer_.data(), line, read_size_);
  if (read_size_ == read_buffer_.size()) return fail("a reply line overflowed the buffer", {});

  send_window(now);
  if (done()) return close();
  read_more();
}

void Connection::on_reply(std::string_view line, Clock::time_point now) {
  const InFlight request = in_flight_[head_];
  head_ = (head_ + 1) % in_flight_.size();
  --outstanding_;
  const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - request.sent);
  stats_.latency.record(static_cast<std::uint64_t>(latency.count()));

  switch (classify(line)) {
    case Reply::accepted:
      ++stats_.accepted;
      stats_.expected_balance[request.user] += request.delta;
      ++stats_.expected_events[request.user];
      break;
    case Reply::server_busy:
      ++stats_.dropped;
      break;
    case Reply::shutting_down:
      ++stats_.rejected_shutting_down;
      break;
    case Reply::error:
      ++stats_.errors;
      if (stats_.first_error_reply.empty()) stats_.first_error_reply = line;
      break;
  }
}

void Connection::close() {
  closed_ = true;
  error_code ignored;  // the peer may already be gone; there is nothing left to tell it
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  shard_.connection_closed();
}

void Connection::fail(std::string_view what, const error_code& ec) {
  stats_.unanswered += outstanding_;
  if (++stats_.failed_connections == 1) {
    stats_.first_failure = "connection " + std::to_string(index_) + ": " + std::string(what);
    if (ec) stats_.first_failure += ": " + ec.message();
  }
  close();
}

// A blocking line client in which every operation has a deadline, for --verify (not the hot
// path). Asio's blocking calls cannot time out, so each operation is started asynchronously and
// the io_context is run until it completes or the deadline passes, as in Asio's
// blocking_tcp_client example.
class LineClient {
 public:
  error_code connect(const tcp::resolver::results_type& endpoints, Clock::time_point deadline) {
    error_code result;
    asio::async_connect(socket_, endpoints,
                        [&result](const error_code& ec, const tcp::endpoint&) { result = ec; });
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

  // Reads the next line into `line` (without '\n'); it stays valid until the next call.
  error_code read_line(std::string_view& line, Clock::time_point deadline) {
    for (;;) {
      const char* const data = buffer_.data();
      if (const auto* newline =
              static_cast<const char*>(std::memchr(data + begin_, '\n', end_ - begin_))) {
        line = {data + begin_, newline};
        begin_ = static_cast<std::size_t>(newline - data) + 1;
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

// The integer after `"name":` in a flat reply object; nullopt when absent or not an integer.
// Sound for this protocol's replies: their only strings (user names) cannot contain '"'.
template <class Int>
std::optional<Int> find_integer(std::string_view line, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const std::size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  Int value{};
  const char* const begin = line.data() + at + key.size();
  const auto [end, ec] = std::from_chars(begin, line.data() + line.size(), value);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return value;
}

enum class VerifyOutcome : std::uint8_t { ok, mismatch, timed_out, bad_reply, connection_failed };

std::string_view to_string(VerifyOutcome outcome) {
  switch (outcome) {
    case VerifyOutcome::ok:
      return "ok";
    case VerifyOutcome::mismatch:
      return "mismatch";
    case VerifyOutcome::timed_out:
      return "timed_out";
    case VerifyOutcome::bad_reply:
      return "bad_reply";
    case VerifyOutcome::connection_failed:
      return "connection_failed";
  }
  return "unknown";
}

struct VerifyResult {
  std::uint64_t checked_users = 0;
  std::uint64_t mismatches = 0;
  VerifyOutcome outcome = VerifyOutcome::ok;
};

// Every user with an accepted event, then an evenly spread sample of the users without one.
std::vector<std::uint32_t> users_to_verify(const LoadStats& expected) {
  std::vector<std::uint32_t> touched;
  std::vector<std::uint32_t> untouched;
  for (std::uint32_t user = 0; user < expected.expected_events.size(); ++user) {
    (expected.expected_events[user] > 0 ? touched : untouched).push_back(user);
  }
  const std::size_t sample = std::min(untouched.size(), kVerifyUntouchedSample);
  for (std::size_t i = 0; i < sample; ++i) {
    touched.push_back(untouched[i * untouched.size() / sample]);
  }
  return touched;
}

// Waits until the server has applied every event it accepted (metrics processed == accepted; the
// server publishes processed with release ordering after the state update, so balances then
// include them), then compares the balance of every user of this run with what it saw accepted.
VerifyResult verify(const tcp::resolver::results_type& endpoints, const std::string& user_prefix,
                    const LoadStats& expected) {
  VerifyResult result;
  auto stop = [&result](VerifyOutcome outcome, std::string_view what, const error_code& ec) {
    std::fprintf(stderr, "verify: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                 ec.message().c_str());
    result.outcome = (ec == asio::error::timed_out) ? VerifyOutcome::timed_out : outcome;
    return result;
  };

  LineClient client;
  if (const error_code ec = client.connect(endpoints, Clock::now() + kConnectTimeout)) {
    return stop(VerifyOutcome::connection_failed, "cannot connect", ec);
  }

  const Clock::time_point caught_up_deadline = Clock::now() + kVerifyTimeout;
  for (;;) {
    std::string_view reply;
    error_code ec = client.write("{\"type\":\"metrics\"}\n", caught_up_deadline);
    if (!ec) ec = client.read_line(reply, caught_up_deadline);
    if (ec) return stop(VerifyOutcome::connection_failed, "metrics query failed", ec);
    const auto processed = find_integer<std::uint64_t>(reply, "processed");
    const auto accepted = find_integer<std::uint64_t>(reply, "accepted");
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

  const std::vector<std::uint32_t> users = users_to_verify(expected);
  std::string batch;
  std::vector<std::string> names;
  for (std::size_t first = 0; first < users.size(); first += kVerifyPipeline) {
    const std::size_t last = std::min(users.size(), first + kVerifyPipeline);
    batch.clear();
    names.clear();
    for (std::size_t i = first; i < last; ++i) {
      names.push_back(user_prefix + std::to_string(users[i]));
      batch += R"({"type":"balance","user":")";
      batch += names.back();
      batch += "\"}\n";
    }
    const Clock::time_point deadline = Clock::now() + kVerifyTimeout;
    if (const error_code ec = client.write(batch, deadline)) {
      return stop(VerifyOutcome::connection_failed, "balance queries failed", ec);
    }
    for (std::size_t i = first; i < last; ++i) {
      std::string_view reply;
      if (const error_code ec = client.read_line(reply, deadline)) {
        return stop(VerifyOutcome::connection_failed, "balance queries failed", ec);
      }
      ++result.checked_users;
      const std::string& name = names[i - first];
      const std::int64_t want_balance = expected.expected_balance[users[i]];
      const std::uint64_t want_events = expected.expected_events[users[i]];
      const bool match = reply.starts_with(R"({"status":"ok")") &&
                         reply.find("\"user\":\"" + name + "\"") != std::string_view::npos &&
                         find_integer<std::int64_t>(reply, "balance") == want_balance &&
                         find_integer<std::uint64_t>(reply, "events") == want_events;
      if (match) continue;
      if (++result.mismatches <= kMaxReportedMismatches) {
        std::fprintf(stderr,
                     "verify: user %s: expected balance %" PRId64 " events %" PRIu64
                     ", server replied %.*s\n",
                     name.c_str(), want_balance, want_events, static_cast<int>(reply.size()),
                     reply.data());
      }
    }
  }
  if (result.mismatches > kMaxReportedMismatches) {
    std::fprintf(stderr, "verify: ... and %" PRIu64 " more mismatches\n",
                 result.mismatches - kMaxReportedMismatches);
  }
  if (result.mismatches > 0) result.outcome = VerifyOutcome::mismatch;
  return result;
}

// Writes one JSON document, members in call order: enough for --json-out and no more. The value
// setters have distinct names because overloads on uint64/double/bool/string_view would let a
// string literal bind to bool.
class JsonWriter {
 public:
  void begin(std::string_view name = {}) {
    if (!name.empty()) key(name);
    out_ += '{';
    first_ = true;
  }
  void end() {
    out_ += '}';
    first_ = false;
  }
  void integer(std::string_view name, std::uint64_t value) {
    key(name);
    append_number(value);
  }
  void real(std::string_view name, double value) {
    key(name);
    append_number(value);
  }
  void boolean(std::string_view name, bool value) {
    key(name);
    out_ += value ? "true" : "false";
  }
  void text(std::string_view name, std::string_view value) {
    key(name);
    append_string(value);
  }
  const std::string& str() const noexcept { return out_; }

 private:
  void key(std::string_view name) {
    if (!first_) out_ += ',';
    first_ = false;
    append_string(name);
    out_ += ':';
  }
  // Shortest text that reads back as the same value (std::to_chars), for doubles too.
  template <class Number>
  void append_number(Number value) {
    char buffer[32];
    out_.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
  }
  void append_string(std::string_view value) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_ += '"';
    for (const char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (byte < 0x20) {
        out_ += "\\u00";
        out_ += kHex[byte >> 4];
        out_ += kHex[byte & 0xf];
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }

  std::string out_;
  bool first_ = true;
};

double ns_to_us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

std::string json_report(const Options& options, std::uint32_t threads, const LoadStats& stats,
                        double elapsed_s, const std::optional<VerifyResult>& verified) {
  JsonWriter json;
  json.begin();
  json.begin("parameters");
  json.text("host", options.host);
  json.integer("port", options.port);
  json.integer("connections", options.connections);
  json.integer("pipeline", options.pipeline);
  if (options.events) {
    json.integer("events", *options.events);
  } else {
    json.real("duration_s", options.duration_s);
  }
  json.integer("users", options.users);
  json.text("user_prefix", options.user_prefix);
  json.integer("seed", options.seed);
  json.integer("threads", threads);
  json.end();

  json.begin("summary");
  json.real("events_per_s", elapsed_s > 0 ? static_cast<double>(stats.accepted) / elapsed_s : 0.0);
  json.integer("accepted", stats.accepted);
  json.integer("dropped", stats.dropped);
  json.integer("rejected_shutting_down", stats.rejected_shutting_down);
  json.integer("errors", stats.errors);
  json.integer("unanswered", stats.unanswered);
  json.integer("failed_connections", stats.failed_connections);
  json.integer("sent", stats.sent);
  json.real("elapsed_s", elapsed_s);
  json.end();

  json.begin("latency_us");
  json.real("p50", ns_to_us(stats.latency.percentile(50)));
  json.real("p90", ns_to_us(stats.latency.percentile(90)));
  json.real("p99", ns_to_us(stats.latency.percentile(99)));
  json.real("p999", ns_to_us(stats.latency.percentile(99.9)));
  json.real("max", ns_to_us(stats.latency.max()));
  json.text("mode", "closed_loop");
  json.end();

  if (verified) {
    json.begin("verify");
    json.integer("checked_users", verified->checked_users);
    json.integer("mismatches", verified->mismatches);
    json.text("outcome", to_string(verified->outcome));
    json.boolean("ok", verified->outcome == VerifyOutcome::ok);
    json.end();
  }
  json.end();
  return json.str() + "\n";
}

std::string format_latency(std::uint64_t ns) {
  char buffer[32];
  const auto value = static_cast<double>(ns);
  if (ns < 1'000'000) {
    std::snprintf(buffer, sizeof buffer, "%.0f us", value / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buffer, sizeof buffer, "%.1f ms", value / 1e6);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.2f s", value / 1e9);
  }
  return buffer;
}

void print_summary(const Options& options, const LoadStats& stats, double elapsed_s) {
  std::printf("anubis-load: %" PRIu32 " connections x pipeline %" PRIu32 ", ", options.connections,
              options.pipeline);
  if (options.events) std::printf("%" PRIu64 " events in ", *options.events);
  std::printf("%.1f s, %" PRIu32 " users\n", elapsed_s, options.users);
  const double rate = elapsed_s > 0 ? static_cast<double>(stats.accepted) / elapsed_s : 0.0;
  std::printf("  accepted      %10" PRIu64 "  (%.0f events/s)\n", stats.accepted, rate);
  std::printf("  dropped       %10" PRIu64 "  (server_busy)\n", stats.dropped);
  std::printf("  shutting_down %10" PRIu64 "\n", stats.rejected_shutting_down);
  std::printf("  errors        %10" PRIu64 "\n", stats.errors);
  if (stats.unanswered > 0) {
    std::printf("  unanswered    %10" PRIu64 "  (connection ended first)\n", stats.unanswered);
  }
  const Histogram& latency = stats.latency;
  std::printf(
      "  latency (closed-loop, not corrected for coordinated omission): p50 %s  p99 %s  p99.9 %s  "
      "max %s\n",
      format_latency(latency.percentile(50)).c_str(),
      format_latency(latency.percentile(99)).c_str(),
      format_latency(latency.percentile(99.9)).c_str(), format_latency(latency.max()).c_str());
}

int run(int argc, char** argv) {
  Options options;
  if (const auto exit_code = parse_options(argc, argv, options)) return *exit_code;

  // Opened before the load so that an unwritable path fails in a second, not after the run.
  std::ofstream json_file;
  if (!options.json_out.empty()) {
    json_file.open(options.json_out);
    if (!json_file) {
      std::fprintf(stderr, "anubis-load: cannot write %s\n", options.json_out.c_str());
      return kExitUnusable;
    }
  }

  asio::io_context resolver_io;
  error_code ec;
  const auto endpoints =
      tcp::resolver(resolver_io).resolve(options.host, std::to_string(options.port), ec);
  if (ec) {
    std::fprintf(stderr, "anubis-load: cannot resolve %s: %s\n", options.host.c_str(),
                 ec.message().c_str());
    return kExitUnusable;
  }

  LoadPlan plan;
  plan.user_prefix = options.user_prefix;
  plan.users = options.users;
  plan.pipeline = options.pipeline;
  plan.seed = options.seed;

  // More threads than connections would only add idle io_contexts.
  const std::uint32_t threads = std::min(options.threads, options.connections);
  std::vector<std::unique_ptr<Shard>> shards;
  for (std::uint32_t t = 0; t < threads; ++t) shards.push_back(std::make_unique<Shard>(plan));
  for (std::uint32_t i = 0; i < options.connections; ++i) {
    // --events is split as evenly as possible: the first (events % connections) get one more.
    const std::uint64_t quota = options.events
                                    ? *options.events / options.connections +
                                          (i < *options.events % options.connections ? 1 : 0)
                                    : std::numeric_limits<std::uint64_t>::max();
    shards[i % threads]->add_connection(i, quota);
  }

  const Clock::time_point connect_deadline = Clock::now() + kConnectTimeout;
  for (auto& shard : shards) {
    if (const error_code connect_error = shard->connect(endpoints, connect_deadline)) {
      std::fprintf(stderr, "anubis-load: cannot connect to %s:%" PRIu16 ": %s\n",
                   options.host.c_str(), options.port, connect_error.message().c_str());
      return kExitUnusable;
    }
  }

  if (!options.events) {
    plan.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(options.duration_s));
  }
  {
    std::vector<std::jthread> shard_threads;  // joined at the end of this scope
    for (auto& shard : shards) shard_threads.emplace_back([&shard] { shard->run(); });
  }

  LoadStats stats(options.users);
  for (const auto& shard : shards) stats.merge(shard->stats());
  shards.clear();
  const double elapsed_s =
      stats.last_reply > stats.first_send
          ? std::chrono::duration<double>(stats.last_reply - stats.first_send).count()
          : 0.0;

  if (!options.quiet) print_summary(options, stats, elapsed_s);
  if (!stats.first_error_reply.empty()) {
    std::fprintf(stderr, "anubis-load: first error reply: %s\n", stats.first_error_reply.c_str());
  }
  if (stats.failed_connections > 0) {
    std::fprintf(stderr, "anubis-load: %" PRIu64 " connections failed; first: %s\n",
                 stats.failed_connections, stats.first_failure.c_str());
  }

  int exit_code = stats.failed_connections > 0 ? kExitUnusable : kExitOk;
  std::optional<VerifyResult> verified;
  if (options.verify && stats.unanswered > 0) {
    // An unanswered line may or may not have been applied: exact sums are unknowable.
    std::fprintf(stderr, "verify: skipped: %" PRIu64 " requests were never answered\n",
                 stats.unanswered);
    exit_code = std::max(exit_code, kExitVerifyFailed);
  } else if (options.verify) {
    verified = verify(endpoints, options.user_prefix, stats);
    if (verified->outcome == VerifyOutcome::ok) {
      if (!options.quiet) {
        std::printf("verify: ok (%" PRIu64 " users checked)\n", verified->checked_users);
      }
    } else {
      std::fprintf(
          stderr, "verify: FAILED (%.*s: %" PRIu64 " mismatches among %" PRIu64 " users checked)\n",
          static_cast<int>(to_string(verified->outcome).size()),
          to_string(verified->outcome).data(), verified->mismatches, verified->checked_users);
      const int code =
          verified->outcome == VerifyOutcome::connection_failed ? kExitUnusable : kExitVerifyFailed;
      exit_code = std::max(exit_code, code);
    }
  }

  if (json_file.is_open()) {
    json_file << json_report(options, threads, stats, elapsed_s, verified);
    json_file.close();
    if (!json_file) {
      std::fprintf(stderr, "anubis-load: writing %s failed\n", options.json_out.c_str());
      exit_code = kExitUnusable;
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace anubis::harness

int main(int argc, char** argv) {
  try {
    return anubis::harness::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anubis-load: %s\n", e.what());
    return 2;
  }
}
