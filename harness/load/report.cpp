#include "load/report.hpp"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string_view>

namespace anubis::harness::load {
namespace {

// Writes one JSON document, members in call order: enough for --json-out and no more. The value
// setters have distinct names because overloads on uint64/double/bool/string_view would let a
// string literal bind to bool. An empty name writes an array element.
class JsonWriter {
 public:
  void begin(std::string_view name = {}) { open(name, '{'); }
  void end() { close('}'); }
  void begin_array(std::string_view name) { open(name, '['); }
  void end_array() { close(']'); }
  void integer(std::string_view name, std::uint64_t value) {
    key(name);
    append_number(value);
  }
  void real(std::string_view name, double value) {
    key(name);
    // JSON has no NaN or infinity; neither can occur in these figures, but never emit them.
    if (std::isfinite(value)) {
      append_number(value);
    } else {
      out_ += "null";
    }
  }
  void boolean(std::string_view name, bool value) {
    key(name);
    out_ += value ? "true" : "false";
  }
  void text(std::string_view name, std::string_view value) {
    key(name);
    append_string(value);
  }
  void null(std::string_view name) {
    key(name);
    out_ += "null";
  }
  const std::string& str() const noexcept { return out_; }

 private:
  void open(std::string_view name, char bracket) {
    key(name);
    out_ += bracket;
    first_ = true;
  }
  void close(char bracket) {
    out_ += bracket;
    first_ = false;
  }
  void key(std::string_view name) {
    if (!first_) out_ += ',';
    first_ = false;
    if (name.empty()) return;
    append_string(name);
    out_ += ':';
  }
  // Shortest text that reads back as the same value (std::to_chars), for doubles too.
  template <class Number>
  void append_number(Number value) {
    char buffer[32];
    out_.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
  }
  void append_string(std::string_view value) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_ += '"';
    for (const char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (byte < 0x20) {
        out_ += "\\u00";
        out_ += kHex[byte >> 4];
        out_ += kHex[byte & 0xf];
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }

  std::string out_;
  bool first_ = true;
};

double ns_to_us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e3;
}

double per_second(std::uint64_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

void latency_object(JsonWriter& json, std::string_view name, const Histogram& latency) {
  json.begin(name);
  json.real("p50", ns_to_us(latency.percentile(50)));
  json.real("p90", ns_to_us(latency.percentile(90)));
  json.real("p99", ns_to_us(latency.percentile(99)));
  json.real("p999", ns_to_us(latency.percentile(99.9)));
  json.real("max", ns_to_us(latency.max()));
  json.integer("count", latency.count());
  json.end();
}

std::string_view target_name(Target target) {
  return target == Target::redis ? "redis" : "anubis";
}

std::string format_latency(std::uint64_t ns) {
  char buffer[32];
  const auto value = static_cast<double>(ns);
  if (ns < 1'000'000) {
    std::snprintf(buffer, sizeof buffer, "%.0f us", value / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buffer, sizeof buffer, "%.1f ms", value / 1e6);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.2f s", value / 1e9);
  }
  return buffer;
}

void print_latency(const char* label, const Histogram& latency) {
  std::printf("  %s: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", label,
              format_latency(latency.percentile(50)).c_str(),
              format_latency(latency.percentile(90)).c_str(),
              format_latency(latency.percentile(99)).c_str(),
              format_latency(latency.percentile(99.9)).c_str(),
              format_latency(latency.max()).c_str());
}

}  // namespace

bool kept_up(const RunResult& run) noexcept {
  if (!run.options.open_loop()) return true;
  return run.stats.totals.missed_sends == 0 && run.stats.totals.timeouts == 0;
}

std::string json_report(const RunResult& run) {
  const Options& options = run.options;
  const LoadStats& stats = run.stats;
  const Counters& totals = stats.totals;
  const bool open = options.open_loop();
  JsonWriter json;
  json.begin();
  json.integer("schema", 2);

  json.begin("parameters");
  json.text("target", target_name(options.target));
  json.text("host", options.host);
  json.integer("port", options.port);
  json.text("mode", open ? "open" : "closed");
  json.integer("connections", options.connections);
  if (open) {
    json.null("pipeline");
    json.real("target_events_per_s", *options.rate);
    json.integer("max_inflight", options.max_inflight);
    json.integer("timeout_ms", options.timeout_ms);
  } else {
    json.integer("pipeline", options.pipeline);
    json.null("target_events_per_s");
    json.null("max_inflight");
    json.null("timeout_ms");
  }
  if (options.events) {
    json.null("duration_s");
    json.integer("events", *options.events);
  } else {
    json.real("duration_s", options.duration_s);
    json.null("events");
  }
  json.real("warmup_s", options.warmup_s);
  json.integer("users", options.mix.users);
  json.text("distribution", options.mix.distribution == Distribution::zipf ? "zipf" : "uniform");
  if (options.mix.distribution == Distribution::zipf) {
    json.real("zipf_s", options.mix.zipf_s);
  } else {
    json.null("zipf_s");
  }
  json.real("sell_ratio", options.mix.sell_ratio);
  json.text("user_prefix", options.user_prefix);
  json.integer("seed", options.seed);
  json.integer("threads", run.threads);
  json.begin_array("cpus");
  for (const int cpu : options.cpus) json.integer({}, static_cast<std::uint64_t>(cpu));
  json.end_array();
  json.end();

  json.begin("summary");
  json.real("events_per_s", per_second(totals.accepted, run.elapsed_s));
  json.integer("accepted", totals.accepted);
  // The expected sums cover warmup too, so the server's own count can be checked against them.
  json.integer("accepted_with_warmup",
               std::accumulate(stats.expected_events.begin(), stats.expected_events.end(),
                               std::uint64_t{0}));
  json.integer("dropped", totals.dropped);
  json.integer("rejected_shutting_down", totals.rejected_shutting_down);
  json.integer("errors", totals.errors);
  json.integer("timeouts", totals.timeouts);
  json.integer("missed_sends", totals.missed_sends);
  json.integer("unanswered", stats.unanswered);
  json.integer("failed_connections", stats.failed_connections);
  json.integer("sent", totals.sent);
  json.real("elapsed_s", run.elapsed_s);
  json.real("sent_per_s", per_second(totals.sent, run.elapsed_s));
  json.boolean("kept_up", kept_up(run));
  json.end();

  latency_object(json, "latency_us", stats.latency);
  latency_object(json, "latency_uncorrected_us", stats.uncorrected());

  json.begin_array("timeseries");
  // The whole seconds of the measured phase: as scheduled with --duration (replies drained after
  // it count in the summary only), as it lasted with --events.
  const double measured_s = options.events ? run.elapsed_s : options.duration_s;
  const auto seconds = static_cast<std::size_t>(std::max(0.0, std::floor(measured_s)));
  const Second empty;
  for (std::size_t i = 0; i < seconds; ++i) {
    const Second& second = i < stats.series.size() ? stats.series[i] : empty;
    json.begin({});
    json.integer("t_s", i + 1);
    json.integer("sent", second.counters.sent);
    json.integer("accepted", second.counters.accepted);
    json.integer("dropped", second.counters.dropped);
    json.integer("errors", second.counters.errors);
    json.integer("timeouts", second.counters.timeouts);
    json.integer("missed_sends", second.counters.missed_sends);
    json.real("p99_us", ns_to_us(second.latency.percentile(99)));
    json.end();
  }
  json.end_array();

  if (run.verified) {
    json.begin("verify");
    json.integer("checked_users", run.verified->checked_users);
    json.integer("mismatches", run.verified->mismatches);
    json.text("outcome", to_string(run.verified->outcome));
    json.boolean("ok", run.verified->outcome == VerifyOutcome::ok);
    json.end();
  }
  json.end();
  return json.str() + "\n";
}

void print_summary(const RunResult& run) {
  const Options& options = run.options;
  const Counters& totals = run.stats.totals;
  const auto target = target_name(options.target);
  std::printf("anubis-load: %.*s, %" PRIu32 " connections, ", static_cast<int>(target.size()),
              target.data(), options.connections);
  if (options.open_loop()) {
    std::printf("open loop at %.6g events/s (max %" PRIu32 " in flight each), ", *options.rate,
                options.max_inflight);
  } else {
    std::printf("closed loop, pipeline %" PRIu32 ", ", options.pipeline);
  }
  if (options.events) std::printf("%" PRIu64 " events in ", *options.events);
  std::printf("%.1f s", run.elapsed_s);
  if (options.warmup_s > 0) std::printf(" after %.1f s warmup", options.warmup_s);
  std::printf(", %" PRIu32 " users\n", options.mix.users);
  std::printf("  sent          %10" PRIu64 "  (%.0f/s)\n", totals.sent,
              per_second(totals.sent, run.elapsed_s));
  std::printf("  accepted      %10" PRIu64 "  (%.0f events/s)\n", totals.accepted,
              per_second(totals.accepted, run.elapsed_s));
  std::printf("  dropped       %10" PRIu64 "  (server_busy)\n", totals.dropped);
  std::printf("  shutting_down %10" PRIu64 "\n", totals.rejected_shutting_down);
  std::printf("  errors        %10" PRIu64 "\n", totals.errors);
  if (options.open_loop()) {
    std::printf("  missed sends  %10" PRIu64 "\n", totals.missed_sends);
    std::printf("  timeouts      %10" PRIu64 "\n", totals.timeouts);
  }
  if (run.stats.unanswered > 0) {
    std::printf("  unanswered    %10" PRIu64 "  (connection ended first)\n", run.stats.unanswered);
  }
  if (options.open_loop()) {
    print_latency("latency from the intended send (corrected for coordinated omission)",
                  run.stats.latency);
    print_latency("latency from the actual write (uncorrected)", run.stats.uncorrected());
  } else {
    print_latency("latency (closed loop, not corrected for coordinated omission)",
                  run.stats.latency);
  }
  std::fputs(could_not_keep_up(run).c_str(), stdout);
}

std::string could_not_keep_up(const RunResult& run) {
  if (kept_up(run)) return {};
  const Counters& totals = run.stats.totals;
  char line[256];
  std::snprintf(line, sizeof line,
                "anubis-load: could not keep up: %" PRIu64 " sends missed, %" PRIu64
                " timeouts (target %.0f/s, sent %.0f/s)\n",
                totals.missed_sends, totals.timeouts, *run.options.rate,
                per_second(totals.sent, run.elapsed_s));
  return line;
}

}  // namespace anubis::harness::load
