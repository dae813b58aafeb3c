// anubis-load --target redis end to end: a real redis-server on a free port, the load client
// binary of this build tree (ANUBIS_LOAD_BINARY) against it, its exit status and JSON report.
// Plain POSIX, no Asio. Skipped when redis-server is not installed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "load/resp.hpp"

namespace anubis::harness::load {
namespace {

using Clock = std::chrono::steady_clock;
namespace json = boost::json;

constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kRunTimeout = std::chrono::seconds(120);

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long long>(0, left));
}

// A child process: fork + exec of argv, killed (SIGKILL) with the test if the test dies.
class Child {
 public:
  explicit Child(std::vector<std::string> args, bool quiet) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (quiet) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, STDOUT_FILENO);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ > 0) pid_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      wait(Clock::now() + std::chrono::seconds(10));
    }
    if (pid_fd_ >= 0) ::close(pid_fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0 && pid_fd_ >= 0; }

  // The exit status (128 + signal if killed), or nullopt if it is still running at `deadline`.
  std::optional<int> wait(Clock::time_point deadline) {
    if (status_) return status_;
    pollfd p{pid_fd_, POLLIN, 0};
    while (::poll(&p, 1, ms_left(deadline)) < 0 && errno == EINTR) {
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int pid_fd_ = -1;
  std::optional<int> status_;
};

// A blocking RESP connection to 127.0.0.1:port with deadlines, for PING and tampering.
class RawRedis {
 public:
  explicit RawRedis(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawRedis() { ::close(fd_); }
  RawRedis(const RawRedis&) = delete;
  RawRedis& operator=(const RawRedis&) = delete;

  // Sends one command and returns its reply as "<type byte><text or integer>", or nullopt.
  std::optional<std::string> call(const std::string& command, Clock::time_point deadline) {
    if (!connected_ || ::send(fd_, command.data(), command.size(), MSG_NOSIGNAL) !=
                           static_cast<ssize_t>(command.size())) {
      return std::nullopt;
    }
    std::string buffer;
    for (;;) {
      resp::Reply reply;
      const resp::Parsed parsed = resp::parse(buffer.data(), buffer.data() + buffer.size(), reply);
      if (parsed.status == resp::Status::malformed) return std::nullopt;
      if (parsed.status == resp::Status::complete) {
        const std::string value = reply.type == resp::Type::integer ? std::to_string(reply.integer)
                                                                    : std::string(reply.text);
        return static_cast<char>(reply.type) + value;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, ms_left(deadline)) <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// A port that was free a moment ago: bind port 0, read it, close.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// redis-server on a free port, without persistence, answering PING. Another process may take
// the port between free_port() and redis binding it; then redis exits and the next port is tried.
class RedisServer {
 public:
  RedisServer() {
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) {
      port_ = free_port();
      child_.emplace(
          std::vector<std::string>{kRedisServer, "--port", std::to_string(port_), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no"},
          true);
      const Clock::time_point deadline = Clock::now() + kStartTimeout;
      while (child_->started() && Clock::now() < deadline) {
        if (child_->wait(Clock::now() + std::chrono::milliseconds(20))) break;  // it exited
        RawRedis client(port_);
        if (client.call(resp::command({"PING"}), deadline) == "+PONG") {
          ready_ = true;
          break;
        }
      }
      if (!ready_) child_.reset();
    }
  }
  bool ready() const { return ready_; }
  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_ = 0;
  std::optional<Child> child_;
  bool ready_ = false;
};

struct LoadRun {
  std::optional<int> status;
  json::object report;
};

LoadRun run_load(const std::vector<std::string>& flags) {
  const std::string out =
      ::testing::TempDir() + "redis_target_test_" + std::to_string(::getpid()) + ".json";
  std::vector<std::string> args = {ANUBIS_LOAD_BINARY, "--json-out", out};
  args.insert(args.end(), flags.begin(), flags.end());
  LoadRun run;
  {
    Child load(args, false);
    run.status = load.wait(Clock::now() + kRunTimeout);
  }
  std::ifstream file(out);
  std::stringstream text;
  text << file.rdbuf();
  boost::system::error_code ec;
  const json::value value = json::parse(text.str(), ec);
  if (!ec && value.is_object()) run.report = value.as_object();
  ::unlink(out.c_str());
  return run;
}

class RedisTarget : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kRedisServer, X_OK) != 0) GTEST_SKIP() << "no " << kRedisServer;
    redis_.emplace();
    ASSERT_TRUE(redis_->ready()) << "redis-server did not start";
  }
  std::string port() const { return std::to_string(redis_->port()); }

  std::optional<RedisServer> redis_;
};

// A closed-loop pipelined run over RESP verifies exactly and reports schema 2 with every event
// accepted.
TEST_F(RedisTarget, ClosedLoopRunVerifies) {
  const LoadRun run =
      run_load({"--target", "redis", "--port", port(), "--connections", "4", "--pipeline", "8",
                "--events", "20000", "--users", "50", "--distribution", "zipf", "--verify"});
  ASSERT_EQ(run.status, 0);
  ASSERT_FALSE(run.report.empty());
  EXPECT_EQ(run.report.at("schema").as_int64(), 2);
  EXPECT_EQ(run.report.at("parameters").at("target").as_string(), "redis");
  const json::object& summary = run.report.at("summary").as_object();
  EXPECT_EQ(summary.at("sent").as_int64(), 20000);
  EXPECT_EQ(summary.at("accepted").as_int64(), 20000);
  EXPECT_EQ(summary.at("errors").as_int64(), 0);
  EXPECT_TRUE(run.report.at("verify").at("ok").as_bool());
  EXPECT_EQ(run.report.at("latency_us").at("count").as_int64(), 20000);
}

// An open-loop run with a warmup keeps the warmup out of the counts and still verifies.
TEST_F(RedisTarget, OpenLoopRunWithWarmupVerifies) {
  const LoadRun run =
      run_load({"--target", "redis", "--port", port(), "--connections", "2", "--rate", "400",
                "--warmup", "0.5", "--duration", "1", "--users", "20", "--verify"});
  ASSERT_EQ(run.status, 0);
  ASSERT_FALSE(run.report.empty());
  EXPECT_EQ(run.report.at("parameters").at("mode").as_string(), "open");
  const json::object& summary = run.report.at("summary").as_object();
  // 400/s for 1 s: every measured send is made or counted as missed, warmup ones are not.
  EXPECT_EQ(summary.at("sent").as_int64() + summary.at("missed_sends").as_int64(), 400);
  EXPECT_TRUE(run.report.at("verify").at("ok").as_bool());
}

// A key changed behind the client's back (an INCRBY by someone else) is reported as a mismatch
// with exit status 1.
TEST_F(RedisTarget, TamperedKeyIsDetected) {
  RawRedis intruder(redis_->port());
  ASSERT_EQ(intruder.call(resp::command({"INCRBY", "tamper-3", "1"}),
                          Clock::now() + std::chrono::seconds(10)),
            ":1");
  const LoadRun run =
      run_load({"--target", "redis", "--port", port(), "--connections", "2", "--events", "2000",
                "--users", "10", "--user-prefix", "tamper-", "--verify"});
  EXPECT_EQ(run.status, 1);
  ASSERT_FALSE(run.report.empty());
  EXPECT_EQ(run.report.at("verify").at("outcome").as_string(), "mismatch");
  EXPECT_EQ(run.report.at("verify").at("mismatches").as_int64(), 1);
}

}  // namespace
}  // namespace anubis::harness::load
