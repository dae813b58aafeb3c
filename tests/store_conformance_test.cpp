// Conformance tests for the lock axis (strategies/lock/balance_store.hpp).
//
// One typed suite, StoreConformance, runs against every store class directly (no AnyStore), each
// with the StoreConfig it is built from: the sharded store runs with 8 shards and with 1 (its
// special case). A new strategy gets the whole contract by adding one StoreCase to StoreCases.
// apply_checked, the overflow rule every store shares, and the registry have their own TESTs.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "balance_store.hpp"
#include "mutex_lock_state.hpp"
#include "sharded_lock_state.hpp"

namespace anubis {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();

Event event(std::string_view user, std::int64_t delta) {
  Event e;
  e.user = UserKey(user);
  e.delta = delta;
  return e;
}

// A store type together with the configuration it is tested with.
template <class S, std::size_t kShards>
struct StoreCase {
  using Store = S;
  static StoreConfig config() { return StoreConfig{.shards = kShards}; }
  static std::string name() { return std::string(S::kName) + "_shards" + std::to_string(kShards); }
};

template <class Case>
class StoreConformance : public ::testing::Test {
 protected:
  typename Case::Store store_{Case::config()};
};

TYPED_TEST_SUITE_P(StoreConformance);

// A user that was never seen reads as {0, 0}, and looking it up does not create it.
TYPED_TEST_P(StoreConformance, UnknownUserIsZero) {
  EXPECT_EQ(this->store_.lookup("nobody"), (Balance{0, 0}));
  EXPECT_EQ(this->store_.lookup(""), (Balance{0, 0}));
  EXPECT_TRUE(this->store_.snapshot().empty());
}

// Buys and sells add up per user, and every applied event is counted once.
TYPED_TEST_P(StoreConformance, BuysAndSellsSumAndCount) {
  auto& s = this->store_;
  EXPECT_TRUE(s.apply(event("alice", 100)));
  EXPECT_TRUE(s.apply(event("alice", -30)));
  EXPECT_TRUE(s.apply(event("bob", 7)));
  EXPECT_TRUE(s.apply(event("alice", 5)));
  EXPECT_EQ(s.lookup("alice"), (Balance{75, 3}));
  EXPECT_EQ(s.lookup("bob"), (Balance{7, 1}));
}

// A sell larger than the balance is applied: balances may go negative.
TYPED_TEST_P(StoreConformance, NegativeBalancesAreAllowed) {
  auto& s = this->store_;
  EXPECT_TRUE(s.apply(event("carol", 10)));
  EXPECT_TRUE(s.apply(event("carol", -kMaxAmount)));
  EXPECT_EQ(s.lookup("carol"), (Balance{10 - kMaxAmount, 2}));
  EXPECT_TRUE(s.apply(event("dave", -1)));
  EXPECT_EQ(s.lookup("dave"), (Balance{-1, 1}));
}

// An apply that would overflow int64 (either way) returns false and changes neither the balance
// nor the event count; the user stays usable. The store does not check |delta| (the parser
// does), so extreme deltas reach the limit in one step.
TYPED_TEST_P(StoreConformance, OverflowIsRefusedAndChangesNothing) {
  auto& s = this->store_;
  EXPECT_TRUE(s.apply(event("rich", kInt64Max)));
  EXPECT_FALSE(s.apply(event("rich", 1)));
  EXPECT_FALSE(s.apply(event("rich", kInt64Max)));
  EXPECT_EQ(s.lookup("rich"), (Balance{kInt64Max, 1}));
  EXPECT_TRUE(s.apply(event("rich", -1)));
  EXPECT_EQ(s.lookup("rich"), (Balance{kInt64Max - 1, 2}));

  EXPECT_TRUE(s.apply(event("poor", kInt64Min)));
  EXPECT_FALSE(s.apply(event("poor", -1)));
  EXPECT_EQ(s.lookup("poor"), (Balance{kInt64Min, 1}));
  EXPECT_TRUE(s.apply(event("poor", kInt64Max)));
  EXPECT_EQ(s.lookup("poor"), (Balance{-1, 2}));
}

// snapshot() lists every user exactly once, sorted by name, with its current balance.
TYPED_TEST_P(StoreConformance, SnapshotIsSortedAndComplete) {
  auto& s = this->store_;
  constexpr int kUsers = 200;
  // Apply in an order unrelated to the names' order (37 is coprime with 200).
  for (int i = 0; i < kUsers; ++i) {
    const int u = (i * 37) % kUsers;
    ASSERT_TRUE(s.apply(event("user" + std::to_string(u), u + 1)));
    ASSERT_TRUE(s.apply(event("user" + std::to_string(u), -1)));
  }
  const BalanceSnapshot snap = s.snapshot();
  ASSERT_EQ(snap.size(), static_cast<std::size_t>(kUsers));
  for (std::size_t i = 1; i < snap.size(); ++i) {
    EXPECT_LT(snap[i - 1].first, snap[i].first) << "not sorted (or duplicated) at " << i;
  }
  for (const auto& [user, balance] : snap) {
    const int u = std::stoi(user.substr(4));
    EXPECT_EQ(balance, (Balance{u, 2})) << user;
  }
}

// Names of the maximum length, names differing only in their last byte, and names that are
// prefixes of one another are all distinct users.
TYPED_TEST_P(StoreConformance, LongAndNearlyEqualNamesAreDistinct) {
  auto& s = this->store_;
  const std::string base(kMaxUserBytes - 1, 'x');
  const std::string a = base + 'a';  // 64 bytes
  const std::string b = base + 'b';  // 64 bytes, differs only in the last byte
  ASSERT_EQ(a.size(), kMaxUserBytes);
  EXPECT_TRUE(s.apply(event(a, 1)));
  EXPECT_TRUE(s.apply(event(b, 10)));
  EXPECT_TRUE(s.apply(event(b, 10)));
  EXPECT_TRUE(s.apply(event(base, 100)));
  EXPECT_TRUE(s.apply(event("x", 1000)));
  EXPECT_EQ(s.lookup(a), (Balance{1, 1}));
  EXPECT_EQ(s.lookup(b), (Balance{20, 2}));
  EXPECT_EQ(s.lookup(base), (Balance{100, 1}));
  EXPECT_EQ(s.lookup("x"), (Balance{1000, 1}));
  EXPECT_EQ(s.lookup(base + 'c'), (Balance{0, 0}));

  const BalanceSnapshot snap = s.snapshot();
  ASSERT_EQ(snap.size(), 4u);
  EXPECT_EQ(snap[0].first, "x");
  EXPECT_EQ(snap[1].first, base);
  EXPECT_EQ(snap[2].first, a);
  EXPECT_EQ(snap[3].first, b);
}

// T writers (released by a start gate) apply M events each over a shared set of users while a
// reader looks them up and snapshots. Each user has one fixed delta, so at every moment
// balance == events * delta: a reader that ever sees a half-applied event, or an event count that
// goes backwards, catches a broken lock. At the end every balance and count is exact.
TYPED_TEST_P(StoreConformance, ConcurrentAppliesAreExactAndAtomic) {
  auto& s = this->store_;
  constexpr std::size_t kWriters = 4;
  constexpr std::size_t kEventsPerWriter = 48'000;
  constexpr std::size_t kUsers = 32;
  std::vector<std::string> users;
  std::vector<std::int64_t> delta;  // per user: +1, -2, +3, -4, ...
  for (std::size_t u = 0; u < kUsers; ++u) {
    users.push_back("user-" + std::to_string(u));
    const auto d = static_cast<std::int64_t>(u + 1);
    delta.push_back(u % 2 == 0 ? d : -d);
    // Create every user beforehand, so the stress mixes updates with lookups, not inserts.
    ASSERT_TRUE(s.apply(event(users[u], delta[u])));
  }

  std::latch start(kWriters + 1);
  std::atomic<std::size_t> writers_done{0};
  std::vector<std::thread> writers;
  for (std::size_t w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      start.arrive_and_wait();
      for (std::size_t i = 0; i < kEventsPerWriter; ++i) {
        const std::size_t u = (i + w * 7) % kUsers;  // writers start on different users
        if (!s.apply(event(users[u], delta[u]))) ADD_FAILURE() << "refused " << users[u];
      }
      writers_done.fetch_add(1, std::memory_order_release);
    });
  }

  std::size_t torn = 0;
  std::size_t backwards = 0;
  std::size_t passes = 0;
  std::vector<std::uint64_t> last_events(kUsers, 0);
  start.arrive_and_wait();
  do {
    for (std::size_t u = 0; u < kUsers; ++u) {
      const Balance b = s.lookup(users[u]);
      torn += b.balance == static_cast<std::int64_t>(b.events) * delta[u] ? 0 : 1;
      backwards += b.events < last_events[u] ? 1 : 0;
      last_events[u] = b.events;
    }
    if (passes++ % 16 == 0) {
      for (const auto& [user, b] : s.snapshot()) {
        const std::size_t u = std::stoul(user.substr(5));
        torn += b.balance == static_cast<std::int64_t>(b.events) * delta[u] ? 0 : 1;
      }
    }
  } while (writers_done.load(std::memory_order_acquire) < kWriters);
  for (auto& t : writers) t.join();

  EXPECT_EQ(torn, 0u) << "a reader saw a balance out of step with its event count";
  EXPECT_EQ(backwards, 0u) << "a reader saw a user's event count decrease";
  // Every user gets the same number of events: M * T / kUsers each, plus the creating event.
  static_assert(kEventsPerWriter % kUsers == 0);
  const std::uint64_t per_user = kWriters * kEventsPerWriter / kUsers + 1;
  for (std::size_t u = 0; u < kUsers; ++u) {
    EXPECT_EQ(s.lookup(users[u]),
              (Balance{static_cast<std::int64_t>(per_user) * delta[u], per_user}))
        << users[u];
  }
  EXPECT_EQ(s.snapshot().size(), kUsers);
}

REGISTER_TYPED_TEST_SUITE_P(StoreConformance, UnknownUserIsZero, BuysAndSellsSumAndCount,
                            NegativeBalancesAreAllowed, OverflowIsRefusedAndChangesNothing,
                            SnapshotIsSortedAndComplete, LongAndNearlyEqualNamesAreDistinct,
                            ConcurrentAppliesAreExactAndAtomic);

// Every store strategy with the configurations worth testing; a new one is one more line here.
using StoreCases = ::testing::Types<StoreCase<MutexLockState, 8>, StoreCase<ShardedLockState, 8>,
                                    StoreCase<ShardedLockState, 1>>;

struct StoreCaseNames {
  template <class Case>
  static std::string GetName(int) {
    return Case::name();
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Stores, StoreConformance, StoreCases, StoreCaseNames);

// ---------------------------------------------------------------------------------------------
// apply_checked: the overflow rule shared by every store

// Adding up to exactly INT64_MAX succeeds; one more refuses and leaves balance and count alone.
TEST(ApplyChecked, RefusesPositiveOverflowAndChangesNothing) {
  Balance b{kInt64Max - kMaxAmount, 7};
  EXPECT_TRUE(apply_checked(b, kMaxAmount));
  EXPECT_EQ(b, (Balance{kInt64Max, 8}));
  EXPECT_FALSE(apply_checked(b, 1));
  EXPECT_FALSE(apply_checked(b, kMaxAmount));
  EXPECT_EQ(b, (Balance{kInt64Max, 8}));
  EXPECT_TRUE(apply_checked(b, -1));
  EXPECT_EQ(b, (Balance{kInt64Max - 1, 9}));
}

// Subtracting down to exactly INT64_MIN succeeds; one more refuses and changes nothing.
TEST(ApplyChecked, RefusesNegativeOverflowAndChangesNothing) {
  Balance b{kInt64Min + kMaxAmount, 3};
  EXPECT_TRUE(apply_checked(b, -kMaxAmount));
  EXPECT_EQ(b, (Balance{kInt64Min, 4}));
  EXPECT_FALSE(apply_checked(b, -1));
  EXPECT_EQ(b, (Balance{kInt64Min, 4}));
  EXPECT_TRUE(apply_checked(b, kMaxAmount));
  EXPECT_EQ(b, (Balance{kInt64Min + kMaxAmount, 5}));
}

// ---------------------------------------------------------------------------------------------
// The registry

// Every row has a distinct name and builds, through AnyStore, a store that sums, counts, reports
// refused overflows from apply_batch and snapshots sorted.
TEST(LockRegistry, EveryRowBuildsAConformingStore) {
  const auto rows = lock_strategies();
  ASSERT_FALSE(rows.empty());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const LockStrategy& row = rows[i];
    SCOPED_TRACE(std::string(row.name));
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(rows[j].name, row.name) << "duplicate name";
    ASSERT_NE(row.make, nullptr);
    const std::unique_ptr<AnyStore> s = row.make(StoreConfig{.shards = 8});
    ASSERT_NE(s, nullptr);
    const std::vector<Event> batch = {event("b", 5), event("a", kInt64Max), event("a", 1),
                                      event("b", -7)};
    EXPECT_EQ(s->apply_batch(batch), 1u);
    EXPECT_EQ(s->lookup("a"), (Balance{kInt64Max, 1}));
    EXPECT_EQ(s->lookup("b"), (Balance{-2, 2}));
    const BalanceSnapshot snap = s->snapshot();
    ASSERT_EQ(snap.size(), 2u);
    EXPECT_EQ(snap[0].first, "a");
    EXPECT_EQ(snap[1].first, "b");
  }
}

}  // namespace
}  // namespace anubis
