// Stage 01 — a minimal TCP server: accept connections, read lines, print them.
//
// One io_context runs on one thread (main's). Every connection is an object that asks Asio to
// "read until the next newline, then call me back"; while it waits, the same thread serves the
// other connections. Nothing here blocks, so one thread is enough for many clients.
//
// Output (stdout, one line each, flushed so that a pipe sees it at once):
//   listening on 127.0.0.1:PORT                first, always: tests and lessons read the port
//   connection N opened                        a client connected (N counts from 1)
//   line: TEXT                                 a line a client sent, without its line ending
//   connection N closed                        the client hung up (or the connection failed)
#include <boost/asio.hpp>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// A line longer than this closes the connection: without a limit, a client that never sends a
// newline would make the server buffer forever. (The final server answers `line_too_long` and
// skips to the next newline instead: src/net.cpp.)
constexpr std::size_t kMaxLineBytes = 4096;

struct Options {
  std::uint16_t port = 0;  // 0: the kernel picks a free port
};

// Prints one whole line and flushes it, so a reader on a pipe sees it at once.
void print_line(std::string_view text) {
  std::cout << text << '\n' << std::flush;
}

// One client. Owned by the pending read: each callback holds a shared_ptr to the connection,
// so the object lives exactly as long as Asio has work for it, and closes its socket when the
// last callback lets go of it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::uint64_t id) : socket_(std::move(socket)), id_(id) {}

  void start() {
    print_line("connection " + std::to_string(id_) + " opened");
    read_line();
  }

 private:
  void read_line() {
    // Returns at once; Asio calls on_read later, on the io_context's thread, when buffer_ holds
    // a newline (or the read failed). Meanwhile the thread serves other connections.
    asio::async_read_until(
        socket_, buffer_, '\n',
        [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    if (ec) {
      // EOF, a reset, or a line longer than kMaxLineBytes. An unterminated last line is
      // dropped here; the final server processes it as if it ended with '\n'.
      print_line("connection " + std::to_string(id_) + " closed");
      return;  // no new read: the last shared_ptr goes away and the socket closes
    }
    // buffer_ may hold more than one line (a read takes what the kernel has); take the first n
    // bytes, which end with '\n', and leave the rest for the next read_until.
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n) - 1);
    buffer_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF clients (telnet)
    handle_line(line);
    read_line();
  }

  void handle_line(const std::string& line) { print_line("line: " + line); }

  tcp::socket socket_;
  asio::streambuf buffer_{kMaxLineBytes};
  std::uint64_t id_;
};

// A start-up failure (the port is taken, ...): main reports it and exits with status 2.
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An acceptor listening on 127.0.0.1:port. Throws StartupError naming the address and the reason
// (e.g. "cannot listen on 127.0.0.1:7003: Address already in use") instead of Asio's bare
// "bind: Address already in use".
tcp::acceptor open_acceptor(asio::io_context& io, std::uint16_t port) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  tcp::acceptor acceptor(io);
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw StartupError("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + ec.message());
  }
  return acceptor;
}

// Accepts connections forever: each accepted socket becomes a Connection, then we accept again.
class Listener {
 public:
  Listener(asio::io_context& io, std::uint16_t port) : acceptor_(open_acceptor(io, port)) {}

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
      if (!ec) std::make_shared<Connection>(std::move(socket), ++connections_)->start();
      accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
  std::uint64_t connections_ = 0;
};

// Reads a whole decimal number no larger than `max`; false if `text` is anything else.
bool parse_number(std::string_view text, std::uint64_t max, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

// Arguments are parsed by hand to keep the stage quick to compile; the final server uses CLI11.
bool parse_args(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    std::uint64_t value = 0;
    if (arg == "--port" && has_value && parse_number(argv[++i], 65535, value)) {
      options.port = static_cast<std::uint16_t>(value);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) try {
  Options options;
  if (!parse_args(argc, argv, options)) {
    std::cerr << "usage: step01 [--port N]\n";
    return 2;
  }
  asio::io_context io;
  Listener listener(io, options.port);
  listener.accept();

  // Ctrl-C (SIGINT) or SIGTERM stops the io_context, so run() returns and main exits normally.
  // stop() abandons whatever was in flight; stage 09 replaces it with a graceful drain.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](error_code, int) { io.stop(); });

  print_line("listening on 127.0.0.1:" + std::to_string(listener.port()));
  io.run();  // the one thread that runs every handler above
  return EXIT_SUCCESS;
} catch (const StartupError& e) {
  std::cerr << "step01: error: " << e.what() << '\n';
  return 2;
} catch (const std::exception& e) {
  // Anything else main throws (out of memory, ...) gets the same one line, with status 1.
  std::cerr << "step01: error: " << e.what() << '\n';
  return EXIT_FAILURE;
}
