// Stage 08 — client replies: one per line, in order, coalesced, and bounded.
//
// Until now only the server's own output told what became of a line. Now each line gets one
// reply line on its connection: {"status":"accepted"}, {"status":"rejected","reason":
// "server_busy","retry_after_ms":N} when the channel is full (the client should retry later), or
// {"status":"error",...} with the reason. Three rules shape Connection's output:
//   ordered   — replies go out in request order: they are appended to one buffer, and only one
//               write is in flight at a time;
//   coalesced — replies made while a write is in flight wait in `pending_` and leave together in
//               the next write: one system call for many replies;
//   bounded   — a client that sends but never reads would make that buffer grow without limit.
//               Once --max-output-bytes are unsent, the connection stops reading (and so stops
//               making replies) until the client has read some; TCP then pushes back on it.
//
// Output (stdout, one line each, flushed so that a pipe sees it at once):
//   listening on 127.0.0.1:PORT                first, always: tests and lessons read the port
//   connection N opened                        a client connected (N counts from 1)
//   event: user=U action=buy|sell amount=A worker=W balance=B    worker W applied a valid
//                                              event; B is the user's balance right after it
//   rejected: channel full                     a valid event that did not fit in the channel
//   invalid: REASON                            a line that is not an event, and why
//   connection N paused                        its unsent replies reached --max-output-bytes
//   connection N resumed                       the client read enough of them
//   connection N closed: replies=R writes=W    the client hung up (or the connection failed);
//                                              R replies left in W writes
//   stats: accepted=A rejected=R max_depth=D capacity=C processed=P    at exit; A, R and D
//                                              count the channel the connections push into
//   latency: events=N mean_us=M max_us=X       at exit: from reading an event to a worker taking it
//   balances: users=U events=E total=T         at exit: accounts, the events they counted, and
//                                              the sum of every balance
//   lock: kind=K writes=N write_waits=W write_wait_ms=X reads=R read_waits=V read_wait_ms=Y
//                                              at exit: how often the lock was taken, found taken,
//                                              and the time spent waiting for it
//   metrics: received=N accepted=A rejected=R invalid=I processed=P
//                                              every --report-ms while running, and once at exit
//
// Break it on purpose: --break unbounded-output never stops reading (see LESSON.md); --break
// unbounded, spin, blocking-push, no-lock and plain-counter are stages 03 to 07's.
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
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
using Clock = std::chrono::steady_clock;

struct Event {
  std::string user;
  Action action = Action::buy;
  std::int64_t amount = 0;
  Clock::time_point read_at;  // when the connection parsed it: the start of the measured hop
};

struct Options {
  std::uint16_t port = 0;  // 0: the kernel picks a free port
  std::size_t capacity = 1024;
  std::chrono::microseconds consumer_delay{0};
  std::size_t workers = 2;
  std::string_view mode = "bridge";   // --mode bridge|direct
  bool quiet = false;                 // --quiet: no `event:` lines, for measuring
  std::string_view lock = "mutex";    // --lock mutex|shared
  std::size_t users = 0;              // --users N: accounts user1..userN created before serving
  std::size_t readers = 0;            // --readers N: threads reading every balance in a loop
  std::chrono::microseconds hold{0};  // --hold-us: work done while holding the lock, per event
  std::chrono::milliseconds report{1000};    // --report-ms: period of the `metrics:` line; 0: none
  std::size_t max_output_bytes = 64 * 1024;  // --max-output-bytes: unsent replies per connection
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
// stall with it. push() and pop() do wait, for room and for an event: they are for threads that
// may block (the bridge, the workers).
class Channel {
 public:
  Channel(std::size_t capacity, bool unbounded, bool spin, bool wait_when_full)
      : capacity_(capacity), unbounded_(unbounded), spin_(spin), wait_when_full_(wait_when_full) {}

  bool try_push(Event event) {
    // The broken variant waits for room even when called from the io_context's thread.
    if (wait_when_full_) return push(std::move(event));
    {
      std::lock_guard lock(mutex_);
      // The broken variant skips this check: under a flood the deque grows without limit.
      if (!unbounded_ && events_.size() >= capacity_) {
        ++rejected_;
        return false;
      }
      add(std::move(event));
    }
    // Outside the lock, so the woken worker does not at once block on the mutex we still hold.
    not_empty_.notify_one();
    return true;
  }

  // Waits for room; false if the channel is closed first.
  bool push(Event event) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [this] { return unbounded_ || events_.size() < capacity_ || closed_; });
      if (closed_) return false;
      add(std::move(event));
    }
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
    lock.unlock();
    not_full_.notify_one();  // a push() may be waiting for this room
    return event;
  }

  // Wakes every waiting thread; from now on push() returns false and pop() nullopt.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  std::string stats() const {
    std::lock_guard lock(mutex_);
    return "accepted=" + std::to_string(accepted_) + " rejected=" + std::to_string(rejected_) +
           " max_depth=" + std::to_string(max_depth_) + " capacity=" + std::to_string(capacity_);
  }

 private:
  // A deque grows and shrinks in blocks as events come and go. The final server preallocates a
  // ring of `capacity` events once and never allocates again (strategies/queue/mutex_queue.hpp).
  // Adds an event and counts it. Called with mutex_ held.
  void add(Event event) {
    events_.push_back(std::move(event));
    ++accepted_;
    max_depth_ = std::max(max_depth_, events_.size());
  }

  mutable std::mutex mutex_;
  std::condition_variable not_empty_;  // notified on each push and on close
  std::condition_variable not_full_;   // notified on each pop and on close
  std::deque<Event> events_;           // guarded by mutex_
  const std::size_t capacity_;
  const bool unbounded_;
  const bool spin_;
  const bool wait_when_full_;
  bool closed_ = false;         // guarded by mutex_
  std::uint64_t accepted_ = 0;  // guarded by mutex_
  std::uint64_t rejected_ = 0;  // guarded by mutex_
  std::size_t max_depth_ = 0;   // the most events the channel ever held at once; guarded by mutex_
};

// One counter shared by threads, on a cache line of its own (see Metrics). std::atomic makes
// `+= n` one indivisible step (fetch_add): two threads adding at once both count. --break
// plain-counter uses a plain integer instead, where `+= n` is three steps — read, add, write —
// and two threads that read the same value both write value + 1: one count is lost. That is a
// data race, undefined behaviour in C++, and ThreadSanitizer reports it.
class alignas(64) Counter {
 public:
  explicit Counter(bool plain) : plain_(plain) {}

  void add(std::uint64_t n, std::memory_order order = std::memory_order_relaxed) {
    if (plain_) {
      plain_value_ += n;
    } else {
      value_.fetch_add(n, order);
    }
  }

  std::uint64_t load(std::memory_order order = std::memory_order_relaxed) const {
    return plain_ ? plain_value_ : value_.load(order);
  }

 private:
  const bool plain_;
  std::atomic<std::uint64_t> value_{0};
  std::uint64_t plain_value_ = 0;  // --break plain-counter only: unsynchronised
};

// The server's counters, updated by the connection handlers and the workers without a lock and
// read by the reporter while they run.
//
// Memory ordering: received, accepted, rejected and invalid are statistics. Nobody reads one of
// them to decide whether some other data is ready, so relaxed ordering is enough: each counter
// on its own is exact (no increment is lost), but a reader may see a new `accepted` next to an
// older `received`. `processed` is a promise as well: "the first P events are applied to the
// balances". A worker adds to it with release ordering after applying the event, and a reader
// loads it with acquire; whoever sees P then also sees everything the worker wrote before
// adding, such as the balances. (Here the balances' lock publishes them too; the final server
// keeps the same pair, src/metrics.hpp.)
//
// Each counter has its own cache line (alignas(64) on Counter): the io_context's thread and the
// workers write different counters at the same time, and two counters sharing a line would
// bounce it between cores on every increment ("false sharing"). The final server pads them the
// same way with anubis::kCacheLine (src/padded.hpp).
struct Metrics {
  explicit Metrics(bool plain)
      : received(plain), accepted(plain), rejected(plain), invalid(plain), processed(plain) {}

  std::string line() const {
    // processed first, with acquire: see above.
    const std::uint64_t done = processed.load(std::memory_order_acquire);
    return "metrics: received=" + std::to_string(received.load()) +
           " accepted=" + std::to_string(accepted.load()) +
           " rejected=" + std::to_string(rejected.load()) +
           " invalid=" + std::to_string(invalid.load()) + " processed=" + std::to_string(done);
  }

  Counter received;   // lines read (valid or not)
  Counter accepted;   // events the channel took
  Counter rejected;   // events refused because the channel was full
  Counter invalid;    // lines that are not events
  Counter processed;  // events applied to the balances (release/acquire: see above)
};

// How one thread fared with the balance lock: how often it took the lock, how often it found it
// taken and had to wait, and how long it waited in all. Each thread fills its own LockStats, so
// counting needs no synchronisation; main adds them up after join().
struct LockStats {
  std::uint64_t taken = 0;
  std::uint64_t waits = 0;
  Clock::duration waited{0};
};

// Locks `lock` (a std::unique_lock or std::shared_lock made with std::defer_lock) and counts in
// `stats` whether that meant waiting. try_lock() fails when another thread holds the lock; the
// time until lock() returns is then time lost to contention.
template <class Lock>
void lock_counted(Lock& lock, LockStats& stats) {
  ++stats.taken;
  if (lock.try_lock()) return;
  ++stats.waits;
  const Clock::time_point start = Clock::now();
  lock.lock();
  stats.waited += Clock::now() - start;
}

struct Account {
  std::int64_t balance = 0;
  std::uint64_t events = 0;  // events applied to this account
};

struct Totals {
  std::size_t users = 0;
  std::uint64_t events = 0;
  std::int64_t balance = 0;
};

// The per-user balances, shared by every worker (writers) and reader thread. An interface, so
// that main picks the lock once (--lock) and the threads do not care which; the final server does
// the same with one virtual call per batch of events rather than per event (AnyStore,
// strategies/lock/balance_store.hpp).
class Balances {
 public:
  virtual ~Balances() = default;
  // Adds the event to its user's account, creating the account if the user is new, and returns
  // the balance right after.
  virtual std::int64_t apply(const Event& event, LockStats& stats) = 0;
  // Reads every account, as a report or an audit would: the lock is held for the whole map.
  virtual Totals totals(LockStats& stats) const = 0;
};

// --break no-lock: a "mutex" that does nothing. It has the members of std::shared_mutex, so
// LockedBalances compiles unchanged with it; only the protection is gone.
struct NoLock {
  void lock() {}
  bool try_lock() { return true; }
  void unlock() {}
  void lock_shared() {}
  bool try_lock_shared() { return true; }
  void unlock_shared() {}
};

// One unordered_map guarded by one Mutex: std::mutex, std::shared_mutex or NoLock. The final
// server splits the users over many maps, each with its own mutex, so that updates of different
// users rarely meet (--lock sharded, strategies/lock/sharded_lock_state.hpp).
template <class Mutex>
class LockedBalances final : public Balances {
 public:
  // Readers share a mutex that can be shared; a std::mutex they take alone, like writers.
  using ReadLock = std::conditional_t<std::is_same_v<Mutex, std::mutex>, std::unique_lock<Mutex>,
                                      std::shared_lock<Mutex>>;

  LockedBalances(std::size_t users, std::chrono::microseconds hold) : hold_(hold) {
    for (std::size_t i = 1; i <= users; ++i) accounts_["user" + std::to_string(i)];
  }

  std::int64_t apply(const Event& event, LockStats& stats) override {
    std::unique_lock lock(mutex_, std::defer_lock);  // writers: one at a time
    lock_counted(lock, stats);
    // operator[] inserts an account for a new user: that changes the map itself (it may
    // rehash), which is why even finding an account needs the lock while others may insert.
    Account& account = accounts_[event.user];
    // `balance += amount` is three steps: read the balance, add, write it back. The lock makes
    // the three one step for every other thread. --hold-us sleeps between the read and the
    // write, as real work would take time (checking limits, writing a log); it widens the gap
    // in which, without the lock, another thread's update is overwritten and lost.
    const std::int64_t before = account.balance;
    if (hold_.count() > 0) std::this_thread::sleep_for(hold_);
    account.balance = before + (event.action == Action::buy ? event.amount : -event.amount);
    ++account.events;
    return account.balance;
  }

  Totals totals(LockStats& stats) const override {
    ReadLock lock(mutex_, std::defer_lock);
    lock_counted(lock, stats);
    Totals totals;
    totals.users = accounts_.size();
    for (const auto& [user, account] : accounts_) {
      totals.events += account.events;
      totals.balance += account.balance;
    }
    return totals;
  }

 private:
  mutable Mutex mutex_;
  std::unordered_map<std::string, Account> accounts_;  // guarded by mutex_
  const std::chrono::microseconds hold_;
};

// What one worker counted: events, how long they took from being read to reaching it, and how
// it fared with the balance lock.
struct WorkerStats {
  std::uint64_t processed = 0;
  Clock::duration total_wait{0};
  Clock::duration max_wait{0};
  LockStats lock;
};

// One worker thread: takes events until the channel is closed, and returns what it counted.
// Unlike stage 03's consumer it may block — in pop() while there is nothing to do, in the delay
// while "working" — because the connections run on another thread meanwhile. Each worker counts
// in local variables, so the counts are shared with no one until the thread has ended (stage 07
// shares live counters between threads, with atomics).
WorkerStats run_worker(Channel& channel, Balances& balances, Metrics& metrics, std::size_t id,
                       std::chrono::microseconds delay, bool quiet) {
  WorkerStats stats;
  while (const std::optional<Event> event = channel.pop()) {
    const Clock::duration waited = Clock::now() - event->read_at;
    stats.total_wait += waited;
    stats.max_wait = std::max(stats.max_wait, waited);
    // Stands for slow work; the final server burns CPU instead (--work-us, src/worker.cpp).
    std::this_thread::sleep_for(delay);
    const std::int64_t balance = balances.apply(*event, stats.lock);
    if (!quiet) {
      print_line("event: " + describe(*event) + " worker=" + std::to_string(id) +
                 " balance=" + std::to_string(balance));
    }
    ++stats.processed;
    // After the update: `processed` promises it is visible (release; see Metrics).
    metrics.processed.add(1, std::memory_order_release);
  }
  return stats;
}

// Prints the metrics every `period` on the io_context's thread, while the workers go on
// updating them: reading them needs no lock and stops no one.
class Reporter {
 public:
  Reporter(asio::io_context& io, const Metrics& metrics, std::chrono::milliseconds period)
      : timer_(io), metrics_(metrics), period_(period) {}

  void start() {
    if (period_.count() == 0) return;
    timer_.expires_after(period_);
    timer_.async_wait([this](error_code ec) {
      if (ec) return;
      print_line(metrics_.line());
      start();
    });
  }

 private:
  asio::steady_timer timer_;
  const Metrics& metrics_;
  const std::chrono::milliseconds period_;
};

// A reader thread: totals every balance again and again until asked to stop, as a report or a
// stream of balance queries would (the final server's readers are balance queries answered by
// the I/O threads). With --lock mutex readers exclude each other and the writers; with --lock
// shared they read together, and only writers wait for them (and they for writers). The short
// pause between two reads keeps the readers from taking the lock back-to-back forever.
LockStats run_reader(const Balances& balances, const std::stop_token& stop) {
  constexpr std::chrono::microseconds kPause{100};
  LockStats stats;
  while (!stop.stop_requested()) {
    balances.totals(stats);
    std::this_thread::sleep_for(kPause);
  }
  return stats;
}

// The bridge thread: moves events from the inbox (filled by the io_context's thread) to the
// workers' channel. When the workers fall behind, push() waits for room; meanwhile the inbox
// fills, and once it is full the connections' try_push refuses — so backpressure still reaches
// the clients, one channel later. The final server has no bridge: its I/O threads push straight
// into the bounded queue (`--concurrency direct`, strategies/pipeline/direct_pipeline.hpp).
void run_bridge(Channel& inbox, Channel& work) {
  while (std::optional<Event> event = inbox.pop()) {
    if (!work.push(std::move(*event))) return;  // closed: the program is stopping
  }
}

// How a connection's output is limited (Options::max_output_bytes, --break unbounded-output).
struct OutputLimit {
  std::size_t max_bytes = 64 * 1024;
  bool unbounded = false;  // --break unbounded-output: never stop reading
};

// The hint sent with server_busy. A constant keeps the stage short; the final server estimates
// how long the workers need to empty half the queue at their current rate (retry_after_ms in
// src/net.cpp).
constexpr int kRetryAfterMs = 100;

// One client. Owned by its pending operations: each callback holds a shared_ptr to the
// connection, so the object lives as long as Asio has a read or a write for it, and closes its
// socket when the last callback lets go of it. Every callback runs on the io_context's one
// thread, so the fields need no lock.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::uint64_t id, Channel& channel, Metrics& metrics,
             OutputLimit limit)
      : socket_(std::move(socket)), id_(id), channel_(channel), metrics_(metrics), limit_(limit) {}

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
      // dropped here; the final server processes it as if it ended with '\n'. Replies not yet
      // written still go out: the write in flight holds the connection alive.
      input_closed_ = true;
      if (!writing_) print_closed();
      return;
    }
    handle_line(take_line(n));
    // buffer_ may hold more lines (a read takes what the kernel has). Handle them now too, so
    // that their replies leave together in one write (coalesced) rather than one write each.
    for (std::size_t next = 0; !output_full() && (next = complete_line()) > 0;) {
      handle_line(take_line(next));
    }
    start_write();
    if (output_full()) {
      // Stop reading: no read_line() until on_write has sent enough. The client's bytes wait in
      // the kernel meanwhile, and once its buffers are full the client cannot send either.
      paused_ = true;
      print_line("connection " + std::to_string(id_) + " paused");
      return;
    }
    read_line();
  }

  // The length of the first complete line in buffer_, its '\n' included; 0 if there is none.
  std::size_t complete_line() const {
    const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    const std::size_t newline = data.find('\n');
    return newline == std::string_view::npos ? 0 : newline + 1;
  }

  // Removes the first n bytes of buffer_, which end with '\n', and returns them as a line.
  std::string take_line(std::size_t n) {
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n) - 1);
    buffer_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF clients (telnet)
    return line;
  }

  void handle_line(const std::string& line) {
    metrics_.received.add(1);
    ++replies_;
    std::string error;
    if (std::optional<Event> event = parse_event(line, error)) {
      event->read_at = Clock::now();
      if (channel_.try_push(std::move(*event))) {
        metrics_.accepted.add(1);
        pending_ += R"({"status":"accepted"})"
                    "\n";
      } else {
        metrics_.rejected.add(1);
        print_line("rejected: channel full");
        pending_ += R"({"status":"rejected","reason":"server_busy","retry_after_ms":)" +
                    std::to_string(kRetryAfterMs) + "}\n";
      }
    } else {
      metrics_.invalid.add(1);
      print_line("invalid: " + error);
      // serialize() quotes and escapes the text: a reason may contain quotes or backslashes.
      // The final server also tells invalid_json from invalid_event (docs/PROTOCOL.md).
      pending_ += R"({"status":"error","reason":"invalid_event","detail":)" +
                  json::serialize(json::string(error)) + "}\n";
    }
  }

  std::size_t unsent_bytes() const { return pending_.size() + in_flight_.size(); }
  bool output_full() const { return !limit_.unbounded && unsent_bytes() >= limit_.max_bytes; }

  // At most one write in flight, so replies leave in order. Replies made meanwhile collect in
  // pending_ and leave together in the next write.
  void start_write() {
    if (writing_ || pending_.empty()) return;
    in_flight_.swap(pending_);  // in_flight_ was empty; both strings keep their capacity
    writing_ = true;
    ++writes_;
    asio::async_write(
        socket_, asio::buffer(in_flight_),
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    writing_ = false;
    in_flight_.clear();
    if (ec) {
      // The client is gone: stop reading and writing; the last shared_ptr closes the socket.
      pending_.clear();
      if (paused_ || input_closed_) print_closed();
      return;
    }
    start_write();
    if (paused_ && !output_full()) {
      paused_ = false;
      print_line("connection " + std::to_string(id_) + " resumed");
      read_line();
    }
    if (input_closed_ && !writing_) print_closed();
  }

  void print_closed() {
    print_line("connection " + std::to_string(id_) + " closed: replies=" +
               std::to_string(replies_) + " writes=" + std::to_string(writes_));
  }

  tcp::socket socket_;
  asio::streambuf buffer_{kMaxLineBytes};
  std::uint64_t id_;
  Channel& channel_;  // the inbox, or the workers' channel in direct mode; owned by main and
                      // used only by handlers, which never run after io.run()
  Metrics& metrics_;  // owned by main, like the channel
  const OutputLimit limit_;

  std::string pending_;    // replies not yet handed to a write
  std::string in_flight_;  // the bytes of the write in flight; empty when none is
  bool writing_ = false;
  bool paused_ = false;        // not reading because the output is full
  bool input_closed_ = false;  // the client closed its side (or the read failed)
  std::uint64_t replies_ = 0;
  std::uint64_t writes_ = 0;
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
  Listener(asio::io_context& io, std::uint16_t port, Channel& channel, Metrics& metrics,
           OutputLimit limit)
      : acceptor_(open_acceptor(io, port)), channel_(channel), metrics_(metrics), limit_(limit) {}

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (!ec) {
        std::make_shared<Connection>(std::move(socket), ++connections_, channel_, metrics_, limit_)
            ->start();
      }
      accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
  std::uint64_t connections_ = 0;
  Channel& channel_;
  Metrics& metrics_;
  const OutputLimit limit_;
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
    } else if (arg == "--mode" && has_value) {
      options.mode = argv[++i];
      if (options.mode != "bridge" && options.mode != "direct") return false;
    } else if (arg == "--quiet") {
      options.quiet = true;
    } else if (arg == "--lock" && has_value) {
      options.lock = argv[++i];
      if (options.lock != "mutex" && options.lock != "shared") return false;
    } else if (arg == "--users" && has_value && parse_number(argv[++i], 1'000'000, value)) {
      options.users = value;
    } else if (arg == "--readers" && has_value && parse_number(argv[++i], 256, value)) {
      options.readers = value;
    } else if (arg == "--hold-us" && has_value && parse_number(argv[++i], 10'000'000, value)) {
      options.hold = std::chrono::microseconds(value);
    } else if (arg == "--report-ms" && has_value && parse_number(argv[++i], 3'600'000, value)) {
      options.report = std::chrono::milliseconds(value);
    } else if (arg == "--max-output-bytes" && has_value &&
               parse_number(argv[++i], std::uint64_t{1} << 30, value) && value > 0) {
      options.max_output_bytes = value;
    } else if (arg == "--break" && has_value) {
      options.broken = argv[++i];
      if (options.broken != "unbounded" && options.broken != "spin" &&
          options.broken != "blocking-push" && options.broken != "no-lock" &&
          options.broken != "plain-counter" && options.broken != "unbounded-output") {
        return false;
      }
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
    std::cerr << "usage: step08 [--port N] [--capacity N] [--consumer-delay-us N]"
                 " [--workers N] [--mode bridge|direct] [--quiet] [--lock mutex|shared]"
                 " [--users N] [--readers N] [--hold-us N] [--report-ms N]"
                 " [--max-output-bytes N]"
                 " [--break unbounded|spin|blocking-push|no-lock|plain-counter|unbounded-output]\n";
    return 2;
  }
  asio::io_context io;
  const auto make_channel = [&options] {
    return std::make_unique<Channel>(options.capacity, options.broken == "unbounded",
                                     options.broken == "spin", options.broken == "blocking-push");
  };
  const std::unique_ptr<Channel> work = make_channel();   // the workers pop from it
  const std::unique_ptr<Channel> inbox = make_channel();  // used in bridge mode only
  const bool bridged = options.mode == "bridge";
  Channel& entry = bridged ? *inbox : *work;  // where the connections push
  // Shared by reference, like the balances below: main owns it and outlives every thread.
  Metrics metrics(options.broken == "plain-counter");
  Listener listener(io, options.port, entry, metrics,
                    {options.max_output_bytes, options.broken == "unbounded-output"});
  listener.accept();

  // The balances are shared by reference. Lifetime: main owns them, and every thread that uses
  // them (workers, readers) is joined below, before main returns and destroys them. (When no
  // single owner outlives every user, a std::shared_ptr held by each user is the tool instead.)
  std::unique_ptr<Balances> balances;
  if (options.broken == "no-lock") {
    balances = std::make_unique<LockedBalances<NoLock>>(options.users, options.hold);
  } else if (options.lock == "shared") {
    balances = std::make_unique<LockedBalances<std::shared_mutex>>(options.users, options.hold);
  } else {
    balances = std::make_unique<LockedBalances<std::mutex>>(options.users, options.hold);
  }

  // stats[i] is written only by worker i, and read only after join(): join() makes everything
  // the thread wrote visible to the joining thread, so no lock is needed.
  std::vector<WorkerStats> stats(options.workers);
  std::vector<std::thread> workers;
  for (std::size_t i = 0; i < options.workers; ++i) {
    workers.emplace_back([&, i] {
      stats[i] =
          run_worker(*work, *balances, metrics, i + 1, options.consumer_delay, options.quiet);
    });
  }
  // std::jthread asks its thread to stop (through the stop_token) and joins it when destroyed;
  // here readers.clear() below does that.
  std::vector<LockStats> read_stats(options.readers);
  std::vector<std::jthread> readers;
  for (std::size_t i = 0; i < options.readers; ++i) {
    readers.emplace_back(
        [&, i](const std::stop_token& stop) { read_stats[i] = run_reader(*balances, stop); });
  }
  std::thread bridge;
  if (bridged) bridge = std::thread([&] { run_bridge(*inbox, *work); });

  // Ctrl-C (SIGINT) or SIGTERM stops the io_context, so run() returns and main exits normally.
  // stop() abandons whatever was in flight; stage 09 replaces it with a graceful drain.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](error_code, int) { io.stop(); });
  Reporter reporter(io, metrics, options.report);
  reporter.start();

  print_line("listening on 127.0.0.1:" + std::to_string(listener.port()));
  io.run();  // the one thread that runs every handler above; the workers run beside it
  // Workers finish the event in hand and stop; events still in the channel are abandoned
  // (processed < accepted). Stage 09 drains them before exiting.
  inbox->close();
  work->close();
  if (bridge.joinable()) bridge.join();
  for (std::thread& worker : workers) worker.join();
  readers.clear();  // request_stop() and join() each reader
  WorkerStats total;
  for (const WorkerStats& one : stats) {
    total.processed += one.processed;
    total.total_wait += one.total_wait;
    total.max_wait = std::max(total.max_wait, one.max_wait);
  }
  print_line("stats: " + entry.stats() + " processed=" + std::to_string(total.processed));
  const auto us = [](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count();
  };
  const double mean =
      total.processed == 0 ? 0 : us(total.total_wait) / static_cast<double>(total.processed);
  print_line("latency: events=" + std::to_string(total.processed) +
             " mean_us=" + std::to_string(std::lround(mean)) +
             " max_us=" + std::to_string(std::lround(us(total.max_wait))));
  // Every thread is joined: main alone touches the balances now.
  LockStats unused;
  const Totals totals = balances->totals(unused);
  print_line("balances: users=" + std::to_string(totals.users) + " events=" +
             std::to_string(totals.events) + " total=" + std::to_string(totals.balance));
  LockStats reads;
  for (const LockStats& one : read_stats) {
    reads.taken += one.taken;
    reads.waits += one.waits;
    reads.waited += one.waited;
  }
  for (const WorkerStats& one : stats) {
    total.lock.taken += one.lock.taken;
    total.lock.waits += one.lock.waits;
    total.lock.waited += one.lock.waited;
  }
  const auto ms = [](Clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  const std::string kind = options.broken == "no-lock" ? "none" : std::string(options.lock);
  print_line("lock: kind=" + kind + " writes=" + std::to_string(total.lock.taken) +
             " write_waits=" + std::to_string(total.lock.waits) +
             " write_wait_ms=" + ms(total.lock.waited) + " reads=" + std::to_string(reads.taken) +
             " read_waits=" + std::to_string(reads.waits) + " read_wait_ms=" + ms(reads.waited));
  // Exact: every thread that counted has been joined. With --break plain-counter, `processed`
  // here falls short of the `stats:` line's, which each worker counted on its own.
  print_line(metrics.line());
  return EXIT_SUCCESS;
} catch (const StartupError& e) {
  std::cerr << "step08: error: " << e.what() << '\n';
  return 2;
} catch (const std::exception& e) {
  // Anything else main throws (out of memory, ...) gets the same one line, with status 1.
  std::cerr << "step08: error: " << e.what() << '\n';
  return EXIT_FAILURE;
}
