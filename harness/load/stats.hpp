// What a run saw: counters, latency histograms, the per-second time series and the expected
// balances. One LoadStats per I/O thread, written only by that thread; the main thread merges
// them after joining the threads (the join orders those reads after every write).
//
// Phases: a request belongs to the warmup if it was intended before measure_start, else to the
// measured phase. Only measured requests enter the counters, histograms and time series; the
// expected balances take every accepted request of both phases, since the server applies both.
// In the time series, sends and missed sends count in the second they were intended, replies and
// timeouts in the second they were seen.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hpp"
#include "load/protocol.hpp"
#include "load/schedule.hpp"

namespace anubis::harness::load {

struct Counters {
  std::uint64_t sent = 0;
  std::uint64_t accepted = 0;
  std::uint64_t dropped = 0;  // rejected with server_busy
  std::uint64_t rejected_shutting_down = 0;
  std::uint64_t errors = 0;  // status "error", or a reply that answers no event
  std::uint64_t timeouts = 0;
  std::uint64_t missed_sends = 0;

  void merge(const Counters& other) noexcept {
    sent += other.sent;
    accepted += other.accepted;
    dropped += other.dropped;
    rejected_shutting_down += other.rejected_shutting_down;
    errors += other.errors;
    timeouts += other.timeouts;
    missed_sends += other.missed_sends;
  }
};

// One second of the measured phase.
struct Second {
  Counters counters;
  Histogram latency;  // corrected

  void merge(const Second& other) noexcept {
    counters.merge(other.counters);
    latency.merge(other.latency);
  }
};

class LoadStats {
 public:
  static constexpr std::int64_t kSecondNs = 1'000'000'000;

  LoadStats(std::uint32_t users, std::int64_t measure_start_ns, bool open_loop)
      : expected_balance(users, 0),
        expected_events(users, 0),
        measure_start_ns_(measure_start_ns),
        open_loop_(open_loop) {}
  // Not copyable: second() keeps a pointer into the series, which a move carries over intact.
  LoadStats(const LoadStats&) = delete;
  LoadStats& operator=(const LoadStats&) = delete;
  LoadStats(LoadStats&&) = default;
  LoadStats& operator=(LoadStats&&) = default;

  // Grows the time series to `seconds` entries now, so that recording allocates nothing.
  void reserve_seconds(std::size_t seconds) {
    if (series.size() < seconds) series.resize(seconds);
  }

  bool measured(std::int64_t intended_ns) const noexcept {
    return intended_ns >= measure_start_ns_;
  }

  void on_sent(std::int64_t intended_ns, std::uint64_t count = 1) {
    if (!measured(intended_ns)) return;
    totals.sent += count;
    second(intended_ns).counters.sent += count;
  }

  // Sends [first, end) of `schedule` were missed; each counts in the second it was intended
  // for. The loop runs once per second (or warmup) the range spans, not once per send.
  void on_missed(const OpenLoopConfig& schedule, std::uint64_t first, std::uint64_t end) {
    while (first < end) {
      const std::int64_t at = schedule.at(first);
      const std::int64_t bucket_end =
          measured(at) ? measure_start_ns_ + ((at - measure_start_ns_) / kSecondNs + 1) * kSecondNs
                       : measure_start_ns_;
      const std::uint64_t last = std::min(end, schedule.intended_before(bucket_end));
      if (measured(at)) {
        totals.missed_sends += last - first;
        second(at).counters.missed_sends += last - first;
      }
      first = last;
    }
  }

  void on_timeout(const InFlight& request, std::int64_t now) {
    if (!measured(request.intended_ns)) return;
    ++totals.timeouts;
    ++second(now).counters.timeouts;
  }

  // A reply to `request`, seen at `now`. A reply that comes after its request timed out is timed
  // too: leaving it out would hide exactly the stalls the corrected latency exists to show.
  void on_reply(const InFlight& request, const Framed& reply, std::int64_t now) {
    if (reply.kind == ReplyKind::accepted) {
      expected_balance[request.user] += request.delta;
      ++expected_events[request.user];
    }
    if (reply.kind == ReplyKind::error && first_error_reply.empty()) {
      first_error_reply = reply.text;
    }
    if (!measured(request.intended_ns)) return;
    last_reply_ns = std::max(last_reply_ns, now);
    Second& at = second(now);
    count_reply(totals, reply.kind);
    count_reply(at.counters, reply.kind);
    const auto corrected = static_cast<std::uint64_t>(now - request.intended_ns);
    latency.record(corrected);
    if (open_loop_)
      latency_uncorrected.record(static_cast<std::uint64_t>(now - request.written_ns));
    at.latency.record(corrected);
  }

  // From the actual write. The closed loop writes each request when it is intended, so there
  // the two are the same histogram, recorded once.
  const Histogram& uncorrected() const noexcept {
    return open_loop_ ? latency_uncorrected : latency;
  }

  void merge(const LoadStats& other) {
    totals.merge(other.totals);
    unanswered += other.unanswered;
    failed_connections += other.failed_connections;
    for (std::size_t user = 0; user < expected_balance.size(); ++user) {
      expected_balance[user] += other.expected_balance[user];
      expected_events[user] += other.expected_events[user];
    }
    latency.merge(other.latency);
    latency_uncorrected.merge(other.latency_uncorrected);
    reserve_seconds(other.series.size());
    for (std::size_t i = 0; i < other.series.size(); ++i) series[i].merge(other.series[i]);
    last_reply_ns = std::max(last_reply_ns, other.last_reply_ns);
    if (first_error_reply.empty()) first_error_reply = other.first_error_reply;
    if (first_failure.empty()) first_failure = other.first_failure;
  }

  Counters totals;               // measured phase
  std::uint64_t unanswered = 0;  // in flight when a connection ended early (both phases)
  std::uint64_t failed_connections = 0;
  // By user index, over accepted events of both phases: what the server must hold afterwards.
  std::vector<std::int64_t> expected_balance;
  std::vector<std::uint64_t> expected_events;
  Histogram latency;              // from the intended send
  Histogram latency_uncorrected;  // from the write; open loop only (see uncorrected())
  // series[i] covers [measure_start + i s, measure_start + (i + 1) s). A deque, so growing it
  // never moves the 27 KiB histograms already recorded.
  std::deque<Second> series;
  std::int64_t last_reply_ns = std::numeric_limits<std::int64_t>::min();  // measured replies
  // The first of each kind of trouble, for the report (it usually names the problem): one line
  // each rather than one per connection when the server goes away under 50 connections.
  std::string first_error_reply;
  std::string first_failure;

 private:
  static void count_reply(Counters& counters, ReplyKind kind) noexcept {
    switch (kind) {
      case ReplyKind::accepted:
        ++counters.accepted;
        break;
      case ReplyKind::server_busy:
        ++counters.dropped;
        break;
      case ReplyKind::shutting_down:
        ++counters.rejected_shutting_down;
        break;
      case ReplyKind::error:
        ++counters.errors;
        break;
    }
  }

  // The entry of the second holding at_ns. Replies come in bursts of the same second, so the last
  // answer is kept: most calls cost one comparison.
  Second& second(std::int64_t at_ns) {
    if (cached_ != nullptr && at_ns >= cached_begin_ns_ && at_ns - cached_begin_ns_ < kSecondNs) {
      return *cached_;
    }
    const std::int64_t index = std::max<std::int64_t>(at_ns - measure_start_ns_, 0) / kSecondNs;
    reserve_seconds(static_cast<std::size_t>(index) + 1);
    cached_ = &series[static_cast<std::size_t>(index)];
    cached_begin_ns_ = measure_start_ns_ + index * kSecondNs;
    return *cached_;
  }

  std::int64_t measure_start_ns_;
  bool open_loop_;
  // second()'s last answer: a deque never moves its elements when it grows at either end.
  Second* cached_ = nullptr;
  std::int64_t cached_begin_ns_ = 0;
};

}  // namespace anubis::harness::load
