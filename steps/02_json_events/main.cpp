// Stage 02 — parse each line as a JSON event; refuse invalid input with a reason.
//
// The network part is stage 01's. New: parse_event() turns a line such as
//   {"user":"alice","action":"buy","amount":100}
// into an Event, or says precisely why it cannot. Validating at the edge means everything behind
// it (channels, workers, balances in later stages) only ever sees well-formed events.
//
// Output (stdout, one line each, flushed so that a pipe sees it at once):
//   listening on 127.0.0.1:PORT                first, always: tests and lessons read the port
//   connection N opened                        a client connected (N counts from 1)
//   event: user=U action=buy|sell amount=A     a valid event
//   invalid: REASON                            a line that is not one, and why
//   connection N closed                        the client hung up (or the connection failed)
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace json = boost::json;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// A line longer than this closes the connection: without a limit, a client that never sends a
// newline would make the server buffer forever. (The final server answers `line_too_long` and
// skips to the next newline instead: src/net.cpp.)
constexpr std::size_t kMaxLineBytes = 4096;

// The protocol's limits (docs/PROTOCOL.md): a user name of 1..64 bytes, an amount of 1..10^9.
constexpr std::size_t kMaxUserBytes = 64;
constexpr std::int64_t kMaxAmount = 1'000'000'000;

enum class Action { buy, sell };

// One validated event. The final server stores the name inline in a fixed-size array and the
// amount as a signed delta, so an Event never allocates (src/event.hpp); a std::string is
// simpler to read.
struct Event {
  std::string user;
  Action action = Action::buy;
  std::int64_t amount = 0;
};

struct Options {
  std::uint16_t port = 0;  // 0: the kernel picks a free port
};

// Prints one whole line and flushes it, so a reader on a pipe sees it at once.
void print_line(std::string_view text) {
  std::cout << text << '\n' << std::flush;
}

std::string describe(const Event& event) {
  return "user=" + event.user + " action=" + (event.action == Action::buy ? "buy" : "sell") +
         " amount=" + std::to_string(event.amount);
}

// Parses one line into an Event. On failure returns nullopt and sets `error` to a reason a
// client could act on. Every field is checked for its type and range: JSON numbers may be
// 1.5 or 1e400, strings may be empty, and any field may be missing or unexpected.
std::optional<Event> parse_event(std::string_view line, std::string& error) {
  error_code ec;
  const json::value value = json::parse(line, ec);
  if (ec) {
    error = "not JSON (" + ec.message() + ")";
    return std::nullopt;
  }
  const json::object* object = value.if_object();
  if (object == nullptr) {
    error = "an event must be a JSON object";
    return std::nullopt;
  }
  // The DOM keeps only the last of two equal keys; the final server parses with a SAX handler
  // to refuse duplicates (src/request.cpp).
  for (const auto& entry : *object) {
    if (entry.key() != "user" && entry.key() != "action" && entry.key() != "amount") {
      error = "unknown field \"" + std::string(entry.key()) + "\"";
      return std::nullopt;
    }
  }
  for (const std::string_view name : {"user", "action", "amount"}) {
    if (!object->contains(name)) {
      error = "missing field \"" + std::string(name) + "\"";
      return std::nullopt;
    }
  }
  Event event;
  const json::value& user = object->at("user");
  if (!user.is_string() || user.get_string().empty() || user.get_string().size() > kMaxUserBytes) {
    error = "user must be a string of 1 to 64 bytes";
    return std::nullopt;
  }
  event.user = user.get_string();
  const json::value& action = object->at("action");
  if (action == "buy") {
    event.action = Action::buy;
  } else if (action == "sell") {
    event.action = Action::sell;
  } else {
    error = "action must be \"buy\" or \"sell\"";
    return std::nullopt;
  }
  // Only an integer counts: 100.0 or "100" are refused rather than converted.
  const json::value& amount = object->at("amount");
  if (!amount.is_int64() || amount.get_int64() < 1 || amount.get_int64() > kMaxAmount) {
    error = "amount must be an integer from 1 to 1000000000";
    return std::nullopt;
  }
  event.amount = amount.get_int64();
  return event;
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

  void handle_line(const std::string& line) {
    std::string error;
    if (const std::optional<Event> event = parse_event(line, error)) {
      print_line("event: " + describe(*event));
    } else {
      print_line("invalid: " + error);
    }
  }

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
    std::cerr << "usage: step02 [--port N]\n";
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
  std::cerr << "step02: error: " << e.what() << '\n';
  return 2;
} catch (const std::exception& e) {
  // Anything else main throws (out of memory, ...) gets the same one line, with status 1.
  std::cerr << "step02: error: " << e.what() << '\n';
  return EXIT_FAILURE;
}
