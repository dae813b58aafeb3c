#!/usr/bin/python3
"""Is anubis-load a fair Redis client? Its rate against redis-benchmark's, same shape of load.

Both drive a private redis-server (pinned to --server-cpu) with --connections connections and
--pipeline requests in flight on each, over --users keys, from one process pinned to
--client-cpu:

    redis-benchmark -p P -c C -P N -n REQUESTS -r USERS -q INCRBY k:__rand_int__ 5
    anubis-load --target redis --port P --connections C --pipeline N --users USERS --verify

Runs alternate (benchmark, load, benchmark, load, ...), each against a fresh redis-server. The
ratio is anubis-load's events/s over redis-benchmark's requests/s, paired run by run; the median
ratio is printed and the exit status is 1 when it is below --min-ratio (or any anubis-load run
failed its verification), so a slow client cannot make Redis look slow in harness/runner.py.

    harness/redis_peer.py                     # ./lab redis-peer
    harness/redis_peer.py --runs 5 --connections 10 --pipeline 1
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from matrix_runner import ROOT
from matrix_runner.errors import MatrixError
from matrix_runner.processes import RedisServer, child_preexec, parse_cpus
from matrix_runner.report import machine_info
from matrix_runner.run import load_problems


def run_benchmark(args, port):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(args.connections),
           "-P", str(args.pipeline), "-n", str(args.requests), "-r", str(args.users), "-q",
           "INCRBY", "k:__rand_int__", "5"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         preexec_fn=child_preexec([args.client_cpu])).stdout
    # -q rewrites a progress line with carriage returns; the last figure is the final one.
    rates = re.findall(r"([\d.]+) requests per second", out)
    if not rates:
        raise RuntimeError("redis-benchmark printed no rate: %r" % out[-200:])
    return float(rates[-1])


def run_load(args, port, json_out):
    cmd = [args.load, "--target", "redis", "--port", str(port),
           "--connections", str(args.connections), "--pipeline", str(args.pipeline),
           "--users", str(args.users), "--duration", str(args.duration), "--verify", "--quiet",
           "--cpus", str(args.client_cpu), "--json-out", json_out]
    code = subprocess.run(cmd, preexec_fn=child_preexec([args.client_cpu])).returncode
    with open(json_out) as f:
        result = json.load(f)
    problems = load_problems(code, result)
    if problems:
        raise RuntimeError("anubis-load: %s" % "; ".join(problems))
    return result["summary"]["events_per_s"]


def with_redis(args, tmp, name, work):
    redis = RedisServer([args.server_cpu], os.path.join(tmp, name + "-redis.log"))
    try:
        return work(redis.port)
    finally:
        code, _ = redis.stop()
        if code != 0:
            raise RuntimeError("redis-server exited with %s" % code)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=2000000,
                        help="redis-benchmark -n: requests per benchmark run")
    parser.add_argument("--duration", type=float, default=5, help="seconds per anubis-load run")
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--min-ratio", type=float, default=0.9)
    parser.add_argument("--load", default=os.environ.get(
        "ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load")))
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            print("redis_peer: %s is not installed (./lab setup installs it)" % tool,
                  file=sys.stderr)
            return 2
    try:
        parse_cpus("%d,%d" % (args.client_cpu, args.server_cpu))
    except MatrixError as e:
        print("redis_peer: %s" % e, file=sys.stderr)
        return 2

    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.runs + 1):
            try:
                bench = with_redis(args, tmp, "bench%d" % i,
                                   lambda port: run_benchmark(args, port))
                load = with_redis(args, tmp, "load%d" % i, lambda port: run_load(
                    args, port, os.path.join(tmp, "load%d.json" % i)))
            except (OSError, RuntimeError, ValueError, subprocess.CalledProcessError) as e:
                print("redis_peer: run %d failed: %s" % (i, e), file=sys.stderr)
                return 1
            ratios.append(load / bench)
            print("run %d/%d  redis-benchmark %10.0f requests/s   anubis-load %10.0f events/s"
                  "   ratio %.2f" % (i, args.runs, bench, load, load / bench), file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
