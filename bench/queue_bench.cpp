// Micro-benchmarks of the queue strategies, used directly (no virtual call), one batch of 64
// events per operation as the server uses them. Rates are events per second.
#include <benchmark/benchmark.h>

#include <array>

#include "lockfree_queue.hpp"
#include "mutex_queue.hpp"

namespace {

using anubis::Event;

constexpr std::size_t kBatch = 64;
constexpr std::size_t kCapacity = 16'384;

std::array<Event, kBatch> make_batch() {
  std::array<Event, kBatch> batch{};
  for (std::size_t i = 0; i < kBatch; ++i) {
    batch[i].user = anubis::UserKey("user-" + std::to_string(i));
    batch[i].delta = static_cast<std::int64_t>(i + 1);
  }
  return batch;
}

// One thread pushes a batch and pops it back: the uncontended cost of the queue's
// synchronisation per event.
template <class Q>
void BM_PushPopBatch(benchmark::State& state) {
  Q queue(kCapacity);
  const auto in = make_batch();
  std::array<Event, kBatch> out{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(queue.try_push(in));
    benchmark::DoNotOptimize(queue.pop_batch(out));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

// Every thread pushes a batch, then pops a batch (the queue never empties for long, so nobody
// sleeps): how the queue's synchronisation holds up when threads contend on it.
template <class Q>
void BM_ContendedPushPop(benchmark::State& state) {
  static Q* queue = nullptr;
  if (state.thread_index() == 0) {
    queue = new Q(kCapacity);
    // Pre-fill so a pop always finds work even when every thread pops at once.
    const auto warm = make_batch();
    for (int i = 0; i < state.threads() * 2; ++i) queue->try_push(warm);
  }
  const auto in = make_batch();
  std::array<Event, kBatch> out{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(queue->try_push(in));
    benchmark::DoNotOptimize(queue->pop_batch(out));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
  if (state.thread_index() == 0) {
    delete queue;
    queue = nullptr;
  }
}

BENCHMARK_TEMPLATE(BM_PushPopBatch, anubis::MutexQueue);
BENCHMARK_TEMPLATE(BM_PushPopBatch, anubis::LockfreeQueue);
BENCHMARK_TEMPLATE(BM_ContendedPushPop, anubis::MutexQueue)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_ContendedPushPop, anubis::LockfreeQueue)->ThreadRange(1, 4)->UseRealTime();

}  // namespace
