#include "worker.hpp"

#include <array>

namespace anubis {

namespace {

// Burns CPU for `d`, standing in for real per-event work. A sleep would model waiting, not
// computing, and would let the core run something else.
void busy_wait(std::chrono::nanoseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace

WorkerPool::WorkerPool(AnyQueue& queue, AnyStore& store, Metrics& metrics, std::size_t threads,
                       std::chrono::nanoseconds work_per_event)
    : queue_(queue), store_(store), metrics_(metrics), work_per_event_(work_per_event) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() {
  join();
}

void WorkerPool::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void WorkerPool::run() {
  std::array<Event, kBatch> batch;
  while (const std::size_t n = queue_.pop_batch(batch)) {
    const std::span<const Event> events(batch.data(), n);
    if (work_per_event_.count() > 0) busy_wait(work_per_event_ * static_cast<long>(n));
    const std::size_t refused = store_.apply_batch(events);
    if (refused > 0) metrics_.add_overflowed(refused);
    // After the updates are in the state: `processed` promises they are visible (metrics.hpp).
    metrics_.add_processed(n);
  }
}

}  // namespace anubis
