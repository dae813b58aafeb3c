// Conformance tests for the queue axis (strategies/queue/event_queue.hpp).
//
// One typed suite, QueueConformance, runs against every queue class directly (no AnyQueue, no
// virtual call), so a new strategy gets the whole contract by adding one type to QueueTypes.
// The registry tests at the bottom check the run-time face: every row of queue_strategies()
// builds a queue that obeys the same basic contract through AnyQueue, and the declared
// capabilities match what the implementation can really do.
//
// Events carry their identity in `delta` (see event_with_id), so a test can check exactly which
// events came out and in which order.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "event_queue.hpp"
#include "lockfree_queue.hpp"
#include "mutex_queue.hpp"

namespace anubis {
namespace {

// Generous: only a broken wake-up ever gets near it.
constexpr auto kDeadline = std::chrono::seconds(10);

// An event whose delta is id + 1 (deltas are never 0 on the wire, and 0 is the default).
Event event_with_id(std::uint64_t id) {
  Event e;
  e.user = UserKey("u");
  e.delta = static_cast<std::int64_t>(id) + 1;
  return e;
}

std::uint64_t id_of(const Event& e) {
  return static_cast<std::uint64_t>(e.delta - 1);
}

// Events with ids [first, first + n).
std::vector<Event> events_with_ids(std::uint64_t first, std::size_t n) {
  std::vector<Event> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(event_with_id(first + i));
  return out;
}

// Pops until `want` events have come out (single consumer, the queue must hold them already)
// and returns their ids in pop order. Each pop may return fewer than asked for, never more.
template <class Q>
std::vector<std::uint64_t> pop_ids(Q& q, std::size_t want, std::size_t batch) {
  std::vector<std::uint64_t> ids;
  std::vector<Event> out(batch);
  while (ids.size() < want) {
    const std::size_t n = q.pop_batch(out);
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, out.size());
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) ids.push_back(id_of(out[i]));
  }
  return ids;
}

std::vector<std::uint64_t> iota_ids(std::uint64_t first, std::size_t n) {
  std::vector<std::uint64_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

// `n` consumer threads, each making one pop_batch call on a shared queue and reporting what it
// returned through a future. The constructor returns once every thread is about to pop.
// The threads share ownership of the queue, so that at the end of a failed test a consumer that a
// lost wake-up left blocked for ever is detached (leaked) instead of hanging the test binary in a
// join. The destructor closes the queue (unless the test did) to release consumers still waiting.
template <class Q, class Result>
class WaitingConsumers {
 public:
  template <class Pop>
  WaitingConsumers(std::size_t capacity, std::size_t n, Pop pop)
      : queue_(std::make_shared<Q>(capacity)) {
    auto about_to_pop = std::make_shared<std::latch>(static_cast<std::ptrdiff_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      std::promise<Result> promise;
      results_.push_back(promise.get_future());
      threads_.emplace_back(
          [q = queue_, about_to_pop, pop, promise = std::move(promise)]() mutable {
            about_to_pop->count_down();
            promise.set_value(pop(*q));
          });
    }
    about_to_pop->wait();
  }
  WaitingConsumers(const WaitingConsumers&) = delete;
  WaitingConsumers& operator=(const WaitingConsumers&) = delete;

  ~WaitingConsumers() {
    if (!closed_) queue_->close();
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      const bool done =
          !results_[i].valid() || results_[i].wait_for(kDeadline) == std::future_status::ready;
      if (done) {
        threads_[i].join();
      } else {
        threads_[i].detach();
      }
    }
  }

  Q& queue() { return *queue_; }
  std::future<Result>& result(std::size_t i) { return results_[i]; }
  std::size_t size() const { return results_.size(); }
  void close() {
    closed_ = true;
    queue_->close();
  }

 private:
  std::shared_ptr<Q> queue_;
  std::vector<std::future<Result>> results_;
  std::vector<std::thread> threads_;
  bool closed_ = false;
};

// One pop_batch into a buffer of kOut events, returning how many came out.
template <std::size_t kOut>
struct PopCount {
  template <class Q>
  std::size_t operator()(Q& q) const {
    std::vector<Event> out(kOut);
    return q.pop_batch(out);
  }
};

// One pop_batch into a one-event buffer, returning the event's id (or ~0 if none came out).
struct PopOneId {
  template <class Q>
  std::uint64_t operator()(Q& q) const {
    std::vector<Event> out(1);
    return q.pop_batch(out) == 1 ? id_of(out[0]) : ~std::uint64_t{0};
  }
};

// ---------------------------------------------------------------------------------------------
// The typed conformance suite

template <class Q>
class QueueConformance : public ::testing::Test {};

TYPED_TEST_SUITE_P(QueueConformance);

// A queue of capacity C takes exactly C single-event pushes; the next one is refused.
TYPED_TEST_P(QueueConformance, SinglePushesFillExactlyTheCapacity) {
  constexpr std::size_t kCapacity = 8;
  TypeParam q(kCapacity);
  for (std::uint64_t id = 0; id < kCapacity; ++id) {
    const Event e = event_with_id(id);
    ASSERT_EQ(q.try_push({&e, 1}), 1u) << "push #" << id;
  }
  const Event extra = event_with_id(kCapacity);
  EXPECT_EQ(q.try_push({&extra, 1}), 0u);
  EXPECT_EQ(q.size_approx(), kCapacity);
  EXPECT_EQ(pop_ids(q, kCapacity, kCapacity), iota_ids(0, kCapacity));
}

// A batch larger than the free space is cut: the longest prefix that fits goes in, and the queue
// then holds exactly the earlier events plus that prefix, in FIFO order.
TYPED_TEST_P(QueueConformance, OversizedBatchPushesTheFittingPrefix) {
  constexpr std::size_t kCapacity = 8;
  TypeParam q(kCapacity);
  const std::vector<Event> first = events_with_ids(0, 3);
  ASSERT_EQ(q.try_push(first), 3u);
  const std::vector<Event> batch = events_with_ids(3, 10);
  EXPECT_EQ(q.try_push(batch), kCapacity - 3);
  // Full now: the rest of the batch is still refused as a whole.
  EXPECT_EQ(q.try_push(std::span<const Event>(batch).subspan(kCapacity - 3)), 0u);
  EXPECT_EQ(q.size_approx(), kCapacity);
  EXPECT_EQ(pop_ids(q, kCapacity, 16), iota_ids(0, kCapacity));
}

// A capacity of 1 is a valid queue: one event in, the second refused, and space comes back after
// a pop.
TYPED_TEST_P(QueueConformance, CapacityOneHoldsOneEvent) {
  TypeParam q(1);
  const std::vector<Event> two = events_with_ids(0, 2);
  EXPECT_EQ(q.try_push(two), 1u);
  EXPECT_EQ(q.try_push(std::span<const Event>(two).subspan(1)), 0u);
  EXPECT_EQ(pop_ids(q, 1, 4), iota_ids(0, 1));
  EXPECT_EQ(q.try_push(std::span<const Event>(two).subspan(1)), 1u);
  EXPECT_EQ(pop_ids(q, 1, 4), iota_ids(1, 1));
}

// pop_batch never returns more than out.size() events, and one producer's events come out in the
// order they were pushed, across pushes and pops of different sizes.
TYPED_TEST_P(QueueConformance, PopBatchIsBoundedByOutAndFifo) {
  TypeParam q(64);
  ASSERT_EQ(q.try_push(events_with_ids(0, 7)), 7u);
  ASSERT_EQ(q.try_push(events_with_ids(7, 1)), 1u);
  ASSERT_EQ(q.try_push(events_with_ids(8, 13)), 13u);
  EXPECT_EQ(pop_ids(q, 21, 4), iota_ids(0, 21));
  // Space freed by pops is reused, with the order kept across the ring's wrap-around.
  for (std::uint64_t round = 0; round < 10; ++round) {
    ASSERT_EQ(q.try_push(events_with_ids(100 * round, 50)), 50u);
    EXPECT_EQ(pop_ids(q, 50, 3), iota_ids(100 * round, 50));
  }
}

// close() on an empty queue makes pop_batch return 0, every time it is called.
TYPED_TEST_P(QueueConformance, PopOnClosedEmptyQueueReturnsZero) {
  TypeParam q(8);
  q.close();
  std::vector<Event> out(4);
  EXPECT_EQ(q.pop_batch(out), 0u);
  EXPECT_EQ(q.pop_batch(out), 0u);
}

// Events pushed before close() are all still popped afterwards, in order; only then does
// pop_batch return 0.
TYPED_TEST_P(QueueConformance, CloseKeepsEventsPushedBeforeIt) {
  TypeParam q(16);
  ASSERT_EQ(q.try_push(events_with_ids(0, 11)), 11u);
  q.close();
  EXPECT_EQ(pop_ids(q, 11, 4), iota_ids(0, 11));
  std::vector<Event> out(4);
  EXPECT_EQ(q.pop_batch(out), 0u);
}

// Consumers blocked in pop_batch on an empty queue stay blocked while the queue is open, and
// close() wakes every one of them with 0.
TYPED_TEST_P(QueueConformance, CloseWakesEveryBlockedConsumer) {
  WaitingConsumers<TypeParam, std::size_t> consumers(8, 3, PopCount<4>{});
  // The only way to see "blocked" from outside: nobody has returned after a while. This wait
  // times out on success and costs 50 ms; it is not what the test synchronises on.
  ASSERT_EQ(consumers.result(0).wait_for(std::chrono::milliseconds(50)),
            std::future_status::timeout)
      << "pop_batch returned on an open, empty queue";
  for (std::size_t i = 0; i < consumers.size(); ++i) {
    ASSERT_EQ(consumers.result(i).wait_for(std::chrono::seconds(0)), std::future_status::timeout)
        << "pop_batch returned on an open, empty queue";
  }
  consumers.close();
  for (std::size_t i = 0; i < consumers.size(); ++i) {
    ASSERT_EQ(consumers.result(i).wait_for(kDeadline), std::future_status::ready)
        << "close() lost a wake-up";
    EXPECT_EQ(consumers.result(i).get(), 0u);
  }
}

// A push wakes a consumer blocked in pop_batch, which then returns the pushed event.
TYPED_TEST_P(QueueConformance, PushWakesABlockedConsumer) {
  WaitingConsumers<TypeParam, std::uint64_t> consumers(8, 1, PopOneId{});
  const Event e = event_with_id(42);
  ASSERT_EQ(consumers.queue().try_push({&e, 1}), 1u);
  ASSERT_EQ(consumers.result(0).wait_for(kDeadline), std::future_status::ready)
      << "the push lost the wake-up";
  EXPECT_EQ(consumers.result(0).get(), 42u);
}

// One batch of K events wakes enough blocked consumers to take them all: K consumers each
// asking for one event all return, with no further push and no close().
TYPED_TEST_P(QueueConformance, OneBatchWakesEnoughConsumers) {
  constexpr std::size_t kConsumers = 3;
  WaitingConsumers<TypeParam, std::uint64_t> consumers(8, kConsumers, PopOneId{});
  ASSERT_EQ(consumers.queue().try_push(events_with_ids(0, kConsumers)), kConsumers);
  std::vector<std::uint64_t> ids;
  for (std::size_t i = 0; i < kConsumers; ++i) {
    ASSERT_EQ(consumers.result(i).wait_for(kDeadline), std::future_status::ready)
        << "a consumer slept while events were waiting";
    ids.push_back(consumers.result(i).get());
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, iota_ids(0, kConsumers));
}

// ---------------------------------------------------------------------------------------------
// Stress: P producers and C consumers, released together through a start gate.

struct StressShape {
  std::size_t producers;
  std::size_t consumers;
  std::size_t events_per_producer;
  std::size_t capacity;  // small, so producers meet a full queue and must retry
};

// Every producer pushes its events (ids producer * N + seq) in batches of 1..16, retrying the
// refused suffix; once all producers are done the queue is closed and consumers pop until 0.
// Checks that every event came out exactly once (per-id bitmap, count and sum), and, when there
// is a single consumer, that each producer's events came out in push order.
template <class Q>
void run_stress(const StressShape& shape) {
  const std::size_t n = shape.events_per_producer;
  const std::size_t total = shape.producers * n;
  Q q(shape.capacity);
  std::latch start(static_cast<std::ptrdiff_t>(shape.producers + shape.consumers));
  std::vector<std::vector<std::uint64_t>> received(shape.consumers);

  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < shape.consumers; ++c) {
    consumers.emplace_back([&, c] {
      std::vector<Event> out(32);
      std::vector<std::uint64_t>& mine = received[c];
      mine.reserve(total);
      start.arrive_and_wait();
      while (const std::size_t got = q.pop_batch(out)) {
        for (std::size_t i = 0; i < got; ++i) mine.push_back(id_of(out[i]));
      }
    });
  }
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < shape.producers; ++p) {
    producers.emplace_back([&, p] {
      const std::vector<Event> events = events_with_ids(p * n, n);
      start.arrive_and_wait();
      std::size_t next = 0;
      std::size_t batch = 1 + p % 16;
      while (next < n) {
        const std::size_t len = std::min(batch, n - next);
        const std::size_t pushed = q.try_push(std::span<const Event>(events).subspan(next, len));
        next += pushed;
        if (pushed == 0) std::this_thread::yield();  // full: let a consumer run
        batch = 1 + (batch * 7 + 3) % 16;            // vary the batch size deterministically
      }
    });
  }
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();

  std::vector<std::uint8_t> seen(total, 0);
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  for (const auto& ids : received) {
    for (const std::uint64_t id : ids) {
      ASSERT_LT(id, total) << "an event that was never pushed came out";
      ++seen[id];
      ++count;
      sum += id;
    }
  }
  EXPECT_EQ(count, total);
  EXPECT_EQ(sum, total * (total - 1) / 2);
  std::size_t lost = 0;
  std::size_t duplicated = 0;
  for (const std::uint8_t s : seen) {
    lost += s == 0 ? 1 : 0;
    duplicated += s > 1 ? 1 : 0;
  }
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(duplicated, 0u);

  if (shape.consumers == 1) {
    std::vector<std::uint64_t> next_seq(shape.producers, 0);
    std::size_t out_of_order = 0;
    for (const std::uint64_t id : received[0]) {
      const std::size_t p = id / n;
      out_of_order += id % n == next_seq[p] ? 0 : 1;
      next_seq[p] = id % n + 1;
    }
    EXPECT_EQ(out_of_order, 0u) << "a producer's events came out of push order";
  }
}

// 4 producers × 4 consumers through a 64-event queue: every event is delivered exactly once.
TYPED_TEST_P(QueueConformance, ManyProducersManyConsumersDeliverEachEventOnce) {
  run_stress<TypeParam>(
      {.producers = 4, .consumers = 4, .events_per_producer = 20'000, .capacity = 64});
}

// 4 producers × 1 consumer: exactly once, and each producer's events keep their push order.
TYPED_TEST_P(QueueConformance, ManyProducersOneConsumerKeepPerProducerOrder) {
  run_stress<TypeParam>(
      {.producers = 4, .consumers = 1, .events_per_producer = 20'000, .capacity = 64});
}

// 1 producer × 4 consumers with a queue of 1: the tightest hand-off, still exactly once.
TYPED_TEST_P(QueueConformance, OneProducerManyConsumersThroughCapacityOne) {
  run_stress<TypeParam>(
      {.producers = 1, .consumers = 4, .events_per_producer = 20'000, .capacity = 1});
}

REGISTER_TYPED_TEST_SUITE_P(QueueConformance, SinglePushesFillExactlyTheCapacity,
                            OversizedBatchPushesTheFittingPrefix, CapacityOneHoldsOneEvent,
                            PopBatchIsBoundedByOutAndFifo, PopOnClosedEmptyQueueReturnsZero,
                            CloseKeepsEventsPushedBeforeIt, CloseWakesEveryBlockedConsumer,
                            PushWakesABlockedConsumer, OneBatchWakesEnoughConsumers,
                            ManyProducersManyConsumersDeliverEachEventOnce,
                            ManyProducersOneConsumerKeepPerProducerOrder,
                            OneProducerManyConsumersThroughCapacityOne);

// Every queue strategy; a new one is one more type here (and a row in the registry).
using QueueTypes = ::testing::Types<MutexQueue, LockfreeQueue>;

struct QueueTypeNames {
  template <class Q>
  static std::string GetName(int) {
    return std::string(Q::kName);
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Queues, QueueConformance, QueueTypes, QueueTypeNames);

// ---------------------------------------------------------------------------------------------
// The registry

// Every row has a distinct name, and its factory builds a queue that keeps the basic contract
// through AnyQueue: exact capacity, prefix push, FIFO pop, 0 after close.
TEST(QueueRegistry, EveryRowBuildsAConformingQueue) {
  const auto rows = queue_strategies();
  ASSERT_FALSE(rows.empty());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const QueueStrategy& row = rows[i];
    SCOPED_TRACE(std::string(row.name));
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(rows[j].name, row.name) << "duplicate name";
    ASSERT_NE(row.make, nullptr);
    const std::unique_ptr<AnyQueue> q = row.make(8);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->try_push(events_with_ids(0, 5)), 5u);
    EXPECT_EQ(q->try_push(events_with_ids(5, 5)), 3u);
    EXPECT_EQ(q->size_approx(), 8u);
    q->close();
    EXPECT_EQ(pop_ids(*q, 8, 3), iota_ids(0, 8));
    std::vector<Event> out(4);
    EXPECT_EQ(q->pop_batch(out), 0u);
  }
}

// The lockfree row declares the real limit of Boost.Lockfree's 16-bit node indices, 65,534
// events, and a queue of exactly that capacity holds that many events, no more.
TEST(QueueRegistry, LockfreeDeclaresAndHoldsItsMaximumCapacity) {
  const QueueStrategy* row = nullptr;
  for (const QueueStrategy& r : queue_strategies()) {
    if (r.name == LockfreeQueue::kName) row = &r;
  }
  ASSERT_NE(row, nullptr) << "no lockfree row";
  constexpr std::size_t kMax = 65'534;
  EXPECT_EQ(row->capabilities.max_capacity, kMax);
  EXPECT_EQ(LockfreeQueue::kMaxCapacity, kMax);

  const std::unique_ptr<AnyQueue> q = row->make(kMax);
  const std::vector<Event> events = events_with_ids(0, kMax + 1);
  EXPECT_EQ(q->try_push(events), kMax);
  EXPECT_EQ(q->try_push(std::span<const Event>(events).subspan(kMax)), 0u);
  q->close();
  EXPECT_EQ(pop_ids(*q, kMax, 1024), iota_ids(0, kMax));
}

}  // namespace
}  // namespace anubis
