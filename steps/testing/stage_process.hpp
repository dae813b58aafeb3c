// A course stage under test, run as a child process.
//
// The stage binary is started with the test's arguments; a background thread reads its stdout
// (and, if asked, its stderr) line by line, so the stage never blocks on a full pipe while the
// test is busy sending, and the test waits for the lines it expects with a deadline instead of
// sleeping. Plain POSIX, no Asio: the stage tests compile fast.
//
// Sockets: use anubis::test::Client from tests/support/client.hpp (linked in with this library).
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/deadline.hpp"

namespace anubis::steps {

using test::Clock;
using test::Deadline;
using test::deadline_in;

// Generous, for sanitizer builds on a busy machine; a passing test never waits for it.
inline constexpr std::chrono::seconds kTimeout{60};

// True in a build under ThreadSanitizer (the `tsan` preset): tests that need TSan to show a
// failure GTEST_SKIP outside it.
#ifdef ANUBIS_STEPS_TSAN
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif

struct StageOptions {
  // Wait in the constructor for `listening on 127.0.0.1:PORT` and record the port.
  bool wait_listening = true;
  // Collect the child's stderr (stderr_text()) instead of sharing the test's stderr.
  bool capture_stderr = false;
};

class StageProcess {
 public:
  // Starts `binary args...`. Throws std::runtime_error if the start fails or (with
  // wait_listening) no `listening on` line comes within kTimeout.
  StageProcess(std::string binary, std::vector<std::string> args, StageOptions options = {});
  // SIGKILLs the stage if it is still running, reaps it and joins the reader thread.
  ~StageProcess();
  StageProcess(const StageProcess&) = delete;
  StageProcess& operator=(const StageProcess&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // The first stdout line starting with `prefix`, waiting for it until the deadline.
  std::optional<std::string> wait_for_line(std::string_view prefix,
                                           Deadline deadline = deadline_in(kTimeout));
  // Waits until at least `count` stdout lines start with `prefix`; false at the deadline.
  bool wait_for_count(std::string_view prefix, std::size_t count,
                      Deadline deadline = deadline_in(kTimeout));

  // Every complete stdout line so far, and those starting with `prefix`.
  std::vector<std::string> lines() const;
  std::vector<std::string> lines_with_prefix(std::string_view prefix) const;
  // The captured stderr so far (empty unless capture_stderr).
  std::string stderr_text() const;

  // Sends a signal (SIGINT, SIGTERM...) to the stage.
  void signal(int sig);
  // Waits for the stage to exit and for the end of its output. Returns the exit status
  // (128 + signal number if a signal killed it), or nullopt at the deadline.
  std::optional<int> wait_exit(Deadline deadline = deadline_in(kTimeout));

 private:
  void read_output();  // the reader thread: both pipes until EOF
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  int pid_fd_ = -1;  // readable once the child has exited
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;  // -1 unless capture_stderr
  std::uint16_t port_ = 0;
  bool reaped_ = false;
  int exit_status_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // notified on every new line and at EOF
  std::vector<std::string> lines_;   // guarded by mutex_
  std::string partial_;              // an unterminated stdout tail; guarded by mutex_
  std::string stderr_;               // guarded by mutex_
  bool output_done_ = false;         // both pipes reached EOF; guarded by mutex_
  std::thread reader_;               // started last, joined first
};

// Starts `binary --port P` while another socket listens on P, and expects what every stage does
// then: exit status 2, the single stderr line "<stage>: error: cannot listen on 127.0.0.1:P:
// Address already in use", and nothing on stdout (not an uncaught exception, status 134).
void expect_refuses_busy_port(const std::string& binary, std::string_view stage);

// The number after `key=` in `line` (e.g. field("stats: accepted=5", "accepted") == 5).
std::optional<std::uint64_t> field(std::string_view line, std::string_view key);

}  // namespace anubis::steps
