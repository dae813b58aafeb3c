#include "net.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include "reply.hpp"
#include "request.hpp"

namespace anubis {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// Opens `acceptor` bound to bind:port, with the options the server listens with; empty if that
// worked, else the one-line reason.
std::string open_and_bind(tcp::acceptor& acceptor, const std::string& bind, std::uint16_t port) {
  error_code ec;
  const auto address = asio::ip::make_address(bind, ec);
  if (ec) return "invalid --bind address '" + bind + "': an IPv4 or IPv6 address is expected";
  const tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  return ec ? "cannot listen on " + bind + ":" + std::to_string(port) + ": " + ec.message()
            : std::string();
}

}  // namespace

std::string check_listen_address(const std::string& bind, std::uint16_t port) {
  // A well-formed address may belong to no interface here, and the port may be taken: a trial
  // bind, released at once, finds both out. (Another process may still take the port before
  // the server binds it; only the start itself can be sure.)
  asio::io_context io;
  tcp::acceptor trial(io);
  return open_and_bind(trial, bind, port);
}

namespace detail {

class Connection;

// Shared by the listener and every connection. Lives from Server's constructor to its
// destructor; every connection ends before it (wait_until_network_stopped).
class ServerCore {
 public:
  ServerCore(const NetConfig& net_config, Pipeline& events, AnyStore& state, Metrics& counters,
             Logger& logger);

  void start();
  void request_stop();
  void wait_until_network_stopped();
  void join();
  std::string local_address() const;

  // Called by Connection. register_connection returns false if the server is stopping, in
  // which case the connection must stop at once.
  bool register_connection(const std::shared_ptr<Connection>& c);
  void unregister_connection(Connection* c);

  // The hint sent with server_busy: about the time the workers need to empty half the queue
  // at the rate they processed events over the last tick, within [1, 1000] ms.
  std::uint32_t retry_after_ms() const;

  const NetConfig config;
  Pipeline& pipeline;
  AnyStore& store;
  Metrics& metrics;
  Logger& log;

 private:
  static constexpr std::chrono::milliseconds kMinAcceptBackoff{10};
  static constexpr std::chrono::milliseconds kMaxAcceptBackoff{1'000};
  static constexpr std::chrono::milliseconds kStatsTick{100};

  void do_accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  void refuse(tcp::socket socket);
  void wait_for_signal();
  void tick_stats();
  void begin_stop();
  std::vector<std::shared_ptr<Connection>> live_connections();

  asio::io_context io_;
  // The listener, the signals and the server-wide timers run on one strand, so the fields
  // marked "control strand" below need no lock even with several I/O threads.
  asio::strand<asio::io_context::executor_type> control_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer accept_backoff_;
  asio::steady_timer shutdown_deadline_;
  asio::steady_timer stats_tick_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;

  std::chrono::milliseconds backoff_ = kMinAcceptBackoff;  // control strand
  bool stop_begun_ = false;                                // control strand
  // Set by join(): handlers that would re-arm themselves (signals, stats tick) must not. A
  // handler that completed just before join() cancelled it is already queued, and re-arming
  // from it would keep the io_context running for ever.
  bool joining_ = false;              // control strand
  int signals_seen_ = 0;              // control strand
  std::uint64_t last_processed_ = 0;  // control strand
  // Events processed per second over the last tick; relaxed: a hint, read by any I/O thread.
  std::atomic<std::uint64_t> processed_per_s_{0};

  // The registry of live connections, so a stop can reach every one of them.
  mutable std::mutex mutex_;
  std::condition_variable network_stopped_;  // signalled when stopping_ and connections_ is empty
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;  // guarded by mutex_
  bool stopping_ = false;                                                   // guarded by mutex_
};

// One client connection. All of its handlers run on its own strand (the socket's executor), so
// its fields need no lock. It keeps itself alive through the shared_ptr each pending handler
// holds; when the last one completes, the destructor unregisters it.
//
// Flow: read -> split lines -> parse -> events are collected into a batch and offered to the
// pipeline in one call; queries are answered at once (after flushing the batch before them, so
// replies keep request order). Replies are appended to `pending_` and sent by one write at a
// time; while the unsent replies exceed max_output_bytes the connection stops taking lines (and
// so stops reading) until the client reads.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore& server, tcp::socket socket)
      : server_(server),
        config_(server.config),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        in_(std::max(kMinReadBuffer, config_.max_line_bytes + 2)),
        last_activity_(Clock::now()) {
    server_.metrics.connection_opened();
  }

  ~Connection() {
    server_.metrics.connection_closed();
    server_.unregister_connection(this);
  }

  // Starts serving; called once, after registration.
  void start(bool stopping) {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this(), stopping] {
      self->arm_timer(self->config_.idle_timeout);
      if (stopping) self->stopping_ = true;
      self->pump();
    });
  }

  // The server is shutting down: stop reading, answer what was read, flush, close.
  void stop() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      if (self->reading_) self->read_cancel_.emit(asio::cancellation_type::terminal);
      self->pump();
    });
  }

  // The shutdown deadline passed: close now, abandoning unsent replies.
  void force_close() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->close_now(); });
  }

 private:
  // Read buffer size when lines are short: large enough that a pipelining client needs few
  // reads, small enough that an idle connection costs about 20 KB in all (200 MB for 10,000).
  static constexpr std::size_t kMinReadBuffer = 8 * 1024;
  // Events offered to the pipeline per call.
  static constexpr std::size_t kBatch = 64;
  // After a stop, how long the client may stay silent before the connection is closed; while
  // it keeps sending (it has not seen our FIN yet), what it sends is read and discarded, so that
  // closing does not reset the connection and destroy replies it has not read yet.
  static constexpr std::chrono::milliseconds kLingerQuiet{250};

  std::size_t unsent_bytes() const { return pending_.size() + in_flight_.size() - written_; }
  bool output_full() const { return unsent_bytes() >= config_.max_output_bytes; }

  // The one place that decides what to do next; called after every completion.
  void pump() {
    if (closed_) return;
    if (!finishing_) process_input();
    start_write();
    if (finishing_) return;
    const bool input_done = input_closed_ || stopping_;
    if (input_done) {
      // A read cancelled by stop() may still be completing; finish after it has.
      if (!reading_ && !has_complete_line() && !writing_ && pending_.empty()) finish();
      return;
    }
    if (!reading_ && !output_full() && !has_complete_line()) start_read();
  }

  bool has_complete_line() const {
    return in_begin_ < in_end_ && std::memchr(&in_[in_begin_], '\n', in_end_ - in_begin_);
  }

  void start_read() {
    // process_input() compacts the buffer and discards over-long partial lines, so at most
    // max_line_bytes + 1 bytes are buffered here and at least one byte is free.
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(&in_[in_end_], in_.size() - in_end_),
        asio::bind_cancellation_slot(
            read_cancel_.slot(),
            [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); }));
  }

  void on_read(const error_code& ec, std::size_t n) {
    reading_ = false;
    if (ec == asio::error::eof) {
      input_closed_ = true;
    } else if (ec == asio::error::operation_aborted) {
      // stop() cancelled the read; pump() finishes the connection.
    } else if (ec) {
      close_now();
      return;
    } else {
      in_end_ += n;
      last_activity_ = Clock::now();
    }
    pump();
  }

  // Handles every complete line in the buffer, unless the output bound is reached first (the
  // rest waits for the client to read). At end of input, an unterminated last line counts too.
  void process_input() {
    while (in_begin_ < in_end_ && !output_full()) {
      char* begin = &in_[in_begin_];
      const std::size_t available = in_end_ - in_begin_;
      auto* newline = static_cast<char*>(std::memchr(begin, '\n', available));
      if (discarding_) {
        // Skipping the rest of an over-long line, already answered.
        if (!newline) {
          in_begin_ = in_end_;
          break;
        }
        discarding_ = false;
        in_begin_ += static_cast<std::size_t>(newline - begin) + 1;
        continue;
      }
      if (!newline) {
        if (available > config_.max_line_bytes + 1) {
          // Too long even if the next byte ends it (one '\r' is not part of the line).
          refuse_line_too_long();
          discarding_ = true;
          in_begin_ = in_end_;
        } else if (input_closed_) {
          handle_line({begin, available});
          in_begin_ = in_end_;
        }
        break;
      }
      const std::size_t length = static_cast<std::size_t>(newline - begin);
      in_begin_ += length + 1;
      handle_line({begin, length});
    }
    flush_batch();
    compact();
  }

  void compact() {
    if (in_begin_ == in_end_) {
      in_begin_ = in_end_ = 0;
    } else if (in_begin_ > 0 && !has_complete_line()) {
      std::memmove(in_.data(), &in_[in_begin_], in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
  }

  void handle_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Length first: process_input() refuses a line as soon as too much of it is buffered, before
    // its content is known, so a long line must be refused whatever it holds, blanks included.
    if (line.size() > config_.max_line_bytes) {
      refuse_line_too_long();
      return;
    }
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank: ignored
    const Request& request = parser_.parse(line);
    if (request.type == RequestType::event) {
      batch_[batch_size_] = request.event;
      batch_ids_[batch_size_] = request.id;
      if (++batch_size_ == kBatch) flush_batch();
      return;
    }
    flush_batch();  // earlier events are answered first
    switch (request.type) {
      case RequestType::health:
        append_health(pending_, request.id);
        break;
      case RequestType::metrics:
        append_metrics(pending_, request.id,
                       server_.metrics.snapshot(server_.pipeline.queue_depth()));
        break;
      case RequestType::balance: {
        const std::string_view user = request.event.user.view();
        const Balance b = server_.store.lookup(user);
        append_balance(pending_, request.id, user, b.balance, b.events);
        break;
      }
      default:
        server_.metrics.add_received(1);
        server_.metrics.add_invalid(1);
        append_error(pending_, request.id, request.error, request.detail);
        break;
    }
  }

  void refuse_line_too_long() {
    flush_batch();
    server_.metrics.add_received(1);
    server_.metrics.add_invalid(1);
    append_error(pending_, RequestId{}, ErrorCode::line_too_long,
                 "line longer than " + std::to_string(config_.max_line_bytes) +
                     " bytes; skipped to the next newline");
  }

  // Offers the collected events to the pipeline in one call and writes their replies in order.
  void flush_batch() {
    if (batch_size_ == 0) return;
    const std::size_t n = batch_size_;
    batch_size_ = 0;
    const SubmitResult result = server_.pipeline.submit({batch_.data(), n});
    std::size_t i = 0;
    for (; i < result.accepted; ++i) append_accepted(pending_, batch_ids_[i]);
    if (i < n) {
      const std::uint32_t retry = result.closed ? 0 : server_.retry_after_ms();
      for (; i < n; ++i) {
        if (result.closed) {
          append_shutting_down(pending_, batch_ids_[i]);
        } else {
          append_server_busy(pending_, batch_ids_[i], retry);
        }
      }
    }
    Metrics& m = server_.metrics;
    m.add_received(n);
    m.add_accepted(result.accepted);
    if (result.closed) {
      m.add_rejected_shutting_down(n - result.accepted);
    } else {
      m.add_dropped(n - result.accepted);
    }
  }

  // At most one write in flight; replies produced meanwhile wait in pending_ and leave together.
  void start_write() {
    if (writing_ || pending_.empty() || closed_) return;
    in_flight_.swap(pending_);  // in_flight_ was empty; the buffers keep their capacity
    writing_ = true;
    write_some();
  }

  // Writes in pieces (as much as the socket takes each time) rather than with one composed
  // async_write, so that every piece the client takes counts as activity for the idle timeout:
  // a client slowly reading a megabyte of replies is busy, not idle.
  void write_some() {
    socket_.async_write_some(
        asio::buffer(in_flight_.data() + written_, in_flight_.size() - written_),
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_write(ec, n); });
  }

  void on_write(const error_code& ec, std::size_t n) {
    if (ec) {
      writing_ = false;
      close_now();
      return;
    }
    last_activity_ = Clock::now();
    written_ += n;
    if (written_ < in_flight_.size()) {
      write_some();
      return;
    }
    writing_ = false;
    in_flight_.clear();
    written_ = 0;
    pump();
  }

  // Every reply is written: send FIN, then linger (see kLingerQuiet) unless the client has
  // already closed its side.
  void finish() {
    finishing_ = true;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (input_closed_) {
      close_now();
      return;
    }
    last_activity_ = Clock::now();
    arm_timer(kLingerQuiet);
    linger_read();
  }

  void linger_read() {
    socket_.async_read_some(asio::buffer(in_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) {
                                self->close_now();
                                return;
                              }
                              self->last_activity_ = Clock::now();
                              self->linger_read();
                            });
  }

  // One timer serves both the idle timeout and the linger: each firing checks the time since
  // the last byte received against the limit of the current phase and re-arms for the rest.
  // Re-arming cancels the previous wait, whose handler then sees operation_aborted.
  void arm_timer(Clock::duration after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      const Clock::duration limit =
          self->finishing_ ? Clock::duration(kLingerQuiet) : self->config_.idle_timeout;
      const Clock::duration idle = Clock::now() - self->last_activity_;
      if (idle >= limit) {
        self->close_now();
      } else {
        self->arm_timer(limit - idle);
      }
    });
  }

  void close_now() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    socket_.close(ignored);  // completes pending operations with operation_aborted
    timer_.cancel();
  }

  ServerCore& server_;
  const NetConfig& config_;
  tcp::socket socket_;  // its executor is this connection's strand
  asio::steady_timer timer_;
  asio::cancellation_signal read_cancel_;
  RequestParser parser_;

  // Input: bytes [in_begin_, in_end_) of in_ are received and not yet handled.
  std::vector<char> in_;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  bool discarding_ = false;  // inside an over-long line, skipping to its newline
  Clock::time_point last_activity_;

  // Events parsed but not yet offered, with the ids their replies echo.
  std::array<Event, kBatch> batch_;
  std::array<RequestId, kBatch> batch_ids_;
  std::size_t batch_size_ = 0;

  // Output: replies waiting for the write in flight, and the bytes of that write.
  std::string pending_;
  std::string in_flight_;
  std::size_t written_ = 0;  // bytes of in_flight_ already sent; 0 when no write is in flight

  bool reading_ = false;
  bool writing_ = false;
  bool input_closed_ = false;  // the client sent EOF
  bool stopping_ = false;      // the server is shutting down: read no more
  bool finishing_ = false;     // FIN sent; only lingering remains
  bool closed_ = false;
};

ServerCore::ServerCore(const NetConfig& net_config, Pipeline& events, AnyStore& state,
                       Metrics& counters, Logger& logger)
    : config(net_config),
      pipeline(events),
      store(state),
      metrics(counters),
      log(logger),
      io_(static_cast<int>(config.io_threads)),
      control_(io_.get_executor()),
      acceptor_(control_),
      signals_(control_, SIGINT, SIGTERM),
      accept_backoff_(control_),
      shutdown_deadline_(control_),
      stats_tick_(control_) {
  if (std::string why = open_and_bind(acceptor_, config.bind, config.port); !why.empty()) {
    throw std::runtime_error(why);
  }
  error_code ec;
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + config.bind + ":" + std::to_string(config.port) +
                             ": " + ec.message());
  }
}

std::string ServerCore::local_address() const {
  const tcp::endpoint ep = acceptor_.local_endpoint();
  // IPv6 addresses contain colons: brackets keep "HOST:PORT" splittable at the last colon and
  // make the text usable as a URL authority (RFC 3986).
  const std::string host =
      ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
  return host + ":" + std::to_string(ep.port());
}

void ServerCore::start() {
  work_.emplace(io_.get_executor());
  asio::dispatch(control_, [this] {
    do_accept();
    wait_for_signal();
    tick_stats();
  });
  for (std::size_t i = 0; i < config.io_threads; ++i) threads_.emplace_back([this] { io_.run(); });
}

void ServerCore::do_accept() {
  acceptor_.async_accept(asio::make_strand(io_), [this](error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void ServerCore::on_accept(const error_code& ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || stop_begun_) return;
  if (ec) {
    // Out of descriptors or memory: the pending connection stays in the backlog, so accepting
    // again at once would fail again at once (a busy loop). Back off, doubling up to 1 s.
    const bool resource =
        ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
        ec == asio::error::no_memory ||
        (ec.category() == boost::system::system_category() && ec.value() == ENFILE);
    if (!resource) {
      do_accept();  // this one connection failed (e.g. aborted by the peer); take the next
      return;
    }
    if (backoff_ == kMinAcceptBackoff) log.log("accept failed (" + ec.message() + "); backing off");
    accept_backoff_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, kMaxAcceptBackoff);
    accept_backoff_.async_wait([this](error_code wait_ec) {
      if (!wait_ec && !stop_begun_) do_accept();
    });
    return;
  }
  backoff_ = kMinAcceptBackoff;
  std::size_t open = 0;
  {
    std::lock_guard lock(mutex_);
    open = connections_.size();
  }
  if (open >= config.max_connections) {
    refuse(std::move(socket));
  } else {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto connection = std::make_shared<Connection>(*this, std::move(socket));
    connection->start(!register_connection(connection));
  }
  do_accept();
}

// Over --max-connections: one error line, then close. The socket is new and its send buffer
// empty, so a non-blocking write of one short line completes (or fails) at once.
void ServerCore::refuse(tcp::socket socket) {
  std::string line;
  append_error(line, RequestId{}, ErrorCode::too_many_connections,
               "the server already has " + std::to_string(config.max_connections) +
                   " connections; retry later");
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(line), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

bool ServerCore::register_connection(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mutex_);
  connections_.emplace(c.get(), c);
  return !stopping_;
}

void ServerCore::unregister_connection(Connection* c) {
  std::lock_guard lock(mutex_);
  connections_.erase(c);
  if (stopping_ && connections_.empty()) network_stopped_.notify_all();
}

std::vector<std::shared_ptr<Connection>> ServerCore::live_connections() {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(mutex_);
  out.reserve(connections_.size());
  for (auto& [ptr, weak] : connections_) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

std::uint32_t ServerCore::retry_after_ms() const {
  const std::uint64_t rate = processed_per_s_.load(std::memory_order_relaxed);
  if (rate == 0) return 1000;
  const std::uint64_t ms = pipeline.queue_depth() * 1000 / (2 * rate);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(ms, 1, 1000));
}

void ServerCore::tick_stats() {
  stats_tick_.expires_after(kStatsTick);
  stats_tick_.async_wait([this](error_code ec) {
    if (ec || joining_) return;
    const std::uint64_t processed = metrics.processed();
    processed_per_s_.store((processed - last_processed_) * 1000 / kStatsTick.count(),
                           std::memory_order_relaxed);
    last_processed_ = processed;
    tick_stats();
  });
}

void ServerCore::wait_for_signal() {
  signals_.async_wait([this](error_code ec, int signo) {
    if (ec) return;  // cancelled by join()
    ++signals_seen_;
    if (signals_seen_ == 1) {
      log.log(std::string("received ") + strsignal(signo) + "; shutting down gracefully");
      begin_stop();
    } else {
      log.log(std::string("received ") + strsignal(signo) +
              " again; the shutdown is already under way and will finish");
    }
    if (!joining_) wait_for_signal();
  });
}

void ServerCore::request_stop() {
  asio::dispatch(control_, [this] { begin_stop(); });
}

void ServerCore::begin_stop() {
  if (stop_begun_) return;
  stop_begun_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_backoff_.cancel();
  pipeline.stop_intake();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (connections_.empty()) network_stopped_.notify_all();
  }
  for (auto& c : live_connections()) c->stop();
  shutdown_deadline_.expires_after(config.shutdown_timeout);
  shutdown_deadline_.async_wait([this](error_code ec) {
    if (ec) return;
    auto stragglers = live_connections();
    if (stragglers.empty()) return;
    log.log("shutdown timeout: closing " + std::to_string(stragglers.size()) +
            " connections with replies still unsent");
    for (auto& c : stragglers) c->force_close();
  });
}

void ServerCore::wait_until_network_stopped() {
  std::unique_lock lock(mutex_);
  network_stopped_.wait(lock, [this] { return stopping_ && connections_.empty(); });
}

void ServerCore::join() {
  asio::dispatch(control_, [this] {
    joining_ = true;
    error_code ignored;
    signals_.cancel(ignored);
    stats_tick_.cancel();
    shutdown_deadline_.cancel();
    accept_backoff_.cancel();
    acceptor_.close(ignored);
    work_.reset();
  });
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace detail

Server::Server(const NetConfig& config, Pipeline& pipeline, AnyStore& store, Metrics& metrics,
               Logger& log)
    : core_(std::make_unique<detail::ServerCore>(config, pipeline, store, metrics, log)) {}
Server::~Server() = default;
std::string Server::local_address() const {
  return core_->local_address();
}
void Server::start() {
  core_->start();
}
void Server::request_stop() {
  core_->request_stop();
}
void Server::wait_until_network_stopped() {
  core_->wait_until_network_stopped();
}
void Server::join() {
  core_->join();
}

}  // namespace anubis
