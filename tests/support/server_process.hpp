// The server under test as a child process: the binary named by ANUBIS_SERVER (by default the
// anubis-server of the same build tree), started with `--port 0` plus the test's flags, its
// stdout on a pipe (the `listening on` and `final` lines) and its stderr shared with the test's,
// so server logs land in the test output.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/deadline.hpp"

namespace anubis::test {

// The path of the server binary under test.
std::string server_binary();

struct ServerOptions {
  // Sets both the soft and the hard RLIMIT_NOFILE of the child before exec. The server raises
  // its soft limit to the hard one at start, so only lowering both really limits it.
  std::optional<rlim_t> max_open_files;
  // How long the server may take to print its `listening on` line.
  Clock::duration start_timeout = std::chrono::seconds(10);
};

class ServerProcess {
 public:
  // Starts the server and waits for its `listening on 127.0.0.1:PORT` line. Throws
  // std::runtime_error if the exec fails or no such line comes in time (for instance because
  // the flags were refused).
  explicit ServerProcess(const std::vector<std::string>& flags, const ServerOptions& options = {});
  // SIGKILLs the server if it is still running, and reaps it.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  std::uint16_t port() const { return port_; }
  // The address the server printed after "listening on " (e.g. "127.0.0.1:41235").
  const std::string& listening_address() const { return listening_address_; }
  pid_t pid() const { return pid_; }

  // Sends SIGTERM: the server begins its graceful shutdown.
  void terminate();

  // Waits until the server has exited, collecting the rest of its stdout meanwhile. Returns the
  // exit status (128 + signal number if a signal ended it), or nullopt at the deadline.
  std::optional<int> wait_exit(Deadline deadline);

  // Everything the server printed on stdout after the `listening on` line (complete once
  // wait_exit() has returned a status).
  const std::string& output() const { return output_; }

  // The JSON object of the `final {...}` line, if the server printed one.
  std::optional<std::string> final_json() const;

 private:
  // Reads what the stdout pipe holds now, or waits for it until `deadline`. Returns false when
  // nothing more will come (EOF) or the deadline passed.
  bool read_stdout(Deadline deadline);
  // Waits for the `listening on` line and records the address and port.
  void read_port(Deadline deadline);
  // SIGKILLs the server unless it was reaped already, reaps it and closes the descriptors.
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;  // read end of the child's stdout pipe
  int pid_fd_ = -1;     // pidfd of the child: readable once it has exited
  bool stdout_eof_ = false;
  bool reaped_ = false;
  int exit_status_ = -1;  // valid once reaped_
  std::uint16_t port_ = 0;
  std::string listening_address_;
  std::string output_;
};

}  // namespace anubis::test
