// The command line of anubis-load, parsed and checked (CLI11). Flags and defaults follow the
// load client's CLI contract; `anubis-load --help` lists them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "load/keys.hpp"

namespace anubis::harness::load {

inline constexpr int kExitOk = 0;
inline constexpr int kExitVerifyFailed = 1;  // a balance mismatch, or the server did not catch up
inline constexpr int kExitUnusable = 2;  // bad flags, or the server could not be reached or kept

enum class Target : std::uint8_t { anubis, redis };

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  Target target = Target::anubis;
  std::uint32_t connections = 50;
  std::uint32_t pipeline = 16;          // closed loop: requests in flight per connection
  std::optional<double> rate;           // set: open loop at this many events/s in total
  std::uint32_t max_inflight = 128;     // open loop: requests outstanding per connection
  std::uint32_t timeout_ms = 2'000;     // open loop
  std::optional<std::uint64_t> events;  // set: send exactly this many; unset: run for duration_s
  double duration_s = 10.0;
  double warmup_s = 0.0;
  EventMix mix{.users = 10'000};
  std::string user_prefix;
  std::uint64_t seed = 1;
  std::uint32_t threads = 1;
  std::vector<int> cpus;
  std::string json_out;
  bool verify = false;
  bool quiet = false;

  bool open_loop() const noexcept { return rate.has_value(); }
  // Requests a connection may have outstanding: its window.
  std::uint32_t window() const noexcept { return open_loop() ? max_inflight : pipeline; }
};

// Parses argv into `options`. Returns an exit code when the program should stop now (--help, or
// --check with valid flags: kExitOk; bad flags: kExitUnusable, with the reason on stderr), else
// nullopt.
std::optional<int> parse_options(int argc, char** argv, Options& options);

}  // namespace anubis::harness::load
