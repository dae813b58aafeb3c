#include "load/options.hpp"

#include <netdb.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <CLI/CLI.hpp>

namespace anubis::harness::load {
namespace {

constexpr std::size_t kMaxUserBytes = 64;  // protocol limit on a user name
// Expected sums take 16 bytes per user per thread; this caps them at 160 MB a thread.
constexpr std::uint32_t kMaxUsers = 10'000'000;
constexpr std::uint32_t kMaxWindow = 4'096;
constexpr std::uint32_t kMaxConnections = 10'000;
constexpr std::uint64_t kMaxEvents = 1'000'000'000'000;

// Empty if `path` could be opened for writing, else why not; creates and truncates nothing, so
// that --check leaves no trace.
std::string check_writable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return "is a directory";
    return ::access(path.c_str(), W_OK) == 0 ? std::string() : std::strerror(errno);
  }
  if (errno != ENOENT) return std::strerror(errno);
  // stat follows links: a link whose target is missing would be written through to a place
  // this check has not looked at.
  if (::lstat(path.c_str(), &st) == 0) return "is a symbolic link to nothing";
  const std::size_t slash = path.find_last_of('/');
  const std::string directory = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  return ::access(directory.c_str(), W_OK | X_OK) == 0 ? std::string() : std::strerror(errno);
}

// Empty if every CPU in `cpus` is one this process may run on, else the first that is not. A
// CPU outside the affinity mask could not be pinned to, and the report would claim a pinning
// that never happened.
std::string check_cpus(const std::vector<int>& cpus) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0)
    return {};  // cannot tell: let pin_to warn
  for (const int cpu : cpus) {
    if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) {
      return "CPU " + std::to_string(cpu) + " is not one this process may run on (" +
             std::to_string(CPU_COUNT(&allowed)) + " allowed; see `taskset -cp $$`)";
    }
  }
  return {};
}

// Empty if `host` resolves to a TCP address, else the resolver's reason.
std::string check_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int error = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (error != 0) return ::gai_strerror(error);
  ::freeaddrinfo(found);
  return {};
}

int refuse(const std::string& why) {
  std::fprintf(stderr, "anubis-load: %s\n", why.c_str());
  return kExitUnusable;
}

}  // namespace

std::optional<int> parse_options(int argc, char** argv, Options& options) {
  CLI::App app{
      "anubis-load: load generator and balance checker for anubis-server (or redis-server).\n"
      "Closed loop by default (--pipeline requests in flight per connection); open loop with\n"
      "--rate (a fixed schedule, latency counted from each request's intended send time)."};
  options.user_prefix = "load" + std::to_string(::getpid()) + "-";
  std::uint64_t events = 0;
  double rate = 0;
  // Names are parsed as text and mapped after parsing: CLI11 cannot print enum values, so a
  // transformer over an enum map garbles --help and its own error messages.
  std::string target = "anubis";
  std::string distribution = "uniform";

  app.add_option("--host", options.host, "Server address")->capture_default_str();
  app.add_option("--port", options.port, "Server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--target", target, "Protocol: anubis (JSON lines) or redis (RESP)")
      ->check(CLI::IsMember({"anubis", "redis"}))
      ->capture_default_str();
  app.add_option("--connections", options.connections, "TCP connections")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxConnections));
  auto* pipeline_option = app.add_option("--pipeline", options.pipeline,
                                         "Closed loop: requests in flight per connection")
                              ->capture_default_str()
                              ->check(CLI::Range(1U, kMaxWindow));
  auto* rate_option =
      app.add_option("--rate", rate, "Open loop: events/s in total, spread over the connections")
          ->check(CLI::Range(1e-3, 1e9));
  auto* max_inflight_option =
      app.add_option("--max-inflight", options.max_inflight,
                     "Open loop: requests outstanding per connection; a send finding none free is "
                     "missed")
          ->capture_default_str()
          ->check(CLI::Range(1U, kMaxWindow));
  auto* timeout_option =
      app.add_option("--timeout-ms", options.timeout_ms,
                     "Open loop: a request unanswered this long after its intended send times out")
          ->capture_default_str()
          ->check(CLI::Range(1U, 3'600'000U));
  auto* events_option =
      app.add_option("--events", events, "Total events across all connections, then stop")
          ->check(CLI::Range(std::uint64_t{1}, kMaxEvents));
  auto* duration_option = app.add_option("--duration", options.duration_s,
                                         "Seconds of measured load (without --events)")
                              ->capture_default_str()
                              ->check(CLI::Range(0.001, 1e6));
  events_option->excludes(duration_option);
  app.add_option("--warmup", options.warmup_s,
                 "Seconds of the same load before the measured phase (not in latency or rates; "
                 "verified)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--users", options.mix.users, "Distinct users the events are spread over")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxUsers));
  app.add_option("--distribution", distribution, "How users are picked")
      ->check(CLI::IsMember({"uniform", "zipf"}))
      ->capture_default_str();
  auto* zipf_s_option =
      app.add_option("--zipf-s", options.mix.zipf_s, "Zipf exponent: P(user i) ∝ 1/(i+1)^s")
          ->capture_default_str()
          ->check(CLI::Range(1e-6, 100.0));
  app.add_option("--sell-ratio", options.mix.sell_ratio, "Share of events that are sells")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--user-prefix", options.user_prefix,
                 "User (key) name prefix; the default is unique per process, so runs never share "
                 "users")
      ->capture_default_str();
  // Taken as text and parsed below: CLI11's conversion wraps "-1" to 2^64 - 1 and clamps values
  // past 2^64 - 1 to it, so a run would silently use another seed than the one recorded.
  std::string seed = std::to_string(options.seed);
  app.add_option("--seed", seed, "Seed of the event sequences (0 to 2^64 - 1)")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "Client I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1U, kMaxConnections));
  app.add_option("--cpus", options.cpus, "Pin the I/O threads round-robin to these CPUs (e.g. 0,1)")
      ->delimiter(',')
      ->check(CLI::Range(0, 4095));
  auto* json_out_option = app.add_option("--json-out", options.json_out,
                                         "Write parameters and results to FILE as JSON");
  app.add_flag("--verify", options.verify,
               "After the load, check every touched user's balance against the accepted events");
  app.add_flag("--quiet", options.quiet, "Print nothing to stdout (errors still go to stderr)");
  bool check_only = false;
  app.add_flag("--check", check_only,
               "Validate the flags and exit 0 without connecting (exit 2 and the reason if not)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUnusable;
  }
  options.target = target == "redis" ? Target::redis : Target::anubis;
  options.mix.distribution = distribution == "zipf" ? Distribution::zipf : Distribution::uniform;
  if (events_option->count() > 0) options.events = events;
  const auto [seed_end, seed_error] =
      std::from_chars(seed.data(), seed.data() + seed.size(), options.seed);
  if (seed_error != std::errc() || seed_end != seed.data() + seed.size()) {
    return refuse("--seed must be a whole number from 0 to 18446744073709551615, not '" + seed +
                  "'");
  }
  if (zipf_s_option->count() > 0 && options.mix.distribution != Distribution::zipf) {
    return refuse("--zipf-s applies to --distribution zipf only");
  }
  // CLI::Range lets NaN through (every comparison with it is false); infinities it refuses.
  const std::pair<const char*, double> reals[] = {{"--rate", rate},
                                                  {"--duration", options.duration_s},
                                                  {"--warmup", options.warmup_s},
                                                  {"--zipf-s", options.mix.zipf_s},
                                                  {"--sell-ratio", options.mix.sell_ratio}};
  for (const auto& [flag, value] : reals) {
    if (!std::isfinite(value)) return refuse(std::string(flag) + " must be a finite number");
  }
  if (rate_option->count() > 0) {
    if (pipeline_option->count() > 0) return refuse("--pipeline applies to the closed loop only");
    options.rate = rate;
  } else {
    for (const CLI::Option* open_loop_only : {max_inflight_option, timeout_option}) {
      if (open_loop_only->count() > 0) {
        return refuse(open_loop_only->get_name() + " applies to the open loop (--rate) only");
      }
    }
  }
  if (std::string why = check_cpus(options.cpus); !why.empty()) return refuse("--cpus: " + why);
  if (json_out_option->count() > 0) {
    if (options.json_out.empty()) return refuse("--json-out needs a file name");
    if (std::string why = check_writable(options.json_out); !why.empty()) {
      return refuse("--json-out " + options.json_out + ": " + why);
    }
  }

  // Names go into the requests unescaped: keep them to characters JSON needs no escape for (and
  // RESP none at all, as it length-prefixes keys).
  const bool printable =
      std::all_of(options.user_prefix.begin(), options.user_prefix.end(),
                  [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '\\'; });
  if (!printable) {
    return refuse("--user-prefix must be printable ASCII without spaces, '\"' or '\\'");
  }
  if (options.user_prefix.size() + std::to_string(options.mix.users - 1).size() > kMaxUserBytes) {
    return refuse("--user-prefix too long: user names are at most " +
                  std::to_string(kMaxUserBytes) + " bytes");
  }
  if (check_only) {
    // The run resolves the host with its own resolver; the same lookup here means that a host
    // the run could not reach by name is refused now.
    if (std::string why = check_host(options.host); !why.empty()) {
      return refuse("cannot resolve " + options.host + ": " + why);
    }
    // Every check a run makes before connecting has passed: the run would accept this.
    return kExitOk;
  }
  return std::nullopt;
}

}  // namespace anubis::harness::load
