#!/usr/bin/python3
"""Side-by-side throughput comparison: the same closed-loop load against several server setups.

Each variant is a set of anubis-server flags (and optionally a number of load processes that
share the connections). Runs alternate between variants (A B C A B C ...) so that drift on a
shared machine spreads over all of them, every run is verified (--verify, exit status 0,
processed == accepted), and the report gives the median and the range of accepted events/s
per variant, plus each median as a ratio to the first variant's.

    harness/compare.py --variant "--workers 1" --variant "--workers 2" --repeat 3
    harness/compare.py --variant "" --variant "clients=2" --repeat 3   # is the client the limit?

A variant is server flags, optionally preceded by "clients=N" to split --connections over N
load processes run at once (their accepted events/s are added up).
"""

import argparse
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CompareError(Exception):
    """A variant cannot run at all (exit status 2)."""


def start_server(binary, flags):
    # stderr goes to a file rather than a pipe: a pipe nobody reads during the run could fill
    # and block the server.
    errors = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([binary, "--port", "0", *flags], stdout=subprocess.PIPE,
                            stderr=errors, text=True)
    line = proc.stdout.readline()
    match = re.match(r"listening on .*:(\d+)$", line.strip())
    if not match:
        proc.kill()
        proc.wait()
        errors.seek(0)
        lines = [l.strip() for l in errors.read().splitlines() if l.strip()]
        errors.close()
        raise CompareError("server with flags %r did not start (exit %s): %s" % (
            " ".join(flags), proc.returncode, lines[0] if lines else "no error message"))
    errors.close()
    return proc, int(match.group(1))


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    final = [l for l in out.splitlines() if l.startswith("final ")]
    return proc.returncode, json.loads(final[-1][6:]) if final else None


def run_once(args, variant, tmp):
    clients, flags = parse_variant(variant)
    proc, port = start_server(args.server, flags)
    loads = []
    per_client = max(1, args.connections // clients)
    for i in range(clients):
        out = os.path.join(tmp, "load%d.json" % i)
        cmd = [args.load, "--port", str(port), "--connections", str(per_client),
               "--pipeline", str(args.pipeline), "--duration", str(args.duration),
               "--users", str(args.users), "--seed", str(i + 1), "--verify", "--quiet",
               "--json-out", out]
        loads.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out))
    ok = all(p.wait() == 0 for p, _ in loads)
    status, final = stop_server(proc)
    results = [json.load(open(out)) for _, out in loads]
    rate = sum(r["summary"]["events_per_s"] for r in results)
    verified = ok and status == 0 and final is not None and final["processed"] == final["accepted"]
    return rate, verified


def parse_variant(variant):
    words = shlex.split(variant)
    clients = 1
    if words and words[0].startswith("clients="):
        clients = int(words.pop(0).split("=", 1)[1])
    return clients, words


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True,
                        help='server flags, optionally starting with "clients=N"')
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--server", default=os.path.join(ROOT, "build/release/src/anubis-server"))
    parser.add_argument("--load", default=os.path.join(ROOT, "build/release/harness/anubis-load"))
    args = parser.parse_args()
    try:
        return compare(args)
    except CompareError as e:
        print("compare: error: %s" % e, file=sys.stderr)
        return 2


def compare(args):
    rates = {v: [] for v in args.variant}
    all_verified = True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for v in args.variant:
                rate, verified = run_once(args, v, tmp)
                all_verified &= verified
                rates[v].append(rate)
                print("run %d/%d  %-40s %10.0f events/s  %s" % (
                    r + 1, args.repeat, v or "(defaults)", rate,
                    "verified" if verified else "NOT VERIFIED"), file=sys.stderr)

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print("machine: %s, %d cores, %s; load %d connections x pipeline %d, %g s, %d users" % (
        cpu, os.cpu_count(), platform.release(), args.connections, args.pipeline,
        args.duration, args.users))
    base = statistics.median(rates[args.variant[0]])
    print("%-42s %12s %22s %8s" % ("variant", "median ev/s", "range", "ratio"))
    for v in args.variant:
        med = statistics.median(rates[v])
        print("%-42s %12.0f %10.0f - %-10.0f %7.2fx" % (
            v or "(defaults)", med, min(rates[v]), max(rates[v]), med / base))
    if not all_verified:
        print("some runs were NOT verified", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
