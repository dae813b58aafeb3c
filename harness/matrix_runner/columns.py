"""The layout of the results: the columns of results.csv and summary.csv and the keys of
meta.json, in order. docs/RESULTS.md documents each of them."""

# Server flags recorded in every row, whether or not the matrix varies them, because they decide
# how much parallelism the server has. A plain flag the matrix uses as an axis adds a column.
FIXED_SERVER_COLUMNS = ("io_threads", "workers", "queue_capacity", "shards", "work_us")

# The load parameters of a row (anubis-load's flags), then the pinning.
LOAD_COLUMNS = (
    "load_mode", "connections", "pipeline", "rate_multiple", "rate", "max_inflight", "timeout_ms",
    "duration_s", "events", "warmup_s", "users", "distribution", "zipf_s", "sell_ratio", "seed",
    "threads", "client_cpus", "server_cpus",
)

LATENCY_KEYS = ("p50", "p90", "p99", "p999", "max")

RESULT_COLUMNS = (
    ("events_per_s", "sent_per_s", "elapsed_s")
    + tuple("%s_us" % k for k in LATENCY_KEYS)
    + tuple("uncorrected_%s_us" % k for k in LATENCY_KEYS)
    + ("accepted", "dropped", "invalid", "rejected_shutting_down", "errors", "timeouts",
       "missed_sends", "unanswered", "kept_up", "server_events", "peak_rss_mib", "server_cpu_s",
       "client_cpu_s", "cpu_s_per_million_events", "verified", "failure")
)

HEAD_COLUMNS = ("run", "repetition", "combination", "target")

SUMMARY_RESULT_COLUMNS = (
    "rank", "runs", "verified_runs", "kept_up_runs",
    "events_per_s_median", "ratio", "events_per_s_min", "events_per_s_max", "events_per_s_mad",
    "p99_us_median", "p99_us_min", "p99_us_max", "p99_us_mad",
    "peak_rss_mib_median", "cpu_s_per_million_events_median",
)

META_KEYS = (
    "date", "command", "matrix_path", "matrix", "git", "build", "machine", "python", "server",
    "load", "redis", "strategies", "server_defaults", "axes", "combinations", "repeat", "runs",
    "capacity", "columns", "wall_s", "all_verified",
)
