// Stage 04 — a pool of worker threads pulling from a thread-safe channel.
//
// In stage 03 the consumer shared the io_context's one thread with the connections, so it could
// never block and never use a second core. Now --workers OS threads take events from the
// channel and process them in parallel; while one waits (--consumer-delay-us stands for slow
// work, such as a database call) the others go on, and the io_context's thread keeps reading.
// The channel is now shared between threads, so a mutex guards it and a condition variable lets
// idle workers sleep until there is an event.
//
// Output (stdout, one line each, flushed so that a pipe sees it at once):
//   listening on 127.0.0.1:PORT                first, always: tests and lessons read the port
//   connection N opened                        a client connected (N counts from 1)
//   event: user=U action=buy|sell amount=A worker=W    worker W processed a valid event
//   rejected: channel full                     a valid event that did not fit in the channel
//   invalid: REASON                            a line that is not an event, and why
//   connection N closed                        the client hung up (or the connection failed)
//   stats: accepted=A rejected=R max_depth=D capacity=C processed=P    at exit
//
// Break it on purpose: --break spin makes idle workers poll the channel instead of sleeping
// (see LESSON.md); --break unbounded is stage 03's experiment.
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// A line longer than this closes the connection: without a limit, a client that never sends a
// newline would make the server buffer forever. (The final server answers `line_too_long` and
// skips to the next newline instead: src/net.cpp.)
constexpr std::size_t kMaxLineBytes = 4096;

// The protocol's limits (docs/PROTOCOL.md): a user name of 1..64 bytes, an amount of 1..10^9.
constexpr std::size_t kMaxUserBytes = 64;
constexpr std::int64_t kMaxAmount = 1'000'000'000;

enum class Action { buy, sell };

// One validated event. The final server stores the name inline in a fixed-size array and the
// amount as a signed delta, so an Event never allocates (src/event.hpp); a std::string is
// simpler to read.
struct Event {
  std::string user;
  Action action = Action::buy;
  std::int64_t amount = 0;
};

struct Options {
  std::uint16_t port = 0;  // 0: the kernel picks a free port
  std::size_t capacity = 1024;
  std::chrono::microseconds consumer_delay{0};
  std::size_t workers = 2;
  std::string_view broken;  // --break NAME: an experiment's broken variant; empty: correct
};

// Prints one whole line and flushes it, so a reader on a pipe sees it at once. The workers and
// the io_context's thread all print: the mutex keeps their lines from interleaving mid-line.
void print_line(std::string_view text) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::cout << text << '\n' << std::flush;
}

std::string describe(const Event& event) {
  return "user=" + event.user + " action=" + (event.action == Action::buy ? "buy" : "sell") +
         " amount=" + std::to_string(event.amount);
}

// Parses one line into an Event. On failure returns nullopt and sets `error` to a reason a
// client could act on. Every field is checked for its type and range: JSON numbers may be
// 1.5 or 1e400, strings may be empty, and any field may be missing or unexpected.
std::optional<Event> parse_event(std::string_view line, std::string& error) {
  error_code ec;
  const json::value value = json::parse(line, ec);
  if (ec) {
    error = "not JSON (" + ec.message() + ")";
    return std::nullopt;
  }
  const json::object* object = value.if_object();
  if (object == nullptr) {
    error = "an event must be a JSON object";
    return std::nullopt;
  }
  // The DOM keeps only the last of two equal keys; the final server parses with a SAX handler
  // to refuse duplicates (src/request.cpp).
  for (const auto& entry : *object) {
    if (entry.key() != "user" && entry.key() != "action" && entry.key() != "amount") {
      error = "unknown field \"" + std::string(entry.key()) + "\"";
      return std::nullopt;
    }
  }
  for (const std::string_view name : {"user", "action", "amount"}) {
    if (!object->contains(name)) {
      error = "missing field \"" + std::string(name) + "\"";
      return std::nullopt;
    }
  }
  Event event;
  const json::value& user = object->at("user");
  if (!user.is_string() || user.get_string().empty() || user.get_string().size() > kMaxUserBytes) {
    error = "user must be a string of 1 to 64 bytes";
    return std::nullopt;
  }
  event.user = user.get_string();
  const json::value& action = object->at("action");
  if (action == "buy") {
    event.action = Action::buy;
  } else if (action == "sell") {
    event.action = Action::sell;
  } else {
    error = "action must be \"buy\" or \"sell\"";
    return std::nullopt;
  }
  // Only an integer counts: 100.0 or "100" are refused rather than converted.
  const json::value& amount = object->at("amount");
  if (!amount.is_int64() || amount.get_int64() < 1 || amount.get_int64() > kMaxAmount) {
    error = "amount must be an integer from 1 to 1000000000";
    return std::nullopt;
  }
  event.amount = amount.get_int64();
  return event;
}

// A FIFO of events with a fixed capacity, safe to use from any number of threads. try_push
// never waits: when the channel is full it refuses, and the caller tells the client (here:
// prints `rejected`); the io_context's thread must not wait for room, or every connection would
// stall with it. pop() does wait: a worker with nothing to do sleeps until an event arrives.
class Channel {
 public:
  Channel(std::size_t capacity, bool unbounded, bool spin)
      : capacity_(capacity), unbounded_(unbounded), spin_(spin) {}

  bool try_push(Event event) {
    {
      std::lock_guard lock(mutex_);
      // The broken variant skips this check: under a flood the deque grows without limit.
      if (!unbounded_ && events_.size() >= capacity_) {
        ++rejected_;
        return false;
      }
      events_.push_back(std::move(event));
      ++accepted_;
      max_depth_ = std::max(max_depth_, events_.size());
    }
    // Outside the lock, so the woken worker does not at once block on the mutex we still hold.
    not_empty_.notify_one();
    return true;
  }

  // Waits for an event; nullopt once the channel is closed. Events still queued then are
  // abandoned: stage 09 drains them before exiting.
  std::optional<Event> pop() {
    std::unique_lock lock(mutex_);
    if (spin_) {
      // The broken variant: poll instead of sleeping. Correct, but an idle worker burns a core.
      while (events_.empty() && !closed_) {
        lock.unlock();
        std::this_thread::yield();
        lock.lock();
      }
    } else {
      // wait() releases the mutex while asleep and retakes it before checking again; the loop
      // inside wait() also covers wake-ups that come without a notify (spurious wake-ups).
      not_empty_.wait(lock, [this] { return !events_.empty() || closed_; });
    }
    if (closed_) return std::nullopt;
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
  }

  // Wakes every worker; from now on pop() returns nullopt.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
  }

  std::string stats() const {
    std::lock_guard lock(mutex_);
    return "accepted=" + std::to_string(accepted_) + " rejected=" + std::to_string(rejected_) +
           " max_depth=" + std::to_string(max_depth_) + " capacity=" + std::to_string(capacity_);
  }

 private:
  // A deque grows and shrinks in blocks as events come and go. The final server preallocates a
  // ring of `capacity` events once and never allocates again (strategies/queue/mutex_queue.hpp).
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;  // notified on each push and on close
  std::deque<Event> events_;           // guarded by mutex_
  const std::size_t capacity_;
  const bool unbounded_;
  const bool spin_;
  bool closed_ = false;         // guarded by mutex_
  std::uint64_t accepted_ = 0;  // guarded by mutex_
  std::uint64_t rejected_ = 0;  // guarded by mutex_
  std::size_t max_depth_ = 0;   // the most events the channel ever held at once; guarded by mutex_
};

// One worker thread: takes events until the channel is closed, and returns how many it
// processed. Unlike stage 03's consumer it may block — in pop() while there is nothing to do, in
// the delay while "working" — because the connections run on another thread meanwhile. Each
// worker counts in a local variable, so the count is shared with no one until the thread has
// ended (stage 07 shares live counters between threads, with atomics).
std::uint64_t run_worker(Channel& channel, std::size_t id, std::chrono::microseconds delay) {
  std::uint64_t processed = 0;
  while (const std::optional<Event> event = channel.pop()) {
    // Stands for slow work; the final server burns CPU instead (--work-us, src/worker.cpp).
    std::this_thread::sleep_for(delay);
    print_line("event: " + describe(*event) + " worker=" + std::to_string(id));
    ++processed;
  }
  return processed;
}

// One client. Owned by the pending read: each callback holds a shared_ptr to the connection,
// so the object lives exactly as long as Asio has work for it, and closes its socket when the
// last callback lets go of it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::uint64_t id, Channel& channel)
      : socket_(std::move(socket)), id_(id), channel_(channel) {}

  void start() {
    print_line("connection " + std::to_string(id_) + " opened");
    read_line();
  }

 private:
  void read_line() {
    // Returns at once; Asio calls on_read later, on the io_context's thread, when buffer_ holds
    // a newline (or the read failed). Meanwhile the thread serves other connections.
    asio::async_read_until(
        socket_, buffer_, '\n',
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    if (ec) {
      // EOF, a reset, or a line longer than kMaxLineBytes. An unterminated last line is
      // dropped here; the final server processes it as if it ended with '\n'.
      print_line("connection " + std::to_string(id_) + " closed");
      return;  // no new read: the last shared_ptr goes away and the socket closes
    }
    // buffer_ may hold more than one line (a read takes what the kernel has); take the first n
    // bytes, which end with '\n', and leave the rest for the next read_until.
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n) - 1);
    buffer_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF clients (telnet)
    handle_line(line);
    read_line();
  }

  void handle_line(const std::string& line) {
    std::string error;
    if (std::optional<Event> event = parse_event(line, error)) {
      if (!channel_.try_push(std::move(*event))) {
        // The final server answers the client `server_busy` with a retry hint (stage 08).
        print_line("rejected: channel full");
      }
    } else {
      print_line("invalid: " + error);
    }
  }

  tcp::socket socket_;
  asio::streambuf buffer_{kMaxLineBytes};
  std::uint64_t id_;
  Channel& channel_;  // owned by main; used only by handlers, which never run after io.run()
};

// A start-up failure (the port is taken, ...): main reports it and exits with status 2.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An acceptor listening on 127.0.0.1:port. Throws StartupError naming the address and the reason
// (e.g. "cannot listen on 127.0.0.1:7003: Address already in use") instead of Asio's bare
// "bind: Address already in use".
tcp::acceptor open_acceptor(asio::io_context& io, std::uint16_t port) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  tcp::acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw StartupError("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + ec.message());
  }
  return acceptor;
}

// Accepts connections forever: each accepted socket becomes a Connection, then we accept again.
class Listener {
 public:
  Listener(asio::io_context& io, std::uint16_t port, Channel& channel)
      : acceptor_(open_acceptor(io, port)), channel_(channel) {}

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (!ec) std::make_shared<Connection>(std::move(socket), ++connections_, channel_)->start();
      accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
  std::uint64_t connections_ = 0;
  Channel& channel_;
};

// Reads a whole decimal number no larger than `max`; false if `text` is anything else.
bool parse_number(std::string_view text, std::uint64_t max, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

// Arguments are parsed by hand to keep the stage quick to compile; the final server uses CLI11.
bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    std::uint64_t value = 0;
    if (arg == "--port" && has_value && parse_number(argv[++i], 65535, value)) {
      options.port = static_cast<std::uint16_t>(value);
    } else if (arg == "--capacity" && has_value && parse_number(argv[++i], 1 << 30, value) &&
               value > 0) {
      options.capacity = value;
    } else if (arg == "--consumer-delay-us" && has_value &&
               parse_number(argv[++i], 10'000'000, value)) {
      options.consumer_delay = std::chrono::microseconds(value);
    } else if (arg == "--workers" && has_value && parse_number(argv[++i], 256, value) &&
               value > 0) {
      options.workers = value;
    } else if (arg == "--break" && has_value) {
      options.broken = argv[++i];
      if (options.broken != "unbounded" && options.broken != "spin") return false;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) try {
  Options options;
  if (!parse_args(argc, argv, options)) {
    std::cerr << "usage: step04 [--port N] [--capacity N] [--consumer-delay-us N]"
                 " [--workers N] [--break unbounded|spin]\n";
    return 2;
  }
  asio::io_context io;
  Channel channel(options.capacity, options.broken == "unbounded", options.broken == "spin");
  Listener listener(io, options.port, channel);
  listener.accept();

  // processed[i] is written only by worker i, and read only after join(): join() makes
  // everything the thread wrote visible to the joining thread, so no lock is needed.
  std::vector<std::uint64_t> processed(options.workers, 0);
  std::vector<std::thread> workers;
  for (std::size_t i = 0; i < options.workers; ++i) {
    workers.emplace_back(
        [&, i] { processed[i] = run_worker(channel, i + 1, options.consumer_delay); });
  }

  // Ctrl-C (SIGINT) or SIGTERM stops the io_context, so run() returns and main exits normally.
  // stop() abandons whatever was in flight; stage 09 replaces it with a graceful drain.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](error_code, int) { io.stop(); });

  print_line("listening on 127.0.0.1:" + std::to_string(listener.port()));
  io.run();  // the one thread that runs every handler above; the workers run beside it
  // Workers finish the event in hand and stop; events still in the channel are abandoned
  // (processed < accepted). Stage 09 drains them before exiting.
  channel.close();
  for (std::thread& worker : workers) worker.join();
  std::uint64_t total = 0;
  for (const std::uint64_t n : processed) total += n;
  print_line("stats: " + channel.stats() + " processed=" + std::to_string(total));
  return EXIT_SUCCESS;
} catch (const StartupError& e) {
  std::cerr << "step04: error: " << e.what() << '\n';
  return 2;
} catch (const std::exception& e) {
  // Anything else main throws (out of memory, ...) gets the same one line, with status 1.
  std::cerr << "step04: error: " << e.what() << '\n';
  return EXIT_FAILURE;
}
