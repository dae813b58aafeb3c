// mutex: one std::unordered_map guarded by one std::mutex.
//
// Guarantees: every apply and lookup is linearizable (one lock orders them all).
// Costs: every worker and every balance query serialises on one lock and one cache line, so it
// stops scaling at the first contended core; with one worker it is the cheapest strategy.
// Loses whenever more than one thread updates at a time, most of all under skewed (hot-user)
// load, where the sharded strategy at least spreads the cold users.
#pragma once

#include <algorithm>
#include <mutex>

#include "balance_store.hpp"

namespace anubis {

class MutexLockState {
 public:
  static constexpr std::string_view kName = "mutex";

  explicit MutexLockState(const StoreConfig&) {}

  bool apply(const Event& e) {
    const HashedUser user(e.user.view());  // hashed before taking the lock
    std::lock_guard lock(mutex_);
    return apply_checked(entry_for(map_, user), e.delta);
  }

  Balance lookup(std::string_view name) const {
    const HashedUser user(name);
    std::lock_guard lock(mutex_);
    return find_balance(map_, user);
  }

  BalanceSnapshot snapshot() const {
    BalanceSnapshot out;
    {
      std::lock_guard lock(mutex_);
      append_entries(map_, out);
    }
    sort_by_user(out);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  BalanceMap map_;  // guarded by mutex_
};

static_assert(balance_store<MutexLockState>);

}  // namespace anubis
