// The concurrency axis: the path an accepted event takes from an I/O thread to the state.
//
// The network layer sees only Pipeline: it offers each read's events as one batch (one virtual
// call per batch) and learns how many were accepted. Which queue, how many workers and how they
// are wired is the pipeline strategy's business (strategies/pipeline/).
//
// Shutdown, in this order (main.cpp drives it):
//   1. stop_intake(): from now on submit() accepts nothing and reports `closed`, so the network
//      answers `shutting_down`. A submit() racing with it may still be accepted: that is safe,
//      because step 2 waits for every submit() to return.
//   2. drain_and_join(), called once no submit() can run any more (the network has stopped):
//      every accepted event is applied, then the pipeline's threads are joined.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "balance_store.hpp"
#include "event.hpp"
#include "event_queue.hpp"
#include "metrics.hpp"

namespace anubis {

struct SubmitResult {
  std::size_t accepted = 0;  // events [0, accepted) were taken; the rest were not
  bool closed = false;       // true: the rest were refused because intake has stopped
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  // Offers events without blocking. Called concurrently from every I/O thread.
  virtual SubmitResult submit(std::span<const Event> events) = 0;
  virtual void stop_intake() = 0;
  virtual void drain_and_join() = 0;
  virtual std::size_t queue_depth() const = 0;
};

struct PipelineConfig {
  const QueueStrategy* queue = nullptr;
  std::size_t queue_capacity = 16'384;
  std::size_t io_threads = 1;  // producers
  std::size_t workers = 1;     // consumers; 1 measured best on 2 cores (docs/ARCHITECTURE.md)
  // Simulated CPU work per event (busy-wait), to model a costlier update than an addition.
  std::chrono::nanoseconds work_per_event{0};
};

struct ConcurrencyStrategy {
  std::string_view name;
  std::string_view description;
  // Returns why the configuration cannot run with this pipeline, or "" if it can.
  std::string (*check)(const PipelineConfig& config);
  std::unique_ptr<Pipeline> (*make)(const PipelineConfig& config, AnyStore& store,
                                    Metrics& metrics);
};

// Every pipeline strategy, one row each (strategies/pipeline/registry.cpp).
std::span<const ConcurrencyStrategy> concurrency_strategies();

// Finds the row called `name`, or nullptr.
template <class Row>
const Row* find_strategy(std::span<const Row> rows, std::string_view name) {
  for (const Row& row : rows) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

// The checks every pipeline shares: the capacity fits the queue strategy's limits.
std::string check_queue_capacity(const PipelineConfig& config);

}  // namespace anubis
