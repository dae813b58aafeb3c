#include "support/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace anubis::test {

namespace {

constexpr std::string_view kListening = "listening on ";
constexpr std::string_view kFinal = "final ";

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

std::string server_binary() {
  // ANUBIS_SERVER (set by ctest) wins; otherwise the server built next to this test.
  const char* binary = std::getenv("ANUBIS_SERVER");
  return binary == nullptr || *binary == '\0' ? ANUBIS_DEFAULT_SERVER : binary;
}

ServerProcess::ServerProcess(const std::vector<std::string>& flags, const ServerOptions& options) {
  const std::string binary = server_binary();
  // Everything the child needs is prepared before fork(): between fork() and exec() the child of
  // a multi-threaded process may only call async-signal-safe functions.
  std::vector<std::string> args = {binary, "--port", "0"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const rlimit files{options.max_open_files.value_or(0), options.max_open_files.value_or(0)};
  const bool limit_files = options.max_open_files.has_value();
  const pid_t parent = ::getpid();

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  pid_ = ::fork();
  if (pid_ < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    throw std::runtime_error(errno_text("fork"));
  }
  if (pid_ == 0) {
    // Child. If the test process dies, the server dies with it instead of lingering.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(pipe_fds[1], STDOUT_FILENO) < 0) ::_exit(127);
    if (limit_files && ::setrlimit(RLIMIT_NOFILE, &files) != 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    static constexpr char kExecFailed[] = "ServerProcess: exec of ANUBIS_SERVER failed\n";
    [[maybe_unused]] const ssize_t ignored =
        ::write(STDERR_FILENO, kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  ::fcntl(stdout_fd_, F_SETFL, ::fcntl(stdout_fd_, F_GETFL) | O_NONBLOCK);
  pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  try {
    if (pid_fd_ < 0) throw std::runtime_error(errno_text("pidfd_open"));
    read_port(deadline_in(options.start_timeout));
  } catch (...) {
    kill_and_reap();  // a constructor that throws gets no destructor call
    throw;
  }
}

void ServerProcess::read_port(Deadline deadline) {
  for (;;) {
    const auto newline = output_.find('\n');
    if (newline != std::string::npos) {
      const std::string line = output_.substr(0, newline);
      output_.erase(0, newline + 1);
      const auto colon = line.rfind(':');
      if (line.rfind(kListening, 0) != 0 || colon == std::string::npos) {
        throw std::runtime_error("unexpected first stdout line of the server: " + line);
      }
      port_ = static_cast<std::uint16_t>(std::stoul(line.substr(colon + 1)));
      listening_address_ = line.substr(kListening.size());
      return;
    }
    if (!read_stdout(deadline)) {
      throw std::runtime_error(stdout_eof_ ? "the server exited before listening (see stderr)"
                                           : "no `listening on` line from the server in time");
    }
  }
}

ServerProcess::~ServerProcess() {
  kill_and_reap();
}

void ServerProcess::kill_and_reap() noexcept {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (pid_fd_ >= 0) ::close(pid_fd_);
  stdout_fd_ = pid_fd_ = -1;
}

void ServerProcess::terminate() {
  if (!reaped_) ::kill(pid_, SIGTERM);
}

bool ServerProcess::read_stdout(Deadline deadline) {
  if (stdout_eof_) return false;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n > 0) {
      output_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      stdout_eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      stdout_eof_ = true;
      return false;
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (ready == 0) return false;
    if (ready < 0 && errno != EINTR) return false;
  }
}

std::optional<int> ServerProcess::wait_exit(Deadline deadline) {
  if (!reaped_) {
    // Stdout first: the server closes it only by exiting, and a full pipe could block it.
    while (read_stdout(deadline)) {
    }
    if (!stdout_eof_) return std::nullopt;
    pollfd p{pid_fd_, POLLIN, 0};
    while (::poll(&p, 1, poll_timeout_ms(deadline)) < 0 && errno == EINTR) {
    }
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done != pid_) return std::nullopt;
    reaped_ = true;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return exit_status_;
}

std::optional<std::string> ServerProcess::final_json() const {
  std::size_t begin = 0;
  std::optional<std::string> found;
  while (begin < output_.size()) {
    std::size_t end = output_.find('\n', begin);
    if (end == std::string::npos) end = output_.size();
    const std::string_view line(output_.data() + begin, end - begin);
    if (line.substr(0, kFinal.size()) == kFinal) found = std::string(line.substr(kFinal.size()));
    begin = end + 1;
  }
  return found;
}

}  // namespace anubis::test
