#include "support/client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace anubis::test {

Client::Client(std::uint16_t port, const ClientOptions& options) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (options.receive_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof(int));
  }
  if (options.send_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &options.send_buffer, sizeof(int));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = 0;
  do {
    rc = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const std::string why = std::strerror(errno);
    close();
    throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + ": " + why);
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

Client::~Client() {
  close();
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      in_(std::move(other.in_)),
      in_begin_(std::exchange(other.in_begin_, 0)),
      eof_(other.eof_) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    in_ = std::move(other.in_);
    in_begin_ = std::exchange(other.in_begin_, 0);
    eof_ = other.eof_;
  }
  return *this;
}

void Client::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<std::size_t> Client::try_send(std::string_view bytes) {
  for (;;) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return std::nullopt;
  }
}

bool Client::wait_writable(Deadline deadline) {
  return wait_for(POLLOUT, deadline);
}

bool Client::wait_ready(bool or_writable, Deadline deadline) {
  if (in_.find('\n', in_begin_) != std::string::npos) return true;
  return wait_for(static_cast<short>(POLLIN | (or_writable ? POLLOUT : 0)), deadline);
}

bool Client::wait_for(short events, Deadline deadline) {
  pollfd p{fd_, events, 0};
  for (;;) {
    const int ready = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool Client::send(std::string_view bytes, Deadline deadline) {
  while (!bytes.empty()) {
    const std::optional<std::size_t> n = try_send(bytes);
    if (!n) return false;
    bytes.remove_prefix(*n);
    if (*n == 0 && !wait_writable(deadline)) return false;
  }
  return true;
}

bool Client::fill(Deadline deadline) {
  if (eof_) return false;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {  // ECONNRESET and the like: the end too
      eof_ = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (ready == 0) return false;
    if (ready < 0 && errno != EINTR) return false;
  }
}

std::optional<std::string> Client::take_line() {
  const auto newline = in_.find('\n', in_begin_);
  if (newline == std::string::npos) {
    in_.erase(0, in_begin_);  // only the unterminated tail is kept
    in_begin_ = 0;
    return std::nullopt;
  }
  std::string line = in_.substr(in_begin_, newline - in_begin_);
  in_begin_ = newline + 1;
  return line;
}

std::optional<std::string> Client::read_line(Deadline deadline) {
  for (;;) {
    if (auto line = take_line()) return line;
    if (!fill(deadline)) return std::nullopt;
  }
}

std::vector<std::string> Client::read_lines(std::size_t n, Deadline deadline) {
  std::vector<std::string> lines;
  lines.reserve(n);
  while (lines.size() < n) {
    auto line = read_line(deadline);
    if (!line) break;
    lines.push_back(std::move(*line));
  }
  return lines;
}

std::vector<std::string> Client::read_ready_lines() {
  // A deadline already past: fill() reads what is there and never waits.
  while (fill(Clock::now())) {
  }
  std::vector<std::string> lines;
  while (auto line = take_line()) lines.push_back(std::move(*line));
  return lines;
}

std::vector<std::string> Client::read_until_eof(Deadline deadline, bool* closed) {
  std::vector<std::string> lines;
  for (;;) {
    while (auto line = take_line()) lines.push_back(std::move(*line));
    if (!fill(deadline)) break;
  }
  if (closed != nullptr) *closed = eof_;
  return lines;
}

bool Client::wait_closed(Deadline deadline) {
  while (fill(deadline)) {
    in_.clear();
    in_begin_ = 0;
  }
  return eof_;
}

std::optional<std::string> Client::request(std::string_view line, Deadline deadline) {
  std::string bytes(line);
  bytes += '\n';
  if (!send(bytes, deadline)) return std::nullopt;
  return read_line(deadline);
}

void Client::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

}  // namespace anubis::test
