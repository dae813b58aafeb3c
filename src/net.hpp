// The network side: a TCP listener and its connections on Boost.Asio, speaking the JSON-lines
// protocol of docs/PROTOCOL.md. Nothing here waits: reads, writes, timers and the queue
// hand-off (Pipeline::submit) all return at once, so one I/O thread serves every connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "balance_store.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "pipeline.hpp"

namespace anubis {

struct NetConfig {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 7878;
  std::size_t io_threads = 1;
  std::size_t max_line_bytes = 4096;  // before the line ending
  std::size_t max_connections = 10'000;
  // Since the client last sent a byte or took one of ours (a write of replies completed).
  std::chrono::milliseconds idle_timeout{300'000};
  std::size_t max_output_bytes = 1 << 20;  // unsent replies per connection before reading pauses
  std::chrono::milliseconds shutdown_timeout{5'000};  // for the network part of a shutdown
};

// Empty if the server could listen on bind:port now (`bind` an IPv4 or IPv6 literal of an
// interface of this machine, `port` free or 0), else why not, in the words a start would use.
std::string check_listen_address(const std::string& bind, std::uint16_t port);

namespace detail {
class ServerCore;
}

class Server {
 public:
  // Binds and listens. Throws std::runtime_error with a one-line reason (e.g. the port is taken).
  // pipeline, store, metrics and log must outlive the server.
  Server(const NetConfig& config, Pipeline& pipeline, AnyStore& store, Metrics& metrics,
         Logger& log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "HOST:PORT" actually bound (the port is the real one when NetConfig::port was 0).
  std::string local_address() const;

  // Starts the I/O threads. From now on SIGINT and SIGTERM call request_stop(); a later signal
  // is logged and changes nothing (the shutdown already under way still completes).
  void start();

  // Begins the graceful stop; callable from any thread, any number of times:
  //   close the listener -> pipeline.stop_intake() -> every connection stops reading, answers
  //   the lines it has already read, flushes its replies and closes (idle ones at once).
  // Connections still open after NetConfig::shutdown_timeout are closed, abandoning replies.
  void request_stop();

  // Blocks until a stop has begun and every connection is closed. After it returns no thread
  // calls Pipeline::submit() again.
  void wait_until_network_stopped();

  // Stops signal handling and joins the I/O threads. Call after the pipeline has drained, so
  // that signals stay handled while it drains.
  void join();

 private:
  std::unique_ptr<detail::ServerCore> core_;
};

}  // namespace anubis
