// A logger that never blocks its caller: lines go into a bounded buffer and a background thread
// writes them to stderr. If stderr stalls (a full pipe, a stopped terminal) and the buffer fills,
// new lines are dropped and counted rather than stalling an event loop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace anubis {

class Logger {
 public:
  static constexpr std::size_t kMaxPending = 1024;

  Logger();
  // Writes every buffered line, then stops the writer thread.
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Queues one line (a newline is added). Holds a mutex only long enough to move the string.
  void log(std::string line);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> pending_;  // guarded by mutex_
  std::uint64_t dropped_ = 0;        // guarded by mutex_
  bool stopping_ = false;            // guarded by mutex_
  std::thread writer_;               // last: starts after every field above exists
};

}  // namespace anubis
