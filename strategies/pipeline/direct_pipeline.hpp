// direct: I/O threads push straight into one bounded queue; a pool of worker threads pops it.
//
//   I/O thread --try_push--> [ queue ] --pop_batch--> worker --apply--> state
//
// Guarantees: an event is accepted only once it is in the queue, and every accepted event is
// applied before drain_and_join() returns. The I/O threads never wait: a full queue is an
// immediate `server_busy`.
// Costs: one queue hand-off per event (amortised over batches on both sides); every I/O thread
// and every worker meets on the same queue, so its synchronisation is the shared cost.
// Loses to an inline design when the update is so cheap that the hand-off costs more than the
// work, and to a partitioned one when workers contend on the state.
#pragma once

#include <atomic>

#include "pipeline.hpp"
#include "worker.hpp"

namespace anubis {

class DirectPipeline final : public Pipeline {
 public:
  static constexpr std::string_view kName = "direct";

  DirectPipeline(const PipelineConfig& config, AnyStore& store, Metrics& metrics)
      : queue_(config.queue->make(config.queue_capacity)),
        workers_(*queue_, store, metrics, config.workers, config.work_per_event) {}

  ~DirectPipeline() override { drain_and_join(); }

  static std::string check(const PipelineConfig& config) {
    if (std::string why = check_queue_capacity(config); !why.empty()) return why;
    const QueueCapabilities& caps = config.queue->capabilities;
    if (config.workers < 1) return "--concurrency direct needs at least one worker";
    if (config.io_threads > caps.max_producers) {
      return "--queue " + std::string(config.queue->name) + " allows at most " +
             std::to_string(caps.max_producers) + " producers (--io-threads)";
    }
    if (config.workers > caps.max_consumers) {
      return "--queue " + std::string(config.queue->name) + " allows at most " +
             std::to_string(caps.max_consumers) + " consumers (--workers)";
    }
    return {};
  }

  SubmitResult submit(std::span<const Event> events) override {
    // Relaxed: the flag only chooses the reply; no data is published through it (the queue
    // publishes the events, and drain_and_join runs after every submit has returned).
    if (!open_.load(std::memory_order_relaxed)) return {0, true};
    return {queue_->try_push(events), false};
  }

  void stop_intake() override { open_.store(false, std::memory_order_relaxed); }

  void drain_and_join() override {
    queue_->close();
    workers_.join();
  }

  std::size_t queue_depth() const override { return queue_->size_approx(); }

 private:
  std::unique_ptr<AnyQueue> queue_;
  WorkerPool workers_;  // declared after queue_: destroyed (joined) before the queue
  std::atomic<bool> open_{true};
};

}  // namespace anubis
