#include "load/keys.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace anubis::harness::load {
namespace {

// splitmix64 matches the reference implementation (seed 0 starts 0xe220a8397b1dcdaf).
TEST(SplitMix64, MatchesReferenceOutput) {
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.next(), 0x06c45d188009454fULL);
}

// The same (seed, connection) replays the same events; another connection or seed does not.
TEST(EventStream, SameSeedSameSequence) {
  const EventMix mix{.users = 1'000, .distribution = Distribution::zipf};
  EventStream a(mix, 7, 3);
  EventStream b(mix, 7, 3);
  EventStream other_connection(mix, 7, 4);
  EventStream other_seed(mix, 8, 3);
  int differ_connection = 0;
  int differ_seed = 0;
  for (int i = 0; i < 1'000; ++i) {
    const Event x = a.next();
    const Event y = b.next();
    ASSERT_EQ(x.user, y.user);
    ASSERT_EQ(x.sell, y.sell);
    ASSERT_EQ(x.amount, y.amount);
    const Event c = other_connection.next();
    const Event s = other_seed.next();
    differ_connection += c.user != x.user || c.amount != x.amount;
    differ_seed += s.user != x.user || s.amount != x.amount;
  }
  EXPECT_GT(differ_connection, 900);
  EXPECT_GT(differ_seed, 900);
}

// Users stay in [0, users), amounts in [1, 1000], for both distributions and one user.
TEST(EventStream, ValuesStayInRange) {
  for (const auto distribution : {Distribution::uniform, Distribution::zipf}) {
    for (const std::uint32_t users : {1U, 2U, 97U, 10'000'000U}) {
      EventStream stream({.users = users, .distribution = distribution}, 1, 0);
      for (int i = 0; i < 20'000; ++i) {
        const Event event = stream.next();
        ASSERT_LT(event.user, users);
        ASSERT_GE(event.amount, 1U);
        ASSERT_LE(event.amount, EventStream::kMaxEventAmount);
        ASSERT_EQ(event.delta(), event.sell ? -std::int64_t{event.amount} : event.amount);
      }
    }
  }
}

// --sell-ratio 0 and 1 are exact; 0.3 gives 30% sells within 5 standard deviations.
TEST(EventStream, SellRatio) {
  constexpr int kDraws = 200'000;
  for (const double ratio : {0.0, 0.3, 1.0}) {
    EventStream stream({.users = 10, .sell_ratio = ratio}, 3, 0);
    int sells = 0;
    for (int i = 0; i < kDraws; ++i) sells += stream.next().sell ? 1 : 0;
    const double sigma = std::sqrt(ratio * (1 - ratio) / kDraws);
    EXPECT_NEAR(static_cast<double>(sells) / kDraws, ratio, 5 * sigma + 1e-12) << ratio;
  }
}

// The exact Zipf probability of rank k (1-based) over n ranks: k^-s / sum_i i^-s.
std::vector<double> zipf_probabilities(std::uint64_t n, double s, std::size_t top) {
  double norm = 0;
  for (std::uint64_t i = n; i >= 1; --i) norm += std::pow(static_cast<double>(i), -s);
  std::vector<double> p;
  for (std::size_t k = 1; k <= top; ++k) p.push_back(std::pow(static_cast<double>(k), -s) / norm);
  return p;
}

// Over 2M draws the empirical frequency of each of the top 10 ranks (and of the tail beyond rank
// 1000) is within 5 binomial standard deviations of the exact Zipf probability, for s below, at
// and above 1 (rejection-inversion must be exact, not an approximation of the law).
TEST(ZipfSampler, TopRanksMatchExactProbabilities) {
  constexpr std::uint64_t kUsers = 10'000;
  constexpr int kDraws = 2'000'000;
  constexpr std::size_t kTop = 10;
  for (const double s : {0.5, 0.99, 1.0, 1.5}) {
    const ZipfSampler sampler(kUsers, s);
    SplitMix64 rng(11);
    std::vector<int> counts(kTop + 1, 0);
    int beyond_1000 = 0;
    for (int i = 0; i < kDraws; ++i) {
      const std::uint64_t rank = sampler.sample(rng);
      ASSERT_GE(rank, 1U);
      ASSERT_LE(rank, kUsers);
      if (rank <= kTop) ++counts[rank];
      if (rank > 1'000) ++beyond_1000;
    }
    const std::vector<double> exact = zipf_probabilities(kUsers, s, 1'000);
    for (std::size_t k = 1; k <= kTop; ++k) {
      const double p = exact[k - 1];
      const double sigma = std::sqrt(p * (1 - p) / kDraws);
      EXPECT_NEAR(counts[k] / static_cast<double>(kDraws), p, 5 * sigma) << "s=" << s << " k=" << k;
    }
    double head = 0;
    for (const double p : exact) head += p;
    const double tail = 1 - head;
    const double sigma = std::sqrt(tail * (1 - tail) / kDraws);
    EXPECT_NEAR(beyond_1000 / static_cast<double>(kDraws), tail, 5 * sigma) << "s=" << s;
  }
}

}  // namespace
}  // namespace anubis::harness::load
