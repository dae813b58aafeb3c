// lockfree: Boost.Lockfree's MPMC queue with a fixed pool of nodes, plus a futex-style sleep for
// idle consumers.
//
// Guarantees: bounded, lock-free push and pop (no thread ever waits for another to finish a
// push or pop), any number of producers and consumers, no allocation after construction.
// Limits: Boost.Lockfree addresses nodes with 16-bit tagged indices, so a fixed-size queue has at
// most 65,535 nodes, one of which is a dummy: capacity <= 65,534 events (the registry refuses
// more). Elements must be trivially copyable, which Event is.
// Costs: each event is its own node (a CAS per push and per pop, no batching inside the queue);
// FIFO holds per producer. Consumers that find the queue empty spin briefly, then sleep on an
// atomic wait, so an idle server burns no CPU.
// Loses to the mutex ring when batches are large (one lock per batch beats a CAS per event) and
// wins when many producers push small batches concurrently.
//
// Memory ordering: Boost.Lockfree publishes each element itself (release on push, acquire on pop).
// The sleep protocol is the classic "store then load on both sides" (Dekker) pattern: a producer
// bumps `epoch_` then reads `sleepers_`; a consumer bumps `sleepers_` then re-reads `epoch_`. With
// both pairs seq_cst, at least one side sees the other, so a wake-up is never lost. `closed_` is
// release/acquire: a consumer that sees it also sees every push made before close().
#pragma once

#include <atomic>
#include <boost/lockfree/queue.hpp>
#include <cstdint>

#include "event_queue.hpp"
#include "padded.hpp"

namespace anubis {

class LockfreeQueue {
 public:
  static constexpr std::string_view kName = "lockfree";
  static constexpr std::size_t kMaxCapacity = 65'534;

  // Precondition: 1 <= capacity <= kMaxCapacity (checked at start-up against the registry).
  // Boost.Lockfree allocates the dummy node on top of `capacity`, so exactly `capacity` fit.
  explicit LockfreeQueue(std::size_t capacity) : queue_(capacity) {}

  std::size_t try_push(std::span<const Event> events) {
    std::size_t n = 0;
    while (n < events.size() && queue_.bounded_push(events[n])) ++n;
    if (n == 0) return 0;
    pushed_.value.fetch_add(n, std::memory_order_relaxed);
    epoch_.value.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.value.load(std::memory_order_seq_cst) > 0) epoch_.value.notify_all();
    return n;
  }

  std::size_t pop_batch(std::span<Event> out) {
    for (;;) {
      for (int spin = 0; spin < kSpins; ++spin) {
        if (const std::size_t n = drain(out)) return n;
      }
      const std::uint32_t seen = epoch_.value.load(std::memory_order_seq_cst);
      if (const std::size_t n = drain(out)) return n;
      if (closed_.load(std::memory_order_acquire)) return drain(out);
      sleepers_.value.fetch_add(1, std::memory_order_seq_cst);
      if (epoch_.value.load(std::memory_order_seq_cst) == seen &&
          !closed_.load(std::memory_order_acquire)) {
        epoch_.value.wait(seen, std::memory_order_seq_cst);
      }
      sleepers_.value.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void close() {
    closed_.store(true, std::memory_order_release);
    epoch_.value.fetch_add(1, std::memory_order_seq_cst);
    epoch_.value.notify_all();
  }

  std::size_t size_approx() const {
    const auto popped = popped_.value.load(std::memory_order_relaxed);
    const auto pushed = pushed_.value.load(std::memory_order_relaxed);
    return pushed > popped ? static_cast<std::size_t>(pushed - popped) : 0;
  }

 private:
  // Empty pops before sleeping: long enough to catch the next batch of a busy producer, short
  // enough not to steal the core from it on a small machine.
  static constexpr int kSpins = 64;

  std::size_t drain(std::span<Event> out) {
    std::size_t n = 0;
    while (n < out.size() && queue_.pop(out[n])) ++n;
    if (n > 0) popped_.value.fetch_add(n, std::memory_order_relaxed);
    return n;
  }

  boost::lockfree::queue<Event, boost::lockfree::fixed_sized<true>> queue_;
  Padded<std::atomic<std::uint64_t>> pushed_;    // statistics for size_approx only
  Padded<std::atomic<std::uint64_t>> popped_;    // statistics for size_approx only
  Padded<std::atomic<std::uint32_t>> epoch_;     // bumped after every successful push and at close
  Padded<std::atomic<std::uint32_t>> sleepers_;  // consumers inside epoch_.wait
  std::atomic<bool> closed_{false};
};

static_assert(event_queue<LockfreeQueue>);

}  // namespace anubis
