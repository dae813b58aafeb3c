// anubis-load: a load generator and end-to-end checker for anubis-server (docs/PROTOCOL.md), and
// with --target redis for redis-server (RESP INCRBY/DECRBY), so the two can be driven alike.
//
// Each of --connections connections sends events (a user, buy or sell, an amount: keys.hpp),
// matches each reply to its oldest outstanding request (both servers answer in order per
// connection), records the latency and sends more. --verify then asks the server for the balance
// of every user the run touched and compares it with the sum of the events it accepted
// (verify.hpp); --user-prefix gives every run users of its own, so those sums are exact.
//
// Closed loop (default): every connection keeps --pipeline requests in flight, refilling its
// window in one write whenever no write is in progress. A request is timed from the write that
// carries it. While the server stalls the client sends nothing, so a stall is counted once, not
// once per request a real user population would have sent meanwhile ("coordinated omission"):
// closed-loop latency is the service time at saturation, and the output says so.
//
// Open loop (--rate R): each connection sends on a fixed schedule of R/connections events/s,
// whatever the server does, with at most --max-inflight outstanding; a request is timed from its
// *intended* send time, as wrk2 does, so a stall shows up in the latency of every request it
// delayed. Both that corrected latency and the uncorrected one (from the actual write) are
// reported. A send that finds no free slot, or that the client itself reaches more than
// kMaxSendLatenessNs (10 ms) late, is a missed send: counted, never sent later in a burst. A
// request unanswered --timeout-ms after its intended time counts as a timeout, and its reply, when
// it comes, is still timed. When there are missed sends or timeouts, the client could not keep up
// and says so (schedule.hpp).
//
// --warmup runs the same load first; its requests are verified but not measured. Threading and
// cost per request: see connection.hpp (one io_context and thread per shard, no locks, no
// allocation per request).
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "load/connection.hpp"
#include "load/options.hpp"
#include "load/protocol.hpp"
#include "load/report.hpp"
#include "load/verify.hpp"

namespace anubis::harness::load {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
// Open loop: a send the client reaches later than this after its intended time is missed rather
// than sent, which bounds any catch-up burst to what the schedule holds in 10 ms (schedule.hpp).
// Shorter client hiccups (a scheduler time slice on a busy machine is several ms) show up as
// corrected latency instead, as in wrk2.
constexpr std::int64_t kMaxSendLatenessNs = 10'000'000;
// Open loop: the schedule starts this long after the threads are created, so that starting them
// does not make the first sends late (and missed).
constexpr auto kOpenLoopLead = std::chrono::milliseconds(20);

std::int64_t seconds_to_ns(double seconds) {
  return static_cast<std::int64_t>(std::llround(seconds * 1e9));
}

// Pins the calling thread to `cpu`; warns once per process if the kernel refuses.
void pin_to(int cpu) {
  static std::atomic<bool> warned{false};
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0 && !warned.exchange(true)) {
    std::fprintf(stderr, "anubis-load: cannot pin to CPU %d (%s); running unpinned\n", cpu,
                 std::strerror(errno));
  }
}

// Runs the load with one protocol; fills `stats` (merged) and returns the exit code so far.
template <class Protocol>
int run_load(const Options& options, const tcp::resolver::results_type& endpoints,
             std::uint32_t threads, LoadStats& stats) {
  LoadPlan plan;
  plan.user_prefix = options.user_prefix;
  plan.mix = options.mix;
  plan.seed = options.seed;
  plan.connections = options.connections;
  plan.window = options.window();
  plan.open_loop = options.open_loop();
  plan.rate = options.rate.value_or(0.0);
  plan.timeout_ns = std::int64_t{options.timeout_ms} * 1'000'000;
  plan.max_lateness_ns = kMaxSendLatenessNs;
  plan.measure_start_ns = seconds_to_ns(options.warmup_s);
  if (!options.events) plan.send_end_ns = plan.measure_start_ns + seconds_to_ns(options.duration_s);

  std::vector<std::unique_ptr<Shard<Protocol>>> shards;
  for (std::uint32_t t = 0; t < threads; ++t) {
    shards.push_back(std::make_unique<Shard<Protocol>>(plan));
  }
  for (std::uint32_t i = 0; i < options.connections; ++i) {
    // --events is split as evenly as possible: the first (events % connections) get one more.
    const std::uint64_t quota = options.events
                                    ? *options.events / options.connections +
                                          (i < *options.events % options.connections ? 1 : 0)
                                    : std::numeric_limits<std::uint64_t>::max();
    shards[i % threads]->add_connection(i, quota);
  }

  const Clock::time_point connect_deadline = Clock::now() + kConnectTimeout;
  for (auto& shard : shards) {
    if (const error_code ec = shard->connect(endpoints, connect_deadline)) {
      std::fprintf(stderr, "anubis-load: cannot connect to %s:%" PRIu16 ": %s\n",
                   options.host.c_str(), options.port, ec.message().c_str());
      return kExitUnusable;
    }
  }

  // With --duration the series' length is known; +2 covers the drain after the last send.
  const std::size_t expected_seconds =
      options.events ? 0 : static_cast<std::size_t>(std::ceil(options.duration_s)) + 2;
  plan.epoch = Clock::now() + (plan.open_loop ? Clock::duration(kOpenLoopLead) : Clock::duration{});
  {
    std::vector<std::jthread> shard_threads;  // joined at the end of this scope
    for (std::uint32_t t = 0; t < threads; ++t) {
      shard_threads.emplace_back([&options, &shards, t, expected_seconds] {
        if (!options.cpus.empty()) pin_to(options.cpus[t % options.cpus.size()]);
        shards[t]->run(expected_seconds);
      });
    }
  }
  for (const auto& shard : shards) stats.merge(shard->stats());
  return kExitOk;
}

int run(int argc, char** argv) {
  Options options;
  if (const auto exit_code = parse_options(argc, argv, options)) return *exit_code;

  // Opened before the load so that an unwritable path fails in a second, not after the run.
  std::ofstream json_file;
  if (!options.json_out.empty()) {
    json_file.open(options.json_out);
    if (!json_file) {
      std::fprintf(stderr, "anubis-load: cannot write %s\n", options.json_out.c_str());
      return kExitUnusable;
    }
  }

  asio::io_context resolver_io;
  error_code ec;
  const auto endpoints =
      tcp::resolver(resolver_io).resolve(options.host, std::to_string(options.port), ec);
  if (ec) {
    std::fprintf(stderr, "anubis-load: cannot resolve %s: %s\n", options.host.c_str(),
                 ec.message().c_str());
    return kExitUnusable;
  }

  // More threads than connections would only add idle io_contexts.
  const std::uint32_t threads = std::min(options.threads, options.connections);
  LoadStats stats(options.mix.users, seconds_to_ns(options.warmup_s), options.open_loop());
  const int load_status = options.target == Target::redis
                              ? run_load<RespProtocol>(options, endpoints, threads, stats)
                              : run_load<AnubisProtocol>(options, endpoints, threads, stats);
  if (load_status != kExitOk) return load_status;

  // The measured phase runs from its start to the last reply; an open loop with --duration
  // offered load for all of --duration, so its rates are per that time even when the schedule
  // intended its last send long before the end (a rate below one event per connection).
  const std::int64_t measure_start_ns = seconds_to_ns(options.warmup_s);
  double elapsed_s = stats.last_reply_ns > measure_start_ns
                         ? static_cast<double>(stats.last_reply_ns - measure_start_ns) / 1e9
                         : 0.0;
  if (options.open_loop() && !options.events) elapsed_s = std::max(elapsed_s, options.duration_s);
  RunResult result{options, threads, stats, elapsed_s, std::nullopt};

  if (!options.quiet) print_summary(result);
  if (!kept_up(result) && options.quiet) {
    std::fprintf(stderr, "%s", could_not_keep_up(result).c_str());
  }
  if (!stats.first_error_reply.empty()) {
    std::fprintf(stderr, "anubis-load: first error reply: %s\n", stats.first_error_reply.c_str());
  }
  if (stats.failed_connections > 0) {
    std::fprintf(stderr, "anubis-load: %" PRIu64 " connections failed; first: %s\n",
                 stats.failed_connections, stats.first_failure.c_str());
  }

  int exit_code = stats.failed_connections > 0 ? kExitUnusable : kExitOk;
  if (options.verify && stats.unanswered > 0) {
    // An unanswered request may or may not have been applied: exact sums are unknowable.
    std::fprintf(stderr, "verify: skipped: %" PRIu64 " requests were never answered\n",
                 stats.unanswered);
    exit_code = std::max(exit_code, kExitVerifyFailed);
  } else if (options.verify) {
    const ExpectedSums expected{stats.expected_balance, stats.expected_events};
    result.verified =
        options.target == Target::redis
            ? verify_redis(options.host, options.port, options.user_prefix, expected)
            : verify_anubis(options.host, options.port, options.user_prefix, expected);
    const VerifyResult& verified = *result.verified;
    if (verified.outcome == VerifyOutcome::ok) {
      if (!options.quiet) {
        std::printf("verify: ok (%" PRIu64 " users checked)\n", verified.checked_users);
      }
    } else {
      const std::string_view outcome = to_string(verified.outcome);
      std::fprintf(
          stderr, "verify: FAILED (%.*s: %" PRIu64 " mismatches among %" PRIu64 " users checked)\n",
          static_cast<int>(outcome.size()), outcome.data(), verified.mismatches,
          verified.checked_users);
      const int code =
          verified.outcome == VerifyOutcome::connection_failed ? kExitUnusable : kExitVerifyFailed;
      exit_code = std::max(exit_code, code);
    }
  }

  if (json_file.is_open()) {
    json_file << json_report(result);
    json_file.close();
    if (!json_file) {
      std::fprintf(stderr, "anubis-load: writing %s failed\n", options.json_out.c_str());
      exit_code = kExitUnusable;
    }
  }
  return exit_code;
}

}  // namespace
}  // namespace anubis::harness::load

int main(int argc, char** argv) {
  try {
    return anubis::harness::load::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anubis-load: %s\n", e.what());
    return anubis::harness::load::kExitUnusable;
  }
}
