// anubis-server: parses the command line, assembles the engine from the three strategy
// registries, serves until SIGINT/SIGTERM, and shuts down in order:
//   stop accepting and reading -> answer and flush -> drain the queue -> join -> report.
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "balance_store.hpp"
#include "event_queue.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "net.hpp"
#include "pipeline.hpp"
#include "reply.hpp"
#include "state.hpp"

namespace {

using namespace anubis;

struct Options {
  NetConfig net;
  PipelineConfig pipeline;
  StoreConfig store;
  std::string queue = "mutex";
  std::string lock = "sharded";
  std::string concurrency = "direct";
  double idle_timeout_s = 300;
  double shutdown_timeout_s = 5;
  double work_us = 0;
  std::string state_out;
  bool list_strategies = false;
  bool check_only = false;
};

// "name: description" for every row, one per line: the registry as --help shows it.
template <class Row>
std::string describe_rows(std::span<const Row> rows) {
  std::string out;
  for (const Row& row : rows) {
    out += "\n  ";
    out += row.name;
    out += ": ";
    out += row.description;
  }
  return out;
}

template <class Row>
std::vector<std::string> row_names(std::span<const Row> rows) {
  std::vector<std::string> names;
  for (const Row& row : rows) names.emplace_back(row.name);
  return names;
}

// The registries as JSON, for tools that enumerate the axes (the harness reads this).
void print_strategies() {
  std::string out = "{\"queue\":[";
  bool first = true;
  for (const auto& row : queue_strategies()) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    append_json_string(out, row.name);
    out += ",\"description\":";
    append_json_string(out, row.description);
    out += ",\"max_capacity\":" + std::to_string(row.capabilities.max_capacity) + '}';
  }
  out += "],\"lock\":[";
  first = true;
  for (const auto& row : lock_strategies()) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    append_json_string(out, row.name);
    out += ",\"description\":";
    append_json_string(out, row.description);
    out += std::string(",\"parallel_writers\":") +
           (row.capabilities.parallel_writers ? "true" : "false") + '}';
  }
  out += "],\"concurrency\":[";
  first = true;
  for (const auto& row : concurrency_strategies()) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    append_json_string(out, row.name);
    out += ",\"description\":";
    append_json_string(out, row.description);
    out += '}';
  }
  out += "]}";
  std::puts(out.c_str());
}

// CLI::Range lets NaN through (every comparison with it is false); durations must be numbers.
const CLI::Validator kFinite(
    [](std::string& text) {
      try {
        return std::isfinite(std::stod(text)) ? std::string() : "must be a finite number";
      } catch (const std::exception&) {
        return std::string("must be a number");
      }
    },
    "FINITE");

void build_cli(CLI::App& app, Options& o) {
  app.description(
      "ANUBIS event server: JSON lines over TCP, a bounded queue, a worker pool and shared "
      "per-user balances. Protocol: docs/PROTOCOL.md.");
  app.add_option("--bind", o.net.bind, "Address to listen on")->capture_default_str();
  app.add_option("--port", o.net.port, "TCP port; 0 picks a free one")->capture_default_str();
  app.add_option("--io-threads", o.net.io_threads, "Threads running the event loop")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--workers", o.pipeline.workers, "Worker threads applying events")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--queue", o.queue, "Queue strategy:" + describe_rows(queue_strategies()))
      ->check(CLI::IsMember(row_names(queue_strategies())))
      ->capture_default_str();
  app.add_option("--lock", o.lock, "State locking strategy:" + describe_rows(lock_strategies()))
      ->check(CLI::IsMember(row_names(lock_strategies())))
      ->capture_default_str();
  app.add_option("--concurrency", o.concurrency,
                 "Pipeline strategy:" + describe_rows(concurrency_strategies()))
      ->check(CLI::IsMember(row_names(concurrency_strategies())))
      ->capture_default_str();
  app.add_option("--queue-capacity", o.pipeline.queue_capacity,
                 "Events the queue holds before replies become server_busy")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24))  // 16 Mi events, ~1.3 GB
      ->capture_default_str();
  app.add_option("--shards", o.store.shards, "Shards of --lock sharded (rounded up to 2^k)")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  app.add_option("--max-line-bytes", o.net.max_line_bytes,
                 "Longest line accepted, without its line ending")
      ->check(CLI::Range(std::size_t{64}, std::size_t{16} << 20))
      ->capture_default_str();
  app.add_option("--max-connections", o.net.max_connections,
                 "Connections served at once; one more gets too_many_connections")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--idle-timeout", o.idle_timeout_s,
                 "Seconds in which a client neither sends nor reads before it is closed")
      ->check(kFinite)
      ->check(CLI::Range(0.001, 1e6))
      ->capture_default_str();
  app.add_option("--max-output-bytes", o.net.max_output_bytes,
                 "Unsent reply bytes per connection before the server stops reading it")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--shutdown-timeout", o.shutdown_timeout_s,
                 "Seconds a graceful stop may spend flushing replies (accepted events are "
                 "always applied)")
      ->check(kFinite)
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--work-us", o.work_us,
                 "Simulated CPU work per event, in microseconds (busy-wait in the worker)")
      ->check(kFinite)
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--state-out", o.state_out,
                 "After the drain, write every balance to this JSON file (atomically)");
  app.add_flag("--list-strategies", o.list_strategies,
               "Print the strategy registries as JSON and exit");
  app.add_flag("--check", o.check_only,
               "Check the flags (ranges, strategy capabilities, --state-out) and exit 0 without "
               "listening; a refusal is the same one-line error a start would give");
}

// Descriptors are connections: lift the soft limit to the hard one, as servers do.
void raise_descriptor_limit(std::size_t max_connections, Logger& log) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur != RLIM_INFINITY && max_connections + 64 > limit.rlim_cur) {
    log.log("note: --max-connections " + std::to_string(max_connections) +
            " exceeds the descriptor limit " + std::to_string(limit.rlim_cur) +
            "; when descriptors run out, accepting backs off and retries");
  }
}

int fail(const std::string& message) {
  std::cerr << "anubis-server: error: " << message << '\n';
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout (a supervisor that read only the `listening` line) must not kill the server
  // at its `final` line; sockets never raise SIGPIPE (Asio sends with MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  Options o;
  CLI::App app{"anubis-server"};
  build_cli(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }
  if (o.list_strategies) {
    print_strategies();
    return 0;
  }

  o.net.idle_timeout = std::chrono::milliseconds(static_cast<long>(o.idle_timeout_s * 1000));
  o.net.shutdown_timeout =
      std::chrono::milliseconds(static_cast<long>(o.shutdown_timeout_s * 1000));
  o.pipeline.work_per_event = std::chrono::nanoseconds(static_cast<long>(o.work_us * 1000));
  o.pipeline.io_threads = o.net.io_threads;
  o.pipeline.queue = find_strategy(queue_strategies(), o.queue);
  const LockStrategy* lock = find_strategy(lock_strategies(), o.lock);
  const ConcurrencyStrategy* concurrency = find_strategy(concurrency_strategies(), o.concurrency);
  if (std::string why = concurrency->check(o.pipeline); !why.empty()) return fail(why);
  // Found now rather than at start-up, so that --check refuses what a start would refuse.
  if (std::string why = check_listen_address(o.net.bind, o.net.port); !why.empty()) {
    return fail(why);
  }
  // Counted rather than tested for emptiness, so that an empty --state-out is refused rather
  // than silently writing nothing.
  if (app.get_option("--state-out")->count() > 0) {
    // Find out now, not after the drain, whether the file can be written.
    if (std::string why = check_state_file_path(o.state_out); !why.empty()) {
      return fail("--state-out: " + why);
    }
  }
  // Tools (the matrix runner) check every configuration of a run plan before starting any.
  if (o.check_only) return 0;

  Logger log;
  raise_descriptor_limit(o.net.max_connections, log);
  Metrics metrics;
  const std::unique_ptr<AnyStore> store = lock->make(o.store);
  const std::unique_ptr<Pipeline> pipeline = concurrency->make(o.pipeline, *store, metrics);
  std::optional<Server> server;
  try {
    server.emplace(o.net, *pipeline, *store, metrics, log);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  std::printf("listening on %s\n", server->local_address().c_str());
  std::fflush(stdout);
  log.log("anubis-server: queue=" + o.queue + " lock=" + o.lock + " concurrency=" + o.concurrency +
          " io-threads=" + std::to_string(o.net.io_threads) +
          " workers=" + std::to_string(o.pipeline.workers));

  server->start();
  server->wait_until_network_stopped();  // listener closed, every connection answered/closed
  pipeline->drain_and_join();            // every accepted event applied; signals still handled
  server->join();
  // Only this thread (and the logger, which blocks every signal) is left. From here a late
  // SIGINT/SIGTERM stays pending instead of killing the process while it reports: the drain is
  // over, so there is nothing left for a signal to stop.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  server.reset();

  int status = 0;
  if (!o.state_out.empty()) {
    if (std::string why = write_state_file(store->snapshot(), o.state_out); !why.empty()) {
      log.log("anubis-server: error: " + why);
      status = 1;
    }
  }
  std::printf("final %s\n", metrics_json(metrics.snapshot(pipeline->queue_depth())).c_str());
  std::fflush(stdout);
  return status;
}
