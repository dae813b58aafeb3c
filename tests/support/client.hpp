// A test client: one TCP connection to the server on 127.0.0.1, speaking raw lines.
//
// The socket is non-blocking underneath and every wait is a poll() bounded by a deadline, so a
// server that stops answering fails the test at the deadline instead of hanging it. Not
// thread-safe: one Client per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/deadline.hpp"

namespace anubis::test {

// Deadline of the calls that take a default one: generous, for sanitizer builds of the server.
inline constexpr std::chrono::seconds kDefaultIoTimeout{30};

struct ClientOptions {
  // SO_RCVBUF / SO_SNDBUF set before connecting (0: the kernel's default, autotuned). A small
  // value pins the buffer, which keeps the bytes the kernel can absorb small and predictable.
  int receive_buffer = 0;
  int send_buffer = 0;
};

class Client {
 public:
  // Connects (blocking) to 127.0.0.1:port. The connect completes as soon as the kernel has
  // queued the connection, whether or not the server has accepted it. Throws
  // std::runtime_error on failure.
  explicit Client(std::uint16_t port, const ClientOptions& options = {});
  ~Client();
  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int fd() const { return fd_; }

  // Sends every byte, waiting for room until the deadline. False on a deadline or an error
  // (for instance EPIPE/ECONNRESET once the server has closed; SIGPIPE is never raised).
  bool send(std::string_view bytes, Deadline deadline = deadline_in(kDefaultIoTimeout));

  // Sends what fits now without waiting: the number of bytes written (0 if the socket buffer is
  // full), or nullopt on an error.
  std::optional<std::size_t> try_send(std::string_view bytes);

  // Waits until the socket can take more bytes; false at the deadline.
  bool wait_writable(Deadline deadline);

  // Waits until there is something to read (or the end of the connection), or, if `or_writable`,
  // room to send; false at the deadline.
  bool wait_ready(bool or_writable, Deadline deadline);

  // The next reply line, without its '\n'; nullopt at the deadline or at EOF (see eof()).
  std::optional<std::string> read_line(Deadline deadline = deadline_in(kDefaultIoTimeout));

  // Up to n lines: fewer only if the deadline passed or the connection ended first.
  std::vector<std::string> read_lines(std::size_t n,
                                      Deadline deadline = deadline_in(kDefaultIoTimeout));

  // The complete lines already received, without waiting.
  std::vector<std::string> read_ready_lines();

  // Every line until the server closes the connection; sets *closed to whether it did before
  // the deadline. An unterminated tail (which the server never sends) is dropped.
  std::vector<std::string> read_until_eof(Deadline deadline, bool* closed);

  // Discards whatever arrives until EOF or a reset; true if the connection ended in time.
  bool wait_closed(Deadline deadline);

  // send(line + '\n') then read_line(): one request, one reply.
  std::optional<std::string> request(std::string_view line,
                                     Deadline deadline = deadline_in(kDefaultIoTimeout));

  // shutdown(SHUT_WR): the server sees EOF and answers what it has before closing.
  void shutdown_write();

  // True once the server ended the connection (EOF or reset).
  bool eof() const { return eof_; }

 private:
  // Reads what the socket holds now into in_ (waiting until the deadline if it holds
  // nothing). False at the deadline or at the end of the connection.
  bool fill(Deadline deadline);
  std::optional<std::string> take_line();
  // poll() for `events` until the deadline; true if any (or an error/hang-up) is reported.
  bool wait_for(short events, Deadline deadline);
  void close() noexcept;

  int fd_ = -1;
  // Received bytes; those before in_begin_ were already returned as lines (erasing each line
  // from the front would make reading n lines cost O(n^2)).
  std::string in_;
  std::size_t in_begin_ = 0;
  bool eof_ = false;
};

}  // namespace anubis::test
