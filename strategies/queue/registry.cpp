// The queue registry: one row per strategy. Adding a strategy = one header + one row here.
#include "event_queue.hpp"
#include "lockfree_queue.hpp"
#include "mutex_queue.hpp"

namespace anubis {

std::span<const QueueStrategy> queue_strategies() {
  static const QueueStrategy kRows[] = {
      {MutexQueue::kName,
       "ring buffer under one std::mutex; consumers sleep on a condvar",
       {},
       &make_queue<MutexQueue>},
      {LockfreeQueue::kName,
       "Boost.Lockfree MPMC queue, fixed node pool; consumers spin briefly, then sleep",
       {.max_capacity = LockfreeQueue::kMaxCapacity},
       &make_queue<LockfreeQueue>},
  };
  return kRows;
}

}  // namespace anubis
