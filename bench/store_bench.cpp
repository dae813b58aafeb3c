// Micro-benchmarks of the lock strategies, used directly (no virtual call). Users are created
// before timing, so the numbers are updates of existing entries, not map growth. Rates are
// events per second.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "mutex_lock_state.hpp"
#include "sharded_lock_state.hpp"

namespace {

using anubis::Event;

constexpr std::size_t kUsers = 10'000;

std::vector<Event> make_events(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> user(0, kUsers - 1);
  std::vector<Event> events(count);
  for (auto& e : events) {
    e.user = anubis::UserKey("user-" + std::to_string(user(rng)));
    e.delta = 1;
  }
  return events;
}

// Threads apply events for uniformly chosen users to one shared store: the cost of an update
// and how it scales with writers.
template <class S>
void BM_ApplyUniform(benchmark::State& state) {
  static S* store = nullptr;
  if (state.thread_index() == 0) {
    store = new S(anubis::StoreConfig{});
    for (const Event& e : make_events(kUsers * 4, 0)) store->apply(e);
  }
  const auto events = make_events(4096, static_cast<std::uint64_t>(state.thread_index()) + 1);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store->apply(events[i++ % events.size()]));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  if (state.thread_index() == 0) {
    delete store;
    store = nullptr;
  }
}

BENCHMARK_TEMPLATE(BM_ApplyUniform, anubis::MutexLockState)->ThreadRange(1, 4)->UseRealTime();
BENCHMARK_TEMPLATE(BM_ApplyUniform, anubis::ShardedLockState)->ThreadRange(1, 4)->UseRealTime();

}  // namespace
