#!/usr/bin/python3
"""Side-by-side throughput comparison: the same closed-loop load against several server setups.

Each variant is a set of anubis-server flags (and optionally a number of load processes that
share the connections). Runs alternate between variants (A B C A B C ...) so that drift on a
shared machine spreads over all of them, every run is checked (--verify, exit statuses 0, the
server's final line adds up and matches the events the clients saw accepted), and the report
gives, per variant, the median and the range of accepted events/s over its verified runs, how
many of its runs were verified, and its median as a ratio to the first variant's.

    harness/compare.py --variant "--workers 1" --variant "--workers 2" --repeat 3
    harness/compare.py --variant "" --variant "clients=2" --repeat 3   # is the client the limit?
    harness/compare.py --variant "--queue=mutex" --variant "--queue=lockfree"

A variant is server flags, optionally preceded by "clients=N" to split --connections over N
load processes run at once (their accepted events/s are added up). The split is as even as it
can be (50 over 3: 17+17+16), so every variant opens exactly --connections; each run prints
the connections its load processes report having opened. The word after --variant is always
the variant, even when it starts with "-". compare owns --port, --check, --help and
--list-strategies (it starts each server on a free port; the others exit instead of serving),
so a variant cannot set them.

Everything is checked before the first run: the numbers here and the variants' flags, that
both binaries are the ones compare drives (anubis-server's strategy registries, anubis-load
offering every flag compare passes), then each variant's flags and the load by the binaries'
own --check (exit 2). A run that is not verified is reported, left out of the medians and
ranges ("-" for a variant with no verified run), and the comparison goes on (exit 1); a run
that measured nothing (a load process that failed) stops it (exit 1). SIGTERM, SIGHUP and
Ctrl-C stop it (exit 130); no server or load process outlives this script, even when SIGKILL
ends it.
"""

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# harness/ is this script's directory, so the matrix runner's modules import as they do for
# runner.py: compare shares its process handling and its verdicts on a run.
from matrix_runner import ROOT
from matrix_runner.binaries import flag, help_defaults, normalise, server_strategies
from matrix_runner.cli_types import positive_int, positive_seconds, run_count, run_tool
from matrix_runner.execute import (STAND_IN_HOST, STAND_IN_PORT, ask_check, check_load_flags,
                                   require_check)
from matrix_runner.matrix import RUNNER_SERVER_FLAGS
from matrix_runner.processes import AnubisServer, child_preexec, signal_child, tail, wait_rusage
from matrix_runner.report import machine_info
from matrix_runner.run import (LOAD_GRACE_S, accepted_problems, final_problems, load_command,
                               load_problems, read_load_json)


class CompareError(Exception):
    """The comparison cannot run at all (exit status 2)."""


class NoMeasurement(Exception):
    """A run gave no events/s, so no median would mean anything (exit status 1)."""


class Variant:
    """One --variant: the text as given, its number of load processes and its server flags."""

    PREFIX = "clients="

    def __init__(self, text):
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError("%r: %s" % (text, e))
        self.clients = 1
        if words and words[0].startswith(self.PREFIX):
            count = words.pop(0)[len(self.PREFIX):]
            try:
                self.clients = positive_int(count)
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    "%r: %s takes a number of load processes >= 1, not %r" % (
                        text, self.PREFIX, count))
        for word in words:
            # "-h" is CLI11's short --help; "--port=7878" sets --port as "--port 7878" does.
            name = word.split("=", 1)[0]
            if word == "-h" or (name.startswith("--")
                                and normalise(name[2:]) in RUNNER_SERVER_FLAGS):
                raise argparse.ArgumentTypeError(
                    "%r: a variant cannot set %s: compare owns %s (it starts each server on a "
                    "free port; the others exit instead of serving)" % (
                        text, name, ", ".join(map(flag, RUNNER_SERVER_FLAGS))))
        self.text = text
        self.flags = words

    def label(self):
        return self.text or "(defaults)"

    def split(self, connections):
        """Connections per load process, adding up to exactly `connections`: the first
        (connections % clients) processes take one more."""
        share, extra = divmod(connections, self.clients)
        return [share + 1] * extra + [share] * (self.clients - extra)


def join_variants(argv):
    """argv with each "--variant X" written "--variant=X": argparse takes an X that starts with
    "-" and has no space ("--queue=lockfree") for an option, and --variant for one without its
    argument. Words after "--" are left as they are."""
    joined = []
    words = iter(argv)
    for word in words:
        if word == "--":
            joined += [word, *words]
        elif word == "--variant":
            value = next(words, None)
            joined.append(word if value is None else word + "=" + value)
        else:
            joined.append(word)
    return joined


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, type=Variant,
                        help='server flags, optionally starting with "clients=N"')
    parser.add_argument("--repeat", type=run_count, default=3, help="runs per variant")
    parser.add_argument("--duration", type=positive_seconds, default=5, help="seconds per run")
    parser.add_argument("--connections", type=positive_int, default=50,
                        help="connections per run, split over a variant's load processes")
    parser.add_argument("--pipeline", type=positive_int, default=16)
    parser.add_argument("--users", type=positive_int, default=10000)
    parser.add_argument("--server", default=os.path.join(ROOT, "build/release/src/anubis-server"))
    parser.add_argument("--load", default=os.path.join(ROOT, "build/release/harness/anubis-load"))
    args = parser.parse_args(join_variants(sys.argv[1:] if argv is None else argv))
    for v in args.variant:
        # argparse drops a value that is "--" before any type sees it, leaving a list.
        if not isinstance(v, Variant):
            parser.error("argument --variant: '--' is not a server flag")
        if v.clients > args.connections:
            parser.error("variant %r: %d load processes need at least %d connections, not %d "
                         "(--connections)" % (v.text, v.clients, v.clients, args.connections))
    return args


def load_cmd(args, load_flags, host, port, connections, seed, json_out):
    """One load process's command, built by the runner's load_command, which refuses a load
    client whose --help (load_flags) lacks one of the flags the command passes."""
    params = {"connections": connections, "pipeline": args.pipeline,
              "duration": args.duration, "users": args.users, "seed": seed}
    return load_command(args.load, load_flags, host, port, "anubis", params, set(params), [],
                        json_out)


def check_setup(args):
    """The binaries exist, are the ones compare drives, and accept every variant's flags and
    every load process's command, so that a refused value stops the comparison before its first
    run, in the binary's words. Returns the load client's flags (from its --help)."""
    for binary in (args.server, args.load):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise CompareError("%s is not built (./lab build release)" % binary)
    server_strategies(args.server)  # refuses a binary that is not anubis-server
    load_flags, _ = help_defaults(args.load)
    require_check(args.load, load_flags)
    ask_check(args.server, "server", [v.flags for v in args.variant],
              common=AnubisServer.PORT_FLAGS)
    # The runner's stand-in address: each run's own server gives the real one.
    check_load_flags(args.load, [
        load_cmd(args, load_flags, STAND_IN_HOST, STAND_IN_PORT, connections, seed, os.devnull)
        for v in args.variant for seed, connections in enumerate(v.split(args.connections), 1)])
    return load_flags


def run_once(args, load_flags, variant, run_dir):
    """One run: a server, the variant's load processes at once, then the server's drain.

    Returns (events/s or None if a load process measured nothing, connections each load process
    opened, problems); a run without problems is verified. Whatever happens, the server and
    every load process have ended when this returns."""
    server = None
    loads = []
    try:
        server_log = os.path.join(run_dir, "server.log")
        try:
            server = AnubisServer(args.server, variant.flags, [], server_log)
        except RuntimeError as e:
            raise CompareError("variant %r: %s" % (variant.text, e))
        for seed, connections in enumerate(variant.split(args.connections), 1):
            stem = os.path.join(run_dir, "load%d" % seed)
            # The address the server reports, so that a variant's --bind is where the load goes.
            cmd = load_cmd(args, load_flags, server.host, server.port, connections, seed,
                           stem + ".json")
            with open(stem + ".log", "w") as log:
                loads.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               preexec_fn=child_preexec([])), seed, stem))
        deadline = time.monotonic() + args.duration + LOAD_GRACE_S
        load_codes = [wait_rusage(proc, deadline)[0] for proc, _, _ in loads]
        server_code, final, _ = server.stop()
        server = None
    finally:
        for proc, _, _ in loads:
            if proc.returncode is None:
                signal_child(proc, signal.SIGKILL)
                os.wait4(proc.pid, 0)
        if server is not None:
            server.kill()

    problems = []
    results = []
    for (_, seed, stem), code in zip(loads, load_codes):
        result = read_load_json(stem + ".json")
        results.append(result)
        found = load_problems(code, result)
        if code != 0:
            found.append("its log: %s" % tail(stem + ".log", 2))
        prefix = "load process %d: " % seed if variant.clients > 1 else ""
        problems += [prefix + p for p in found]
    problems += final_problems(final, server_code)

    summaries = [(r or {}).get("summary") or {} for r in results]
    # Asked for, less those that could not be made or broke.
    opened = [None if s.get("failed_connections") is None
              else ((r or {}).get("parameters") or {}).get("connections", 0)
              - s["failed_connections"] for r, s in zip(results, summaries)]
    rates = [s.get("events_per_s") for s in summaries]
    if None in rates or None in opened:
        return None, opened, problems or ["anubis-load reported no events/s"]
    if sum(opened) != args.connections:
        problems.append("opened %d connections, not %d" % (sum(opened), args.connections))
    client_accepted = [s.get("accepted_with_warmup") for s in summaries]
    problems += accepted_problems(final, {"accepted_with_warmup":
                                          None if None in client_accepted
                                          else sum(client_accepted)})
    return sum(rates), opened, problems


def connections_text(opened):
    """"50 connections", or "17+17+16 = 50 connections" when several processes share them."""
    if len(opened) == 1:
        return "%d connections" % opened[0]
    return "%s = %d connections" % ("+".join(map(str, opened)), sum(opened))


def median_text(runs):
    return "%12.0f" % statistics.median(runs) if runs else "%12s" % "-"


def range_text(runs):
    return "%10.0f - %-10.0f" % (min(runs), max(runs)) if runs else "%-23s" % ("%10s" % "-")


def compare(args):
    load_flags = check_setup(args)
    # Indexed by position, not by text: the same variant twice is a fair A/A noise check. Only
    # verified runs' rates: a run that lost events or connections measured something else.
    rates = [[] for _ in args.variant]
    unverified = 0
    with tempfile.TemporaryDirectory(prefix="anubis-compare-") as tmp:
        for r in range(args.repeat):
            for i, v in enumerate(args.variant):
                run_dir = tempfile.mkdtemp(dir=tmp)  # a failed run cannot read an earlier JSON
                rate, opened, problems = run_once(args, load_flags, v, run_dir)
                if rate is None:
                    raise NoMeasurement("run %d/%d of %s measured nothing: %s" % (
                        r + 1, args.repeat, v.label(), "; ".join(problems)))
                if problems:
                    unverified += 1
                else:
                    rates[i].append(rate)
                print("run %d/%d  %-40s %10.0f events/s  %s  %s" % (
                    r + 1, args.repeat, v.label(), rate, connections_text(opened),
                    "NOT VERIFIED: " + "; ".join(problems) if problems else "verified"),
                    file=sys.stderr, flush=True)

    machine = machine_info()
    print("machine: %s, %d cores, %s; load %d connections x pipeline %d, %g s, %d users" % (
        machine["cpu_model"], machine["cores"], machine["kernel"], args.connections,
        args.pipeline, args.duration, args.users))
    base = statistics.median(rates[0]) if rates[0] else None
    print("%-42s %12s %23s %8s %9s" % ("variant", "median ev/s", "range", "ratio", "verified"))
    for v, runs in zip(args.variant, rates):
        # A first variant with no verified run, or one that accepted nothing, has no ratio to
        # give.
        ratio = ("%7.2fx" % (statistics.median(runs) / base) if runs and base
                 else "%8s" % "-")
        print("%-42s %s %s %s %9s" % (v.label(), median_text(runs), range_text(runs), ratio,
                                      "%d/%d" % (len(runs), args.repeat)))
    if unverified:
        print("%d of %d runs were NOT verified and are left out of the medians and ranges" % (
            unverified, args.repeat * len(args.variant)), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    return run_tool("compare", compare, parse_args(argv), cannot_run=(CompareError,),
                    run_failed=(NoMeasurement,))


if __name__ == "__main__":
    sys.exit(main())
