#!/usr/bin/python3
"""Is anubis-load a fair Redis client? Its rate against redis-benchmark's, same shape of load.

Both drive a private redis-server (pinned to --server-cpu) with --connections connections and
--pipeline requests in flight on each, over --users keys, from one process pinned to
--client-cpu:

    redis-benchmark -p P -c C -P N -n REQUESTS -r USERS -q INCRBY k:__rand_int__ 5
    anubis-load --target redis --port P --connections C --pipeline N --users USERS --verify

Runs alternate (benchmark, load, benchmark, load, ...), each against a fresh redis-server. The
ratio is anubis-load's events/s over redis-benchmark's requests/s, paired run by run; the median
ratio is printed and the exit status is 1 when it is below --min-ratio, so a slow client cannot
make Redis look slow in harness/runner.py.

    harness/redis_peer.py                     # ./lab redis-peer
    harness/redis_peer.py --runs 5 --connections 10 --pipeline 1

Everything is checked before the first run: the numbers here, that redis-server,
redis-benchmark and anubis-load are there, and the anubis-load command by anubis-load's own
--check (exit 2). A run that fails (a client or redis-server exits non-zero, anubis-load's
--verify fails, no rate is reported) stops the measurement with its reason (exit 1).
SIGTERM, SIGHUP and Ctrl-C stop the current run's processes and remove the temporary directory
(exit 130); no redis-server or client outlives this script, even when SIGKILL ends it.
"""

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

# harness/ is this script's directory, so the matrix runner's modules import as they do for
# runner.py: redis_peer shares its process handling, its argument types and its verdicts on a
# load run.
from matrix_runner import ROOT
from matrix_runner.binaries import help_defaults
from matrix_runner.cli_types import positive_int, positive_seconds, run_count, run_tool
from matrix_runner.errors import MatrixError
from matrix_runner.execute import ask_check, require_check
from matrix_runner.processes import RedisServer, child_preexec, parse_cpus, tail
from matrix_runner.report import machine_info
from matrix_runner.run import LOAD_GRACE_S, exit_text, load_problems, read_load_json

# redis-benchmark counts the requests it has sent in a C int, a pipeline's worth per send from
# every connection at once; 10^9 leaves room for that overshoot at anubis-load's largest
# --connections and --pipeline, and is still about half an hour at a million requests/s.
MAX_REQUESTS = 10**9

# anubis-load --check connects to nothing; each run's own redis-server gives the real port.
STAND_IN_PORT = 1


class PeerError(Exception):
    """The measurement cannot run at all (exit status 2)."""


class RunFailed(Exception):
    """A run measured nothing that a ratio could use (exit status 1)."""


def min_ratio(text):
    """A finite bar >= 0: float() accepts "nan", against which no ratio is ever lower."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite ratio >= 0, not %r" % text)
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=positive_int, default=50)
    parser.add_argument("--pipeline", type=positive_int, default=16)
    parser.add_argument("--users", type=positive_int, default=10000,
                        help="keys: redis-benchmark -r, anubis-load --users")
    parser.add_argument("--requests", type=positive_int, default=2000000,
                        help="redis-benchmark -n: requests per benchmark run, at least "
                             "--connections x --pipeline and at most %d" % MAX_REQUESTS)
    parser.add_argument("--duration", type=positive_seconds, default=5,
                        help="seconds per anubis-load run")
    parser.add_argument("--runs", type=run_count, default=3, help="pairs of runs")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--min-ratio", type=min_ratio, default=0.9,
                        help="the lowest median ratio that passes (0 only reports)")
    parser.add_argument("--load", default=os.environ.get(
        "ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load")))
    args = parser.parse_args(argv)
    # redis-benchmark hands out a pipeline's worth of requests per connection at a time: with
    # fewer requests some connections send nothing, and with none at all it never ends.
    if args.requests < args.connections * args.pipeline:
        parser.error("--requests %d is fewer than --connections x --pipeline = %d, so some "
                     "connections would send nothing" % (
                         args.requests, args.connections * args.pipeline))
    if args.requests > MAX_REQUESTS:
        parser.error("--requests %d is more than redis-benchmark counts (at most %d)" % (
            args.requests, MAX_REQUESTS))
    for name in ("--client-cpu", "--server-cpu"):
        try:
            parse_cpus(str(getattr(args, name[2:].replace("-", "_"))))
        except MatrixError as e:
            parser.error("%s: %s" % (name, e))
    return args


def load_args(args, port):
    """anubis-load's arguments for one run, without --json-out."""
    return ["--target", "redis", "--port", str(port), "--connections", str(args.connections),
            "--pipeline", str(args.pipeline), "--users", str(args.users),
            "--duration", "%r" % args.duration, "--verify", "--quiet",
            "--cpus", str(args.client_cpu)]


def check_setup(args):
    """The three programs are there and anubis-load accepts its command, so that a missing
    program or a refused value stops the measurement before its first run."""
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            raise PeerError("%s is not installed (./lab setup installs it)" % tool)
    if not (os.path.isfile(args.load) and os.access(args.load, os.X_OK)):
        raise PeerError("%s is not built (./lab build release)" % args.load)
    require_check(args.load, help_defaults(args.load)[0])
    ask_check(args.load, "load client", [load_args(args, STAND_IN_PORT)])


def last_line(text):
    """The last non-blank line of a program's output, whose -q progress line is rewritten in
    place with carriage returns."""
    lines = [l.strip() for l in re.split(r"[\r\n]", text) if l.strip()]
    return lines[-1] if lines else "(no output)"


def run_benchmark(args, port):
    """redis-benchmark's requests/s against the redis-server on port."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.connections),
           "-P", str(args.pipeline), "-n", str(args.requests), "-r", str(args.users), "-q",
           "INCRBY", "k:__rand_int__", "5"]
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=child_preexec([args.client_cpu]))
    if result.returncode != 0:
        raise RunFailed("%s: %s" % (exit_text("redis-benchmark", result.returncode),
                                    last_line(result.stderr + result.stdout)))
    # The progress figures before the final one are partial rates.
    rates = re.findall(r"(\d+(?:\.\d+)?) requests per second", result.stdout)
    if not rates or float(rates[-1]) <= 0:
        raise RunFailed("redis-benchmark reported no rate: %s" % last_line(result.stdout))
    return float(rates[-1])


def run_load(args, port, stem):
    """anubis-load's events/s against the redis-server on port, verified; its JSON and its
    output go to stem.json and stem.log."""
    budget = args.duration + LOAD_GRACE_S
    with open(stem + ".log", "w") as log:
        try:
            code = subprocess.run(
                [args.load, *load_args(args, port), "--json-out", stem + ".json"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=child_preexec([args.client_cpu]), timeout=budget).returncode
        except subprocess.TimeoutExpired:
            raise RunFailed("anubis-load did not finish within %g s" % budget)
    result = read_load_json(stem + ".json")
    problems = load_problems(code, result)
    if code != 0:
        problems.append("its log: %s" % tail(stem + ".log", 2))
    if problems:
        raise RunFailed("; ".join(problems))
    rate = (result.get("summary") or {}).get("events_per_s")
    if not isinstance(rate, (int, float)) or rate <= 0:
        raise RunFailed("anubis-load reported no events/s")
    return rate


def against_redis(args, stem, client):
    """client(port)'s rate against a fresh redis-server. Whatever happens, that
    redis-server has ended when this returns; one that does not start or does not exit 0 after
    SHUTDOWN fails the run."""
    redis = None
    try:
        try:
            redis = RedisServer([args.server_cpu], stem + "-redis.log")
        except RuntimeError as e:
            raise RunFailed(str(e))
        rate = client(redis.port)
        code, _ = redis.stop()
        redis = None
    finally:
        if redis is not None:
            redis.kill()
    if code != 0:
        raise RunFailed("%s: %s" % (exit_text("redis-server", code), tail(stem + "-redis.log")))
    return rate


def measure(args):
    check_setup(args)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="anubis-redis-peer-") as tmp:
        for i in range(1, args.runs + 1):
            bench_stem = os.path.join(tmp, "redis-benchmark-%d" % i)
            load_stem = os.path.join(tmp, "anubis-load-%d" % i)
            try:
                bench = against_redis(args, bench_stem, lambda port: run_benchmark(args, port))
            except RunFailed as e:
                raise RunFailed("run %d/%d of redis-benchmark failed: %s" % (i, args.runs, e))
            try:
                load = against_redis(args, load_stem, lambda port: run_load(args, port, load_stem))
            except RunFailed as e:
                raise RunFailed("run %d/%d of anubis-load failed: %s" % (i, args.runs, e))
            ratios.append(load / bench)
            print("run %d/%d  redis-benchmark %10.0f requests/s   anubis-load %10.0f events/s"
                  "   ratio %.2f" % (i, args.runs, bench, load, load / bench),
                  file=sys.stderr, flush=True)
    median = statistics.median(ratios)
    m = machine_info()
    print("anubis-load / redis-benchmark against redis-server (CPU %d), client on CPU %d, "
          "%d connections x pipeline %d, %d keys: median ratio %.2f (runs: %s); %s, %d cores" % (
              args.server_cpu, args.client_cpu, args.connections, args.pipeline, args.users,
              median, ", ".join("%.2f" % r for r in ratios), m["cpu_model"], m["cores"]))
    if median < args.min_ratio:
        print("anubis-load is slower than redis-benchmark: median ratio %.2f < %.2f" % (
            median, args.min_ratio), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    return run_tool("redis_peer", measure, parse_args(argv), cannot_run=(PeerError,),
                    run_failed=(RunFailed,))


if __name__ == "__main__":
    sys.exit(main())
