// The lock registry: one row per strategy. Adding a strategy = one header + one row here.
#include "balance_store.hpp"
#include "mutex_lock_state.hpp"
#include "sharded_lock_state.hpp"

namespace anubis {

std::span<const LockStrategy> lock_strategies() {
  static const LockStrategy kRows[] = {
      {MutexLockState::kName,
       "one unordered_map under one std::mutex",
       {.parallel_writers = false},
       &make_store<MutexLockState>},
      {ShardedLockState::kName,
       "users hashed over --shards maps, one std::mutex each",
       {.parallel_writers = true},
       &make_store<ShardedLockState>},
  };
  return kRows;
}

}  // namespace anubis
