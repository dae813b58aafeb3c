#include "testing/stage_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include <gtest/gtest.h>

namespace anubis::steps {

namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

constexpr std::string_view kListening = "listening on 127.0.0.1:";

// A TCP port on 127.0.0.1 held by a listening socket for the object's lifetime, so that a stage
// told to use it fails to start.
class BusyPort {
 public:
  BusyPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(errno_text("socket"));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;  // any free port
    socklen_t length = sizeof address;
    // Listening, not just bound: a listener holds its port even against SO_REUSEADDR.
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 1) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      const std::string why = errno_text("bind/listen");
      ::close(fd_);
      throw std::runtime_error(why);
    }
    port_ = ntohs(address.sin_port);
  }
  ~BusyPort() { ::close(fd_); }
  BusyPort(const BusyPort&) = delete;
  BusyPort& operator=(const BusyPort&) = delete;

  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace

StageProcess::StageProcess(std::string binary, std::vector<std::string> args,
                           StageOptions options) {
  // Everything the child needs is prepared before fork(): between fork() and exec() the child of
  // a multi-threaded process may only call async-signal-safe functions.
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();

  int out[2];
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  if (options.capture_stderr && ::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::runtime_error(errno_text("pipe2"));
  }
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(errno_text("fork"));
  if (pid_ == 0) {
    // Child. If the test process dies, the stage dies with it instead of lingering.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(out[1], STDOUT_FILENO) < 0) ::_exit(127);
    if (err[1] >= 0 && ::dup2(err[1], STDERR_FILENO) < 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  stdout_fd_ = out[0];
  if (err[1] >= 0) {
    ::close(err[1]);
    stderr_fd_ = err[0];
  }
  pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pid_fd_ < 0) {
    kill_and_reap();
    throw std::runtime_error(errno_text("pidfd_open"));
  }
  reader_ = std::thread([this] { read_output(); });

  if (!options.wait_listening) return;
  const auto line = wait_for_line(kListening);
  std::uint16_t port = 0;
  if (line) {
    const std::string_view digits = std::string_view(*line).substr(kListening.size());
    std::from_chars(digits.data(), digits.data() + digits.size(), port);
  }
  if (port == 0) {
    kill_and_reap();
    throw std::runtime_error(binary + " printed no `listening on 127.0.0.1:PORT` line");
  }
  port_ = port;
}

StageProcess::~StageProcess() {
  kill_and_reap();
}

void StageProcess::read_output() {
  std::array<char, 8192> chunk;
  bool out_open = true;
  bool err_open = stderr_fd_ >= 0;
  while (out_open || err_open) {
    std::array<pollfd, 2> fds{pollfd{out_open ? stdout_fd_ : -1, POLLIN, 0},
                              pollfd{err_open ? stderr_fd_ : -1, POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else if (i == 1) {
        stderr_.append(chunk.data(), static_cast<std::size_t>(n));
      } else {
        partial_.append(chunk.data(), static_cast<std::size_t>(n));
        std::size_t begin = 0;
        for (std::size_t end; (end = partial_.find('\n', begin)) != std::string::npos;
             begin = end + 1) {
          lines_.emplace_back(partial_, begin, end - begin);
        }
        partial_.erase(0, begin);
      }
      changed_.notify_all();
    }
  }
  std::lock_guard lock(mutex_);
  output_done_ = true;
  changed_.notify_all();
}

std::optional<std::string> StageProcess::wait_for_line(std::string_view prefix, Deadline deadline) {
  std::unique_lock lock(mutex_);
  for (std::size_t seen = 0;;) {
    for (; seen < lines_.size(); ++seen) {
      if (lines_[seen].starts_with(prefix)) return lines_[seen];
    }
    if (output_done_) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
}

bool StageProcess::wait_for_count(std::string_view prefix, std::size_t count, Deadline deadline) {
  std::unique_lock lock(mutex_);
  std::size_t seen = 0;
  std::size_t found = 0;
  for (;;) {
    for (; seen < lines_.size(); ++seen) {
      if (lines_[seen].starts_with(prefix)) ++found;
    }
    if (found >= count) return true;
    if (output_done_) return false;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
  }
}

std::vector<std::string> StageProcess::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::vector<std::string> StageProcess::lines_with_prefix(std::string_view prefix) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> result;
  for (const std::string& line : lines_) {
    if (line.starts_with(prefix)) result.push_back(line);
  }
  return result;
}

std::string StageProcess::stderr_text() const {
  std::lock_guard lock(mutex_);
  return stderr_;
}

void StageProcess::signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

std::optional<int> StageProcess::wait_exit(Deadline deadline) {
  if (!reaped_) {
    pollfd fd{pid_fd_, POLLIN, 0};
    if (::poll(&fd, 1, test::poll_timeout_ms(deadline)) <= 0) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    reaped_ = true;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // The pipes reach EOF once the child (and anything it started) has closed them.
  std::unique_lock lock(mutex_);
  if (!changed_.wait_until(lock, deadline, [this] { return output_done_; })) return std::nullopt;
  return exit_status_;
}

void StageProcess::kill_and_reap() noexcept {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
  }
  if (reader_.joinable()) reader_.join();
  for (int* fd : {&pid_fd_, &stdout_fd_, &stderr_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void expect_refuses_busy_port(const std::string& binary, std::string_view stage) {
  const BusyPort busy;
  const std::string port = std::to_string(busy.port());
  StageProcess process(binary, {"--port", port}, {.wait_listening = false, .capture_stderr = true});
  EXPECT_EQ(process.wait_exit(), 2);
  EXPECT_EQ(process.stderr_text(), std::string(stage) + ": error: cannot listen on 127.0.0.1:" +
                                       port + ": Address already in use\n");
  EXPECT_TRUE(process.lines().empty());
}

std::optional<std::uint64_t> field(std::string_view line, std::string_view key) {
  const std::string needle = std::string(key) + "=";
  for (std::size_t at = line.find(needle); at != std::string_view::npos;
       at = line.find(needle, at + 1)) {
    if (at != 0 && line[at - 1] != ' ') continue;  // "rejected=" must not match "jected="
    const char* begin = line.data() + at + needle.size();
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(begin, line.data() + line.size(), value);
    if (ec == std::errc() && end != begin) return value;
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace anubis::steps
