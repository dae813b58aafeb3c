// Server-wide counters, updated lock-free from the I/O threads and the workers.
//
// Memory ordering: every counter is a statistic except `processed`, so they use relaxed
// increments: no thread reads one counter to decide whether another thread's data is ready.
// `processed` is the exception: a worker adds to it with release ordering *after* the batch's
// updates are visible in the state (the state's own lock publishes them too), and readers load it
// with acquire, so "processed >= N" observed by a client implies its first N updates can be seen
// by a balance query. A snapshot reads each counter separately, so while lines are in flight the
// sums need not match; at rest (and in the `final` line) received == accepted + dropped +
// rejected_shutting_down + invalid holds exactly.
#pragma once

#include <atomic>
#include <cstdint>

#include "padded.hpp"

namespace anubis {

struct MetricsSnapshot {
  std::uint64_t received = 0;
  std::uint64_t accepted = 0;
  std::uint64_t dropped = 0;
  std::uint64_t invalid = 0;
  std::uint64_t rejected_shutting_down = 0;
  std::uint64_t processed = 0;
  std::uint64_t overflowed = 0;
  std::uint64_t queue_depth = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t connections_total = 0;
};

class Metrics {
 public:
  // Written by I/O threads, once per batch of lines rather than once per line.
  void add_received(std::uint64_t n) noexcept { add(received_, n); }
  void add_accepted(std::uint64_t n) noexcept { add(accepted_, n); }
  void add_dropped(std::uint64_t n) noexcept { add(dropped_, n); }
  void add_invalid(std::uint64_t n) noexcept { add(invalid_, n); }
  void add_rejected_shutting_down(std::uint64_t n) noexcept { add(rejected_shutting_down_, n); }
  void connection_opened() noexcept {
    add(connections_open_, 1);
    add(connections_total_, 1);
  }
  void connection_closed() noexcept {
    connections_open_.value.fetch_sub(1, std::memory_order_relaxed);
  }

  // Written by workers. Release: see the header comment.
  void add_processed(std::uint64_t n) noexcept {
    processed_.value.fetch_add(n, std::memory_order_release);
  }
  void add_overflowed(std::uint64_t n) noexcept { add(overflowed_, n); }

  std::uint64_t processed() const noexcept {
    return processed_.value.load(std::memory_order_acquire);
  }
  std::uint64_t accepted() const noexcept { return load(accepted_); }
  std::uint64_t connections_open() const noexcept { return load(connections_open_); }

  // queue_depth is not a counter kept here: the caller asks the queue.
  MetricsSnapshot snapshot(std::uint64_t queue_depth) const noexcept;

 private:
  using Counter = Padded<std::atomic<std::uint64_t>>;
  static void add(Counter& c, std::uint64_t n) noexcept {
    c.value.fetch_add(n, std::memory_order_relaxed);
  }
  static std::uint64_t load(const Counter& c) noexcept {
    return c.value.load(std::memory_order_relaxed);
  }

  // Each counter has its own cache line: I/O threads and workers write different counters
  // concurrently, and false sharing would turn every increment into a cache-line transfer.
  Counter received_;
  Counter accepted_;
  Counter dropped_;
  Counter invalid_;
  Counter rejected_shutting_down_;
  Counter processed_;
  Counter overflowed_;
  Counter connections_open_;
  Counter connections_total_;
};

inline MetricsSnapshot Metrics::snapshot(std::uint64_t queue_depth) const noexcept {
  MetricsSnapshot s;
  // processed first (acquire): everything counted before it was published is then visible.
  s.processed = processed();
  s.received = load(received_);
  s.accepted = load(accepted_);
  s.dropped = load(dropped_);
  s.invalid = load(invalid_);
  s.rejected_shutting_down = load(rejected_shutting_down_);
  s.overflowed = load(overflowed_);
  s.queue_depth = queue_depth;
  s.connections_open = load(connections_open_);
  s.connections_total = load(connections_total_);
  return s;
}

}  // namespace anubis
