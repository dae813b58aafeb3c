// The worker pool: OS threads that take batches of events from a queue and apply them to the
// state. Shared by every pipeline that has workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

#include "balance_store.hpp"
#include "event_queue.hpp"
#include "metrics.hpp"

namespace anubis {

class WorkerPool {
 public:
  // Events taken from the queue per pop: amortises the queue's synchronisation and the virtual
  // calls, while keeping a batch's extra latency to a few microseconds.
  static constexpr std::size_t kBatch = 64;

  // Starts `threads` workers at once. `queue`, `store` and `metrics` must outlive the pool.
  WorkerPool(AnyQueue& queue, AnyStore& store, Metrics& metrics, std::size_t threads,
             std::chrono::nanoseconds work_per_event);
  // Joins (the queue must have been closed, or this waits for ever).
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Waits until every worker has seen the closed, empty queue and exited.
  void join();

 private:
  void run();

  AnyQueue& queue_;
  AnyStore& store_;
  Metrics& metrics_;
  const std::chrono::nanoseconds work_per_event_;
  std::vector<std::thread> threads_;
};

}  // namespace anubis
