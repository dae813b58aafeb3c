// Tests for the concurrency axis (src/pipeline.hpp) through the registries, the way the server
// builds it: for every pipeline row, every queue row and every lock row, producers submit events
// concurrently, intake stops, the pipeline drains, and the state must hold exactly what was
// accepted. The start-up check is tested separately.
#include "pipeline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "balance_store.hpp"
#include "event_queue.hpp"
#include "metrics.hpp"

namespace anubis {
namespace {

// One combination of strategies, by row.
struct Combo {
  const ConcurrencyStrategy* pipeline;
  const QueueStrategy* queue;
  const LockStrategy* lock;
};

// Names the rows when a parameterised test fails (instead of dumping the pointers' bytes).
void PrintTo(const Combo& c, std::ostream* os) {
  *os << c.pipeline->name << "/" << c.queue->name << "/" << c.lock->name;
}

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (const ConcurrencyStrategy& p : concurrency_strategies()) {
    for (const QueueStrategy& q : queue_strategies()) {
      for (const LockStrategy& l : lock_strategies()) out.push_back({&p, &q, &l});
    }
  }
  return out;
}

std::string combo_name(const ::testing::TestParamInfo<Combo>& info) {
  return std::string(info.param.pipeline->name) + "_" + std::string(info.param.queue->name) + "_" +
         std::string(info.param.lock->name);
}

constexpr std::size_t kUsers = 16;

std::string user_name(std::size_t u) {
  return "user-" + std::to_string(u);
}

class PipelineTest : public ::testing::TestWithParam<Combo> {};

// Producers (released by a start gate) submit batches, retrying the refused suffix; after
// stop_intake() every submit answers {0, closed}; after drain_and_join() every accepted event has
// been applied exactly once: processed == accepted, and each user's balance and event count are
// the sums of what was submitted for it.
void run_pipeline(const Combo& combo, std::size_t capacity) {
  constexpr std::size_t kProducers = 3;
  constexpr std::size_t kBatchesPerProducer = 500;
  constexpr std::size_t kBatch = 40;
  const PipelineConfig config{
      .queue = combo.queue, .queue_capacity = capacity, .io_threads = kProducers, .workers = 2};
  ASSERT_EQ(combo.pipeline->check(config), "");
  const std::unique_ptr<AnyStore> store = combo.lock->make(StoreConfig{.shards = 8});
  Metrics metrics;
  const std::unique_ptr<Pipeline> pipeline = combo.pipeline->make(config, *store, metrics);

  std::latch start(kProducers);
  std::vector<std::vector<std::int64_t>> sums(kProducers, std::vector<std::int64_t>(kUsers, 0));
  std::vector<std::vector<std::uint64_t>> counts(kProducers, std::vector<std::uint64_t>(kUsers, 0));
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> closed_early{0};
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<Event> batch(kBatch);
      start.arrive_and_wait();
      for (std::size_t b = 0; b < kBatchesPerProducer; ++b) {
        for (std::size_t i = 0; i < kBatch; ++i) {
          const std::size_t k = (p * 131 + b * kBatch + i);
          const std::size_t u = k % kUsers;
          const auto amount = static_cast<std::int64_t>(1 + k % 1000);
          batch[i].user = UserKey(user_name(u));
          batch[i].delta = k % 3 == 0 ? -amount : amount;
          sums[p][u] += batch[i].delta;
          ++counts[p][u];
        }
        std::span<const Event> rest(batch);
        while (!rest.empty()) {
          const SubmitResult r = pipeline->submit(rest);
          if (r.closed) {
            closed_early.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          ASSERT_LE(r.accepted, rest.size());
          accepted.fetch_add(r.accepted, std::memory_order_relaxed);
          rest = rest.subspan(r.accepted);
          if (r.accepted == 0) std::this_thread::yield();  // full: let a worker run
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_EQ(closed_early.load(), 0u) << "submit reported closed before stop_intake()";
  constexpr std::uint64_t kTotal = kProducers * kBatchesPerProducer * kBatch;
  ASSERT_EQ(accepted.load(), kTotal);

  pipeline->stop_intake();
  const std::vector<Event> late(3, Event{UserKey("late"), 1});
  const SubmitResult refused = pipeline->submit(late);
  EXPECT_EQ(refused.accepted, 0u);
  EXPECT_TRUE(refused.closed);

  pipeline->drain_and_join();
  EXPECT_EQ(metrics.processed(), kTotal);
  EXPECT_EQ(pipeline->queue_depth(), 0u);
  EXPECT_EQ(metrics.snapshot(0).overflowed, 0u);
  for (std::size_t u = 0; u < kUsers; ++u) {
    Balance want;
    for (std::size_t p = 0; p < kProducers; ++p) {
      want.balance += sums[p][u];
      want.events += counts[p][u];
    }
    EXPECT_EQ(store->lookup(user_name(u)), want) << user_name(u);
  }
  EXPECT_EQ(store->lookup("late"), (Balance{0, 0})) << "an event refused as closed was applied";
  EXPECT_EQ(store->snapshot().size(), kUsers);
}

// A roomy queue (1,024 events): every accepted event is applied exactly once.
TEST_P(PipelineTest, EveryAcceptedEventIsAppliedOnce) {
  run_pipeline(GetParam(), 1024);
}

// A tiny queue (8 events, smaller than a batch): producers constantly meet a full queue and
// retry suffixes, and still every accepted event is applied exactly once.
TEST_P(PipelineTest, PartialAcceptsUnderBackPressureLoseNothing) {
  run_pipeline(GetParam(), 8);
}

// With nothing submitted, stop_intake then drain_and_join returns promptly with nothing applied.
TEST_P(PipelineTest, IdlePipelineShutsDown) {
  const Combo& combo = GetParam();
  const PipelineConfig config{.queue = combo.queue, .queue_capacity = 64, .workers = 2};
  ASSERT_EQ(combo.pipeline->check(config), "");
  const std::unique_ptr<AnyStore> store = combo.lock->make(StoreConfig{});
  Metrics metrics;
  const std::unique_ptr<Pipeline> pipeline = combo.pipeline->make(config, *store, metrics);
  pipeline->stop_intake();
  const Event e{UserKey("x"), 1};
  EXPECT_TRUE(pipeline->submit({&e, 1}).closed);
  pipeline->drain_and_join();
  EXPECT_EQ(metrics.processed(), 0u);
  EXPECT_TRUE(store->snapshot().empty());
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, PipelineTest, ::testing::ValuesIn(all_combos()),
                         combo_name);

// ---------------------------------------------------------------------------------------------
// The start-up check

const ConcurrencyStrategy& direct() {
  const ConcurrencyStrategy* row = find_strategy(concurrency_strategies(), "direct");
  EXPECT_NE(row, nullptr);
  return *row;
}

const QueueStrategy& queue_row(std::string_view name) {
  const QueueStrategy* row = find_strategy(queue_strategies(), name);
  EXPECT_NE(row, nullptr) << name;
  return *row;
}

// direct refuses a lockfree queue of 65,535 events with a message naming the limit, and accepts
// 65,534; the mutex queue has no such limit.
TEST(DirectPipelineCheck, LockfreeCapacityLimitIsEnforced) {
  const QueueStrategy& lockfree = queue_row("lockfree");
  const std::string why = direct().check({.queue = &lockfree, .queue_capacity = 65'535});
  EXPECT_NE(why.find("65534"), std::string::npos) << why;
  EXPECT_NE(why.find("lockfree"), std::string::npos) << why;
  EXPECT_EQ(direct().check({.queue = &lockfree, .queue_capacity = 65'534}), "");
  EXPECT_EQ(direct().check({.queue = &queue_row("mutex"), .queue_capacity = 65'535}), "");
}

// direct refuses a zero capacity and a pool without workers, for every queue.
TEST(DirectPipelineCheck, RefusesZeroCapacityAndZeroWorkers) {
  for (const QueueStrategy& q : queue_strategies()) {
    SCOPED_TRACE(std::string(q.name));
    EXPECT_NE(direct().check({.queue = &q, .queue_capacity = 0}), "");
    EXPECT_NE(direct().check({.queue = &q, .queue_capacity = 16, .workers = 0}), "");
    EXPECT_EQ(direct().check({.queue = &q, .queue_capacity = 16, .workers = 1}), "");
  }
}

}  // namespace
}  // namespace anubis
