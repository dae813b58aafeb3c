// mutex: a fixed ring buffer guarded by one std::mutex, with a condition variable for consumers.
//
// Guarantees: bounded (exactly `capacity` events), FIFO, any number of producers and consumers,
// no allocation after construction. Producers never wait for space: try_push takes the lock only
// to copy. Consumers sleep on the condition variable when the queue is empty.
// Costs: every push and pop takes the same lock, so producers and consumers contend on one cache
// line; batching (one lock per batch, not per event) is what keeps that affordable.
// Loses to lock-free designs when many threads hammer the queue with small batches, and wins on
// simplicity, exact size and fair sleeping when traffic is light.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "event_queue.hpp"

namespace anubis {

class MutexQueue {
 public:
  static constexpr std::string_view kName = "mutex";

  explicit MutexQueue(std::size_t capacity) : ring_(std::max<std::size_t>(capacity, 1)) {}

  std::size_t try_push(std::span<const Event> events) {
    std::size_t n = 0;
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      n = std::min(events.size(), ring_.size() - size_);
      for (std::size_t i = 0; i < n; ++i) ring_[(head_ + size_ + i) % ring_.size()] = events[i];
      size_ += n;
      wake = n > 0 && sleeping_ > 0;
    }
    // Wake one consumer; if it leaves events behind it wakes the next (see pop_batch), so a
    // batch never wakes every sleeper at once.
    if (wake) not_empty_.notify_one();
    return n;
  }

  std::size_t pop_batch(std::span<Event> out) {
    std::unique_lock lock(mutex_);
    if (size_ == 0 && !closed_) {
      ++sleeping_;
      not_empty_.wait(lock, [this] { return size_ > 0 || closed_; });
      --sleeping_;
    }
    const std::size_t n = std::min(out.size(), size_);
    for (std::size_t i = 0; i < n; ++i) out[i] = ring_[(head_ + i) % ring_.size()];
    head_ = (head_ + n) % ring_.size();
    size_ -= n;
    const bool pass_on = size_ > 0 && sleeping_ > 0;
    lock.unlock();
    if (pass_on) not_empty_.notify_one();
    return n;
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
  }

  std::size_t size_approx() const {
    std::lock_guard lock(mutex_);
    return size_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::vector<Event>
      ring_;              // fixed size; slots [head_, head_ + size_) hold events; guarded by mutex_
  std::size_t head_ = 0;  // guarded by mutex_
  std::size_t size_ = 0;  // guarded by mutex_
  std::size_t sleeping_ = 0;  // consumers waiting on not_empty_; guarded by mutex_
  bool closed_ = false;       // guarded by mutex_
};

static_assert(event_queue<MutexQueue>);

}  // namespace anubis
