#include "load/schedule.hpp"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace anubis::harness::load {
namespace {

constexpr std::int64_t kMs = 1'000'000;

// A connection with a scripted clock: each step() is one poll at the next now() value.
struct FakeConnection {
  FakeConnection(const OpenLoopConfig& config, std::size_t max_inflight,
                 std::int64_t timeout_ns = kNever)
      : schedule(config), window(max_inflight), timeout(timeout_ns) {}

  void step(std::int64_t now) {
    window.expire(now, timeout, [&](const InFlight& r) { timed_out.push_back(r.intended_ns); });
    schedule.poll(
        now, window.free(),
        [&](std::int64_t at) {
          sent.push_back(at);
          window.push({at, now, 0, 1});
        },
        [&](std::uint64_t first, std::uint64_t end) {
          for (std::uint64_t k = first; k < end; ++k) missed.push_back(schedule.config().at(k));
        });
  }
  // The server answers the oldest request.
  InFlight answer() { return window.pop(); }

  OpenLoopSchedule schedule;
  InFlightWindow window;
  std::int64_t timeout;
  std::vector<std::int64_t> sent;
  std::vector<std::int64_t> missed;
  std::vector<std::int64_t> timed_out;
};

OpenLoopConfig every_ms(std::int64_t max_lateness_ns = 5 * kMs) {
  OpenLoopConfig config;
  config.start_ns = 0;
  config.interval_ns = 1.0 * kMs;
  config.max_lateness_ns = max_lateness_ns;
  return config;
}

// Sends are due at start + k * interval, and each poll sends exactly those whose time has come.
TEST(OpenLoopSchedule, SendsWhatIsDue) {
  FakeConnection c(every_ms(), 100);
  c.step(-1);
  EXPECT_TRUE(c.sent.empty());
  c.step(0);
  EXPECT_EQ(c.sent, (std::vector<std::int64_t>{0}));
  c.step(kMs / 2);
  EXPECT_EQ(c.sent.size(), 1U);
  c.step(3 * kMs);  // a late poll sends everything due, each with its own intended time
  EXPECT_EQ(c.sent, (std::vector<std::int64_t>{0, kMs, 2 * kMs, 3 * kMs}));
  EXPECT_EQ(c.schedule.next_send(), 4 * kMs);
  EXPECT_TRUE(c.missed.empty());
}

// A fractional interval does not drift: send k is intended at round(k * interval).
TEST(OpenLoopSchedule, FractionalIntervalDoesNotDrift) {
  OpenLoopConfig config;
  config.interval_ns = 1e9 / 3;  // 3 per second
  config.max_lateness_ns = kNever;
  OpenLoopSchedule schedule(config);
  std::uint64_t sends = 0;
  schedule.poll(
      3'000'000'000, 100, [&](std::int64_t) { ++sends; },
      [](std::uint64_t, std::uint64_t) { FAIL(); });
  EXPECT_EQ(sends, 10U);  // 0, 1/3, ..., 3 s inclusive
  EXPECT_EQ(schedule.next_send(), 3'333'333'333);
}

// With the window full, due sends are missed (not queued), and once a reply frees a slot the
// next due send goes out on time: no burst of the missed ones.
TEST(OpenLoopSchedule, FullWindowMissesWithoutBurstAfterwards) {
  FakeConnection c(every_ms(), 2);
  c.step(0);
  c.step(kMs);
  ASSERT_EQ(c.sent.size(), 2U);                           // the window is full now
  for (std::int64_t t = 2; t <= 9; ++t) c.step(t * kMs);  // the server stalls for 8 ms
  EXPECT_EQ(c.missed.size(), 8U);
  c.answer();
  c.answer();
  c.step(10 * kMs);
  EXPECT_EQ(c.sent, (std::vector<std::int64_t>{0, kMs, 10 * kMs}));
  EXPECT_EQ(c.missed.size(), 8U);
}

// A client that was itself stalled (no poll for 20 ms) misses the sends further behind than
// max_lateness and sends only the recent ones, instead of bursting all 20.
TEST(OpenLoopSchedule, ClientStallMissesOldSends) {
  FakeConnection c(every_ms(5 * kMs), 100);
  c.step(0);
  c.step(20 * kMs);
  // Intended at 1..14 ms: more than 5 ms late at 20 ms; 15..20 ms: sent.
  EXPECT_EQ(c.missed.size(), 14U);
  EXPECT_EQ(c.sent, (std::vector<std::int64_t>{0, 15 * kMs, 16 * kMs, 17 * kMs, 18 * kMs, 19 * kMs,
                                               20 * kMs}));
}

// A poll far behind a schedule it cannot keep (one send per nanosecond, a second late) decides
// a billion sends in at most two calls for the misses: falling behind costs constant work, so a
// --rate far beyond capacity cannot make the client spend itself counting misses.
TEST(OpenLoopSchedule, FallingFarBehindCostsConstantWork) {
  OpenLoopConfig config;
  config.interval_ns = 1.0;
  config.max_lateness_ns = 5 * kMs;
  OpenLoopSchedule schedule(config);
  std::vector<std::int64_t> sent;
  std::uint64_t missed = 0;
  int missed_calls = 0;
  const std::int64_t now = 1'000 * kMs;
  schedule.poll(
      now, 4, [&](std::int64_t at) { sent.push_back(at); },
      [&](std::uint64_t first, std::uint64_t end) {
        missed += end - first;
        ++missed_calls;
      });
  // The oldest sends within max_lateness go out; everything older or beyond the window is missed.
  EXPECT_EQ(sent, (std::vector<std::int64_t>{now - 5 * kMs, now - 5 * kMs + 1, now - 5 * kMs + 2,
                                             now - 5 * kMs + 3}));
  EXPECT_EQ(sent.size() + missed, static_cast<std::uint64_t>(now) + 1);
  EXPECT_LE(missed_calls, 2);
  EXPECT_EQ(schedule.next_send(), now + 1);
}

// A poll with fewer free slots than due sends sends as many as fit, oldest first, and misses
// the rest.
TEST(OpenLoopSchedule, PartialWindow) {
  FakeConnection c(every_ms(), 3);
  c.step(4 * kMs);
  EXPECT_EQ(c.sent, (std::vector<std::int64_t>{0, kMs, 2 * kMs}));
  EXPECT_EQ(c.missed, (std::vector<std::int64_t>{3 * kMs, 4 * kMs}));
}

// A request unanswered for the timeout counts once, also after its late reply has come, and the
// requests after it time out on their own schedule.
TEST(OpenLoopSchedule, TimeoutsCountOnce) {
  FakeConnection c(every_ms(), 10, 3 * kMs);
  c.step(0);
  c.step(kMs);
  c.step(2 * kMs);
  EXPECT_TRUE(c.timed_out.empty());
  EXPECT_EQ(c.window.next_expiry(3 * kMs), 3 * kMs);
  c.step(3 * kMs);  // the request intended at 0 is 3 ms old
  EXPECT_EQ(c.timed_out, (std::vector<std::int64_t>{0}));
  c.step(3 * kMs);  // polled again: not counted twice
  EXPECT_EQ(c.timed_out.size(), 1U);
  c.step(4 * kMs + 1);
  EXPECT_EQ(c.timed_out, (std::vector<std::int64_t>{0, kMs}));
  EXPECT_EQ(c.window.next_expiry(3 * kMs), 5 * kMs);

  EXPECT_EQ(c.answer().intended_ns, 0);
  EXPECT_EQ(c.answer().intended_ns, kMs);
  c.step(4 * kMs + 2);  // the late replies are gone; nothing is counted twice
  EXPECT_EQ(c.timed_out.size(), 2U);
  EXPECT_EQ(c.window.next_expiry(3 * kMs), 5 * kMs);
  c.step(5 * kMs);
  EXPECT_EQ(c.timed_out, (std::vector<std::int64_t>{0, kMs, 2 * kMs}));
  EXPECT_EQ(c.answer().intended_ns, 2 * kMs);
}

// Timed-out requests keep their slots (their replies are still coming), so a window full of
// them makes sends miss.
TEST(OpenLoopSchedule, TimedOutRequestsKeepTheirSlots) {
  FakeConnection c(every_ms(), 2, kMs);
  c.step(0);
  c.step(kMs);
  c.step(5 * kMs);
  EXPECT_EQ(c.timed_out.size(), 2U);
  EXPECT_EQ(c.sent.size(), 2U);
  EXPECT_EQ(c.missed.size(), 4U);  // 2..5 ms
}

// The schedule ends at end_ns and after quota intended sends, missed ones included.
TEST(OpenLoopSchedule, EndAndQuota) {
  OpenLoopConfig config = every_ms();
  config.end_ns = 3 * kMs;
  FakeConnection ends(config, 100);
  ends.step(10 * kMs);
  EXPECT_EQ(ends.sent.size() + ends.missed.size(), 3U);  // 0, 1, 2 ms
  EXPECT_TRUE(ends.schedule.finished());

  config = every_ms();
  config.quota = 4;
  FakeConnection quota(config, 1);
  quota.step(0);
  quota.step(kMs);  // missed: the window of 1 is full
  quota.answer();
  quota.step(3 * kMs);
  EXPECT_EQ(quota.sent.size() + quota.missed.size(), 4U);
  EXPECT_TRUE(quota.schedule.finished());
  EXPECT_EQ(quota.schedule.next_send(), kNever);
}

// intended_before counts exactly the sends intended before a time, rounding included.
TEST(OpenLoopSchedule, IntendedBefore) {
  OpenLoopConfig config;
  config.start_ns = 7;
  config.interval_ns = 1e9 / 3;
  EXPECT_EQ(config.intended_before(7), 0U);
  EXPECT_EQ(config.intended_before(8), 1U);
  EXPECT_EQ(config.intended_before(7 + 333'333'333), 1U);
  EXPECT_EQ(config.intended_before(7 + 333'333'334), 2U);
  EXPECT_EQ(config.intended_before(1'000'000'007), 3U);
  EXPECT_EQ(config.intended_before(1'000'000'008), 4U);
}

// Closed-loop use of the window: a FIFO ring that wraps without losing order.
TEST(InFlightWindow, FifoAcrossWrap) {
  InFlightWindow window(3);
  std::int64_t next_in = 0;
  std::int64_t next_out = 0;
  for (int round = 0; round < 10; ++round) {
    while (window.free() > 0) window.push({next_in++, 0, 0, 0});
    window.set_written(3, 42);
    EXPECT_EQ(window.pop().intended_ns, next_out++);
    EXPECT_EQ(window.pop().written_ns, 42);
    ++next_out;
  }
  EXPECT_EQ(window.size(), 1U);
}

}  // namespace
}  // namespace anubis::harness::load
