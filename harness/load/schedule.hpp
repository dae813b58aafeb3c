// A connection's requests in flight, and the open-loop schedule that decides when it sends.
//
// Time is passed in, never read here: every function takes `now` as nanoseconds since the run's
// epoch, so tests drive these classes with a scripted clock and the connection feeds them
// steady_clock readings.
//
// Open loop (wrk2's model, without its catch-up bursts): send k of a connection is *intended* at
// start + k * interval, whatever the server does. At each poll the schedule decides every send
// whose intended time has come, oldest first:
//   - sent, if a window slot is free and the poll is at most max_lateness after the intended
//     time; its latency is then counted from the intended time, so a late send shows as latency;
//   - missed otherwise: counted, never sent later. A window full of unanswered requests, or a
//     client that was itself stalled, therefore costs missed sends rather than a burst of
//     catch-up requests when it recovers (a burst would load the server in a way no real user
//     population does, and its latencies would hide the stall).
// A request unanswered timeout after its intended time is counted as timed out, once; it keeps
// its slot until its reply comes, since the server answers in order, and that late reply is
// still timed: a stall must show in the tail of the latency, not only as a count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace anubis::harness::load {

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

// What the client remembers about a request until its reply arrives.
struct InFlight {
  std::int64_t intended_ns = 0;  // when it was due (closed loop: when it was written)
  std::int64_t written_ns = 0;   // when the write carrying it started
  std::uint32_t user = 0;
  std::int32_t delta = 0;  // +amount for a buy, -amount for a sell
};

// The requests of one connection awaiting replies, oldest first: a fixed ring, so pushing and
// popping never allocate. Replies come in request order, so the oldest is the next answered.
class InFlightWindow {
 public:
  explicit InFlightWindow(std::size_t capacity) : ring_(capacity) {}

  std::size_t size() const noexcept { return size_; }
  std::size_t free() const noexcept { return ring_.size() - size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Precondition: free() > 0.
  void push(const InFlight& request) noexcept {
    ring_[(head_ + size_) % ring_.size()] = request;
    ++size_;
  }

  // The newest `count` requests were written at `written_ns` (they left in one write).
  void set_written(std::size_t count, std::int64_t written_ns) noexcept {
    for (std::size_t i = size_ - count; i < size_; ++i) {
      ring_[(head_ + i) % ring_.size()].written_ns = written_ns;
    }
  }

  // Precondition: !empty().
  InFlight pop() noexcept {
    const InFlight oldest = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --size_;
    if (timed_out_ > 0) --timed_out_;  // expire() had counted it already
    return oldest;
  }

  // Marks every request unanswered `timeout_ns` after its intended time as timed out and calls
  // on_timeout(request) once for each. Intended times grow along the ring, so the timed-out
  // requests are a prefix of it and this costs O(1) per request over the window's life.
  template <class OnTimeout>
  void expire(std::int64_t now, std::int64_t timeout_ns, OnTimeout&& on_timeout) {
    while (timed_out_ < size_) {
      const InFlight& request = ring_[(head_ + timed_out_) % ring_.size()];
      if (now - request.intended_ns < timeout_ns) break;
      ++timed_out_;
      on_timeout(request);
    }
  }

  // When the oldest request not yet timed out will time out; kNever if there is none.
  std::int64_t next_expiry(std::int64_t timeout_ns) const noexcept {
    if (timed_out_ == size_) return kNever;
    return ring_[(head_ + timed_out_) % ring_.size()].intended_ns + timeout_ns;
  }

 private:
  std::vector<InFlight> ring_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t timed_out_ = 0;  // the oldest timed_out_ requests have timed out
};

struct OpenLoopConfig {
  std::int64_t start_ns = 0;     // intended time of the first send
  double interval_ns = 0;        // between intended sends; > 0
  std::int64_t end_ns = kNever;  // no send is intended at or after this
  std::uint64_t quota = std::numeric_limits<std::uint64_t>::max();  // intended sends at most
  std::int64_t max_lateness_ns = 0;

  // The intended time of send k (from 0), ignoring end and quota. Computed from the start each
  // time, so rounding never accumulates into drift.
  std::int64_t at(std::uint64_t k) const noexcept {
    return start_ns + static_cast<std::int64_t>(std::llround(static_cast<double>(k) * interval_ns));
  }
  // How many sends are intended before `t_ns`, ignoring end and quota.
  std::uint64_t intended_before(std::int64_t t_ns) const noexcept {
    if (t_ns <= start_ns) return 0;
    auto k = static_cast<std::uint64_t>(static_cast<double>(t_ns - start_ns) / interval_ns);
    while (k > 0 && at(k - 1) >= t_ns) --k;
    while (at(k) < t_ns) ++k;
    return k;
  }
};

class OpenLoopSchedule {
 public:
  explicit OpenLoopSchedule(const OpenLoopConfig& config) noexcept : config_(config) {}

  const OpenLoopConfig& config() const noexcept { return config_; }

  // The intended time of the next undecided send; kNever once the schedule has ended.
  std::int64_t next_send() const noexcept {
    if (decided_ >= config_.quota) return kNever;
    const std::int64_t at = config_.at(decided_);
    return at < config_.end_ns ? at : kNever;
  }
  bool finished() const noexcept { return next_send() == kNever; }

  // Decides every send intended at or before `now`, given `free` window slots: calls
  // send(intended_ns) for each one to make now (at most `free`), and missed(first, end) for each
  // run of lost sends, numbered from 0 (their times are config().at(k)). The work is
  // O(free + 1) whatever the number of lost sends, so a client far behind a schedule it cannot
  // keep (a --rate far beyond what it or the server can do) still polls in constant time instead
  // of spending itself counting misses one by one.
  template <class Send, class Missed>
  void poll(std::int64_t now, std::size_t free, Send&& send, Missed&& missed) {
    const std::uint64_t due = due_by(now);
    if (decided_ >= due) return;
    // The too-late sends are the oldest ones: intended more than max_lateness before now.
    const std::uint64_t late =
        std::clamp(config_.intended_before(now - config_.max_lateness_ns), decided_, due);
    if (late > decided_) missed(decided_, late);
    const std::uint64_t sendable = std::min<std::uint64_t>(due, late + free);
    for (decided_ = late; decided_ < sendable; ++decided_) send(config_.at(decided_));
    if (due > decided_) missed(decided_, due);
    decided_ = due;
  }

 private:
  // How many sends are intended at or before `now`, within the end time and the quota.
  std::uint64_t due_by(std::int64_t now) const noexcept {
    const std::int64_t before = std::min(now == kNever ? kNever : now + 1, config_.end_ns);
    return std::min(config_.intended_before(before), config_.quota);
  }

  OpenLoopConfig config_;
  std::uint64_t decided_ = 0;  // sends made or missed so far
};

}  // namespace anubis::harness::load
