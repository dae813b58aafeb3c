// sharded: the users are split over N maps by a hash of the name, each map under its own mutex.
//
// Guarantees: every apply and lookup of one user is linearizable (the user always maps to the
// same shard); operations on different shards proceed in parallel.
// Costs: N mutexes and maps (each shard on its own cache lines, so shards do not falsely
// share); one hash per operation to pick the shard. A snapshot locks the shards one at a time.
// Loses when the load is dominated by one hot user (all its updates still serialise on one
// shard) and, slightly, to the single mutex when only one thread ever writes.
#pragma once

#include <algorithm>
#include <bit>
#include <mutex>
#include <vector>

#include "balance_store.hpp"
#include "padded.hpp"

namespace anubis {

class ShardedLockState {
 public:
  static constexpr std::string_view kName = "sharded";

  // The shard count is rounded up to a power of two so that picking a shard is a shift.
  explicit ShardedLockState(const StoreConfig& config)
      : shards_(std::bit_ceil(std::max<std::size_t>(config.shards, 1))),
        shift_(64 - std::countr_zero(shards_.size())) {}

  bool apply(const Event& e) {
    const HashedUser user(e.user.view());
    Shard& shard = shards_[shard_index(user)];
    std::lock_guard lock(shard.mutex);
    return apply_checked(entry_for(shard.map, user), e.delta);
  }

  Balance lookup(std::string_view name) const {
    const HashedUser user(name);
    const Shard& shard = shards_[shard_index(user)];
    std::lock_guard lock(shard.mutex);
    return find_balance(shard.map, user);
  }

  BalanceSnapshot snapshot() const {
    BalanceSnapshot out;
    for (const Shard& shard : shards_) {
      std::lock_guard lock(shard.mutex);
      append_entries(shard.map, out);
    }
    sort_by_user(out);
    return out;
  }

 private:
  struct alignas(kCacheLine) Shard {
    mutable std::mutex mutex;
    BalanceMap map;  // guarded by mutex
  };

  std::size_t shard_index(const HashedUser& user) const {
    // Fibonacci hashing: the top bits of hash * 2^64/phi, so the shard index does not reuse the
    // low bits the map's own buckets are chosen by. With one shard the shift is 64, which C++
    // leaves undefined, hence the explicit case.
    if (shards_.size() == 1) return 0;
    const std::uint64_t h = UserHash{}(user)*0x9E3779B97F4A7C15ull;
    return static_cast<std::size_t>(h >> shift_);
  }

  std::vector<Shard> shards_;
  int shift_;
};

static_assert(balance_store<ShardedLockState>);

}  // namespace anubis
