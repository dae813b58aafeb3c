#include "load/report.hpp"

#include <string>

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace anubis::harness::load {
namespace {

namespace json = boost::json;

constexpr std::int64_t kSecond = 1'000'000'000;

// Records what a short open-loop run could have seen: warmup traffic, two measured seconds.
LoadStats sample_stats() {
  LoadStats stats(10, kSecond, true);  // measured from 1 s
  const Framed accepted{Framed::Status::complete, 1, ReplyKind::accepted, {}};
  const Framed busy{Framed::Status::complete, 1, ReplyKind::server_busy, {}};
  stats.on_sent(kSecond / 2);  // warmup
  stats.on_reply({kSecond / 2, kSecond / 2, 1, 5}, accepted, kSecond / 2 + 1'000'000);
  stats.on_sent(kSecond);
  stats.on_reply({kSecond, kSecond + 1'000'000, 2, -3}, accepted, kSecond + 3'000'000);
  OpenLoopConfig schedule;
  schedule.start_ns = kSecond + 10;
  schedule.interval_ns = 1e6;
  stats.on_missed(schedule, 0, 1);  // the send intended at 1 s + 10 ns
  stats.on_sent(2 * kSecond + 5);
  stats.on_timeout({2 * kSecond + 5, 2 * kSecond + 5, 3, 1}, 2 * kSecond + 400'000'000);
  stats.on_reply({2 * kSecond + 5, 2 * kSecond + 5, 3, 1}, busy, 2 * kSecond + 500'000'000);
  return stats;
}

// Missed sends count in the second they were intended for, and not at all in the warmup, however
// many one call reports.
TEST(LoadStats, MissedSendsSplitBySecond) {
  LoadStats stats(1, kSecond, true);  // measured from 1 s
  OpenLoopConfig schedule;
  schedule.interval_ns = 1e6;           // send k intended at k ms
  stats.on_missed(schedule, 0, 2'500);  // 0 .. 2.499 s
  EXPECT_EQ(stats.totals.missed_sends, 1'500U);
  ASSERT_GE(stats.series.size(), 2U);
  EXPECT_EQ(stats.series[0].counters.missed_sends, 1'000U);
  EXPECT_EQ(stats.series[1].counters.missed_sends, 500U);
}

// The statistics keep warmup out of the counts and latencies but in the expected balances.
TEST(LoadStats, WarmupIsVerifiedButNotMeasured) {
  const LoadStats stats = sample_stats();
  EXPECT_EQ(stats.totals.sent, 2U);
  EXPECT_EQ(stats.totals.accepted, 1U);
  EXPECT_EQ(stats.totals.dropped, 1U);
  EXPECT_EQ(stats.totals.missed_sends, 1U);
  EXPECT_EQ(stats.totals.timeouts, 1U);
  EXPECT_EQ(stats.expected_balance[1], 5);
  EXPECT_EQ(stats.expected_balance[2], -3);
  EXPECT_EQ(stats.expected_events[3], 0U);
  EXPECT_EQ(stats.latency.count(), 2U);  // the timed-out reply is timed too: the stall shows
  EXPECT_NEAR(static_cast<double>(stats.latency.max()), 5e8, 5e8 / 128);
  // Corrected latency counts from the intended send, uncorrected from the write 1 ms later.
  EXPECT_NEAR(static_cast<double>(stats.latency.percentile(50)), 3e6, 3e6 / 128);
  EXPECT_NEAR(static_cast<double>(stats.latency_uncorrected.percentile(50)), 2e6, 2e6 / 128);
}

// The JSON document has every member of schema 2 with the right types and values.
TEST(Report, JsonFollowsSchemaTwo) {
  Options options;
  options.port = 6379;
  options.target = Target::redis;
  options.rate = 1000;
  options.warmup_s = 1;
  options.duration_s = 2;
  options.cpus = {0, 1};
  options.user_prefix = "p-";
  const LoadStats stats = sample_stats();
  RunResult run{options, 1, stats, 1.5, VerifyResult{10, 0, VerifyOutcome::ok}};
  const json::object doc = json::parse(json_report(run)).as_object();

  EXPECT_EQ(doc.at("schema").as_int64(), 2);
  const json::object& parameters = doc.at("parameters").as_object();
  EXPECT_EQ(parameters.at("target").as_string(), "redis");
  EXPECT_EQ(parameters.at("mode").as_string(), "open");
  EXPECT_TRUE(parameters.at("pipeline").is_null());
  EXPECT_EQ(parameters.at("target_events_per_s").to_number<double>(), 1000.0);
  EXPECT_EQ(parameters.at("max_inflight").as_int64(), 128);
  EXPECT_EQ(parameters.at("timeout_ms").as_int64(), 2000);
  EXPECT_TRUE(parameters.at("events").is_null());
  EXPECT_EQ(parameters.at("zipf_s").is_null(), true);
  EXPECT_EQ(parameters.at("distribution").as_string(), "uniform");
  EXPECT_EQ(parameters.at("cpus").as_array().size(), 2U);
  for (const char* key : {"host", "port", "connections", "duration_s", "warmup_s", "users",
                          "sell_ratio", "user_prefix", "seed", "threads"}) {
    EXPECT_TRUE(parameters.contains(key)) << key;
  }

  const json::object& summary = doc.at("summary").as_object();
  EXPECT_EQ(summary.at("accepted").as_int64(), 1);
  EXPECT_EQ(summary.at("accepted_with_warmup").as_int64(), 2);  // the warmup event counts here
  EXPECT_EQ(summary.at("dropped").as_int64(), 1);
  EXPECT_EQ(summary.at("missed_sends").as_int64(), 1);
  EXPECT_EQ(summary.at("timeouts").as_int64(), 1);
  EXPECT_EQ(summary.at("sent").as_int64(), 2);
  EXPECT_FALSE(summary.at("kept_up").as_bool());
  EXPECT_NEAR(summary.at("events_per_s").to_number<double>(), 1 / 1.5, 1e-9);
  for (const char* key : {"rejected_shutting_down", "errors", "unanswered", "failed_connections",
                          "elapsed_s", "sent_per_s"}) {
    EXPECT_TRUE(summary.contains(key)) << key;
  }
  for (const char* object : {"latency_us", "latency_uncorrected_us"}) {
    const json::object& latency = doc.at(object).as_object();
    for (const char* key : {"p50", "p90", "p99", "p999", "max", "count"}) {
      EXPECT_TRUE(latency.contains(key)) << object << "." << key;
    }
  }
  const json::array& series = doc.at("timeseries").as_array();
  ASSERT_EQ(series.size(), 2U);  // the whole seconds of --duration 2
  const json::object& first = series[0].as_object();
  EXPECT_EQ(first.at("t_s").as_int64(), 1);
  EXPECT_EQ(first.at("sent").as_int64(), 1);
  EXPECT_EQ(first.at("accepted").as_int64(), 1);
  EXPECT_EQ(first.at("missed_sends").as_int64(), 1);
  EXPECT_GT(first.at("p99_us").to_number<double>(), 2900.0);
  const json::object& second = series[1].as_object();
  EXPECT_EQ(second.at("t_s").as_int64(), 2);
  EXPECT_EQ(second.at("sent").as_int64(), 1);
  EXPECT_EQ(second.at("timeouts").as_int64(), 1);
  EXPECT_EQ(second.at("dropped").as_int64(), 1);
  EXPECT_NEAR(second.at("p99_us").to_number<double>(), 5e5, 5e5 / 128);  // the late reply
  const json::object& verify = doc.at("verify").as_object();
  EXPECT_TRUE(verify.at("ok").as_bool());
  EXPECT_EQ(verify.at("outcome").as_string(), "ok");
}

// A closed-loop run always keeps up and reports its pipeline, with open-loop members null.
TEST(Report, ClosedLoopKeepsUp) {
  Options options;
  options.port = 1;
  const LoadStats stats(10, 0, false);
  const RunResult run{options, 1, stats, 0.0, std::nullopt};
  EXPECT_TRUE(kept_up(run));
  EXPECT_TRUE(could_not_keep_up(run).empty());
  const json::object doc = json::parse(json_report(run)).as_object();
  EXPECT_EQ(doc.at("parameters").at("pipeline").as_int64(), 16);
  EXPECT_TRUE(doc.at("parameters").at("max_inflight").is_null());
  EXPECT_TRUE(doc.at("summary").at("kept_up").as_bool());
  EXPECT_FALSE(doc.contains("verify"));
}

// The open-loop "could not keep up" line names the missed sends and timeouts.
TEST(Report, CouldNotKeepUpLine) {
  Options options;
  options.rate = 1000;
  const LoadStats stats = sample_stats();
  const RunResult run{options, 1, stats, 2.0, std::nullopt};
  EXPECT_EQ(could_not_keep_up(run),
            "anubis-load: could not keep up: 1 sends missed, 1 timeouts (target 1000/s, sent "
            "1/s)\n");
}

}  // namespace
}  // namespace anubis::harness::load
