// Deadlines for the end-to-end tests: every wait in them is a poll() bounded by one of these,
// never a sleep. A deadline is a point in time, so a loop of several waits shares one budget.
#pragma once

#include <algorithm>
#include <chrono>

namespace anubis::test {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// The deadline `d` from now.
inline Deadline deadline_in(Clock::duration d) {
  return Clock::now() + d;
}

// Milliseconds left before `deadline`, as poll() takes them: 0 once it has passed, rounded up
// so that a wait never ends just before its deadline and spins for the last fraction.
inline int poll_timeout_ms(Deadline deadline) {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<long long>(ms, 1'000'000));
}

}  // namespace anubis::test
