// The load engine: connections that send events and match replies, grouped into shards (one
// io_context and one thread each). A template over the protocol (protocol.hpp), so formatting and
// framing inline into the per-request path.
//
// Threading: a shard's io_context is run by exactly one thread and owns every n-th connection. A
// connection's state and its shard's LoadStats are touched only by handlers on that thread, so
// the hot path has no locks, atomics or strands; the main thread reads the statistics only after
// joining the shard threads (the join orders the reads).
//
// Cost per request: no allocation. Requests are formatted into a per-connection buffer sized
// for a full window, what the client must remember waits in a fixed ring (InFlightWindow),
// replies are framed inside the read buffer, and the histograms are fixed arrays. Asio recycles
// the memory of its read, write and timer operations, so steady state allocates nothing either.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "load/keys.hpp"
#include "load/protocol.hpp"
#include "load/schedule.hpp"
#include "load/stats.hpp"

namespace anubis::harness::load {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

// Replies to events are tens of bytes, so one read takes hundreds of them.
inline constexpr std::size_t kReadBufferBytes = 64 * 1024;
// A connection that waits this long for any reply fails, so a wedged server ends the run with an
// error instead of hanging it (and the CI job running it). Checked once per kWatchdogPeriod.
inline constexpr auto kStallTimeout = std::chrono::seconds(30);
inline constexpr auto kWatchdogPeriod = std::chrono::seconds(1);

// What every connection is asked to do. Written by main before the shard threads start (thread
// creation publishes it), read-only afterwards. Times are nanoseconds since `epoch`.
struct LoadPlan {
  std::string user_prefix;
  EventMix mix;
  std::uint64_t seed = 0;
  std::uint32_t connections = 0;
  std::uint32_t window = 0;  // closed loop: --pipeline; open loop: --max-inflight
  bool open_loop = false;
  double rate = 0;  // open loop: events/s over all connections
  std::int64_t timeout_ns = 0;
  std::int64_t max_lateness_ns = 0;
  Clock::time_point epoch;
  std::int64_t measure_start_ns = 0;  // the end of the warmup
  std::int64_t send_end_ns = kNever;  // no request is sent at or after this (--duration)
};

template <class Protocol>
class Shard;

// One TCP connection. Closed loop: keeps plan.window requests in flight, refilling the window
// whenever no write is in progress. Open loop: sends on its own schedule (schedule.hpp), woken by
// a timer at each intended send and by every reply. Every member is touched only by handlers on
// the owning shard's thread.
template <class Protocol>
class Connection {
 public:
  // quota: measured-phase events to send (max() with --duration).
  Connection(Shard<Protocol>& shard, std::uint32_t index, std::uint64_t quota)
      : shard_(shard),
        plan_(shard.plan()),
        stats_(shard.stats()),
        index_(index),
        socket_(shard.io()),
        timer_(shard.io()),
        events_(plan_.mix, plan_.seed, index),
        remaining_(quota),
        window_(plan_.window),
        pending_(plan_.window * Protocol::max_request_bytes(plan_.user_prefix.size())),
        outgoing_(pending_.size()),
        read_buffer_(kReadBufferBytes) {
    if (plan_.open_loop) {
      OpenLoopConfig config;
      // Connection i starts i/rate seconds in, so the connections' sends interleave evenly.
      config.start_ns = static_cast<std::int64_t>(static_cast<double>(index) * 1e9 / plan_.rate);
      config.interval_ns = static_cast<double>(plan_.connections) * 1e9 / plan_.rate;
      config.end_ns = plan_.send_end_ns;
      if (quota != std::numeric_limits<std::uint64_t>::max()) {
        config.quota = config.intended_before(plan_.measure_start_ns) + quota;
      }
      config.max_lateness_ns = plan_.max_lateness_ns;
      schedule_.emplace(config);
    }
  }

  tcp::socket& socket() noexcept { return socket_; }

  // Sends what is due and starts reading. The connection then runs until it has nothing left to
  // send and nothing in flight, and closes itself.
  void start() {
    last_progress_ = Clock::now();
    pump(now_ns());
    if (done()) return close();  // an --events share of zero
    read_more();
  }

  // Fails the connection if it has requests in flight and no reply for kStallTimeout.
  void check_stall(Clock::time_point now) {
    if (!closed_ && !window_.empty() && now - last_progress_ > kStallTimeout) {
      fail("no reply for " + std::to_string(kStallTimeout.count()) + " s", {});
    }
  }

 private:
  std::int64_t now_ns() const noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - plan_.epoch).count();
  }

  bool done() const noexcept {
    if (writing_ || !window_.empty()) return false;
    return schedule_ ? schedule_->finished() : remaining_ == 0;
  }

  // Sends whatever is due at `now`: called after every read, write and timer completion.
  void pump(std::int64_t now) {
    if (closed_) return;
    if (schedule_) {
      window_.expire(now, plan_.timeout_ns,
                     [this, now](const InFlight& request) { stats_.on_timeout(request, now); });
      schedule_->poll(
          now, window_.free(),
          [this, now](std::int64_t intended) {
            append(intended, now);
            stats_.on_sent(intended);
          },
          [this](std::uint64_t first, std::uint64_t end) {
            stats_.on_missed(schedule_->config(), first, end);
          });
      flush(now);
      arm_timer();
    } else if (!writing_) {
      // A window's requests leave in one write, so they share one send time.
      if (now >= plan_.send_end_ns) remaining_ = 0;
      const bool warmup = now < plan_.measure_start_ns;
      std::size_t requests = window_.free();
      if (!warmup)
        requests = static_cast<std::size_t>(std::min<std::uint64_t>(requests, remaining_));
      if (requests == 0) return;
      for (std::size_t i = 0; i < requests; ++i) append(now, now);
      if (!warmup) remaining_ -= requests;
      stats_.on_sent(now, requests);
      flush(now);
    }
  }

  void append(std::int64_t intended, std::int64_t now) {
    const Event event = events_.next();
    char* const end =
        Protocol::append_event(pending_.data() + pending_size_, plan_.user_prefix, event);
    pending_size_ = static_cast<std::size_t>(end - pending_.data());
    ++pending_requests_;
    window_.push({intended, now, event.user, static_cast<std::int32_t>(event.delta())});
  }

  // Writes the pending requests unless a write is in progress (its completion calls back here).
  void flush(std::int64_t now) {
    if (writing_ || pending_size_ == 0) return;
    window_.set_written(pending_requests_, now);
    std::swap(pending_, outgoing_);
    const std::size_t bytes = pending_size_;
    pending_size_ = 0;
    pending_requests_ = 0;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(outgoing_.data(), bytes),
                      [this](const error_code& ec, std::size_t) {
                        writing_ = false;
                        if (closed_) return;
                        if (ec) return fail("write failed", ec);
                        pump(now_ns());
                        if (done()) close();
                      });
  }

  // Open loop: wakes the connection at its next intended send or timeout, whichever is first.
  void arm_timer() {
    const std::int64_t wake =
        std::min(schedule_->next_send(), window_.next_expiry(plan_.timeout_ns));
    if (wake >= timer_at_) return;  // an earlier wake-up is pending already
    timer_at_ = wake;
    timer_.expires_at(plan_.epoch + std::chrono::nanoseconds(wake));
    timer_.async_wait([this](const error_code& ec) {
      if (ec) return;  // cancelled: re-armed earlier, or closed
      timer_at_ = kNever;
      if (closed_) return;
      pump(now_ns());
      if (done()) close();
    });
  }

  void read_more() {
    socket_.async_read_some(
        asio::buffer(read_buffer_.data() + read_size_, read_buffer_.size() - read_size_),
        [this](const error_code& ec, std::size_t bytes) { on_read(ec, bytes); });
  }

  void on_read(const error_code& ec, std::size_t bytes) {
    if (closed_) return;
    // A graceful server stop lands here too: the server answers the requests it has read, then
    // closes; requests it had not read were neither applied nor answered: the run is incomplete.
    if (ec)
      return fail(ec == asio::error::eof ? "server closed the connection" : "read failed", ec);

    // One timestamp for every reply this read brought: they were parsed together.
    const std::int64_t now = now_ns();
    last_progress_ = plan_.epoch + std::chrono::nanoseconds(now);
    read_size_ += bytes;
    const char* reply = read_buffer_.data();
    const char* const end = reply + read_size_;
    for (;;) {
      const Framed framed = Protocol::frame_reply(reply, end);
      if (framed.status == Framed::Status::incomplete) break;
      if (framed.status == Framed::Status::malformed) {
        ++stats_.totals.errors;
        return fail("a reply is malformed", {});
      }
      if (window_.empty()) {
        ++stats_.totals.errors;
        return fail("a reply arrived with no request outstanding", {});
      }
      stats_.on_reply(window_.pop(), framed, now);
      reply += framed.size;
    }
    read_size_ = static_cast<std::size_t>(end - reply);
    std::memmove(read_buffer_.data(), reply, read_size_);
    if (read_size_ == read_buffer_.size()) return fail("a reply overflowed the read buffer", {});

    pump(now);
    if (done()) return close();
    read_more();
  }

  void close() {
    closed_ = true;
    error_code ignored;  // the peer may already be gone; there is nothing left to tell it
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    shard_.connection_closed();
  }

  void fail(std::string_view what, const error_code& ec) {
    stats_.unanswered += window_.size();
    if (++stats_.failed_connections == 1) {
      stats_.first_failure = "connection " + std::to_string(index_) + ": " + std::string(what);
      if (ec) stats_.first_failure += ": " + ec.message();
    }
    close();
  }

  Shard<Protocol>& shard_;
  const LoadPlan& plan_;
  LoadStats& stats_;
  const std::uint32_t index_;
  tcp::socket socket_;
  asio::steady_timer timer_;        // open loop only
  std::int64_t timer_at_ = kNever;  // when the pending timer wait fires; kNever if none
  EventStream events_;
  std::uint64_t remaining_;                   // closed loop: measured requests still to send
  std::optional<OpenLoopSchedule> schedule_;  // open loop only
  InFlightWindow window_;
  // Requests formatted and not yet written; at most a window's worth, as each holds a slot.
  std::vector<char> pending_;
  std::size_t pending_size_ = 0;
  std::size_t pending_requests_ = 0;
  // The bytes of the write in progress (writing_); Asio reads them until it completes.
  std::vector<char> outgoing_;
  bool writing_ = false;
  // Bytes read and not yet framed, from the start: at most one partial reply between reads.
  std::vector<char> read_buffer_;
  std::size_t read_size_ = 0;
  Clock::time_point last_progress_;  // the last read (or the start), for check_stall
  // Set once, by close(); handlers that run afterwards (operation_aborted) return at once.
  bool closed_ = false;
};

// One thread's share of the connections: an io_context run by exactly one thread, so the
// handlers of its connections never run concurrently and need no locks.
template <class Protocol>
class Shard {
 public:
  explicit Shard(const LoadPlan& plan)
      : plan_(plan), stats_(plan.mix.users, plan.measure_start_ns, plan.open_loop) {}

  void add_connection(std::uint32_t index, std::uint64_t quota) {
    connections_.push_back(std::make_unique<Connection<Protocol>>(*this, index, quota));
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

  // Runs the load on the calling thread until every connection has closed. `expected_seconds`
  // of time series are allocated up front, so recording them allocates nothing.
  void run(std::size_t expected_seconds) {
    stats_.reserve_seconds(expected_seconds);
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

  // Declared first so that it is destroyed last: the sockets and the timers below use it.
  asio::io_context io_{1};  // concurrency hint: one thread runs it
  const LoadPlan& plan_;
  LoadStats stats_;
  asio::steady_timer watchdog_{io_};
  std::vector<std::unique_ptr<Connection<Protocol>>> connections_;
  std::size_t open_ = 0;  // connections not yet closed
};

}  // namespace anubis::harness::load
