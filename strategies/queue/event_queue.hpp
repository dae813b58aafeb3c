// The queue axis: how accepted events travel from the I/O threads to the workers.
//
// Every queue strategy is a class satisfying `event_queue` (used directly, with no virtual call,
// by the micro-benchmarks and conformance tests) and one row in `queue_strategies()` (used by the
// server, through AnyQueue: one virtual call per *batch* of events, never per event).
//
// Contract shared by every implementation:
// - try_push(events) never blocks: it appends the longest prefix that fits and returns its length
//   (0 when full). Items from one producer keep their order.
// - pop_batch(out) blocks until at least one event is available, then moves up to out.size()
//   events into `out` and returns how many. It returns 0 only after close(), once the queue is
//   empty: that is the consumers' signal to exit.
// - close() is called once no producer will push again (the pipeline guarantees it); every event
//   pushed before close() is still popped. Calling it again changes nothing.
// - size_approx() is a momentary estimate for metrics.
#pragma once

#include <concepts>
#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string_view>

#include "event.hpp"

namespace anubis {

template <class Q>
concept event_queue = requires(Q q, const Q cq, std::span<const Event> in, std::span<Event> out) {
  { Q::kName } -> std::convertible_to<std::string_view>;
  { q.try_push(in) } -> std::same_as<std::size_t>;
  { q.pop_batch(out) } -> std::same_as<std::size_t>;
  {q.close()};
  { cq.size_approx() } -> std::same_as<std::size_t>;
}
&&std::constructible_from<Q, std::size_t>;

// The run-time face of a queue strategy. Implementations come only from QueueAdapter.
class AnyQueue {
 public:
  virtual ~AnyQueue() = default;
  virtual std::size_t try_push(std::span<const Event> events) = 0;
  virtual std::size_t pop_batch(std::span<Event> out) = 0;
  virtual void close() = 0;
  virtual std::size_t size_approx() const = 0;
};

template <event_queue Q>
class QueueAdapter final : public AnyQueue {
 public:
  explicit QueueAdapter(std::size_t capacity) : queue_(capacity) {}
  std::size_t try_push(std::span<const Event> events) override { return queue_.try_push(events); }
  std::size_t pop_batch(std::span<Event> out) override { return queue_.pop_batch(out); }
  void close() override { queue_.close(); }
  std::size_t size_approx() const override { return queue_.size_approx(); }

 private:
  Q queue_;
};

// What a strategy supports; the start-up check refuses configurations outside it.
struct QueueCapabilities {
  std::size_t max_capacity = std::numeric_limits<std::size_t>::max();
  std::size_t max_producers = std::numeric_limits<std::size_t>::max();
  std::size_t max_consumers = std::numeric_limits<std::size_t>::max();
};

struct QueueStrategy {
  std::string_view name;
  std::string_view description;
  QueueCapabilities capabilities;
  std::unique_ptr<AnyQueue> (*make)(std::size_t capacity);
};

template <event_queue Q>
std::unique_ptr<AnyQueue> make_queue(std::size_t capacity) {
  return std::make_unique<QueueAdapter<Q>>(capacity);
}

// Every queue strategy, one row each (strategies/queue/registry.cpp).
std::span<const QueueStrategy> queue_strategies();

}  // namespace anubis
