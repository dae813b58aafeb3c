#!/usr/bin/python3
"""Matrix runner: the same load against every combination of server setups, every run verified.

A matrix file (TOML, harness/matrices/*.toml) lists axis values and one load shape:

    mode = "product"            # or "one_at_a_time": each axis varied alone from the defaults
    repeat = 3                  # runs per combination, alternating A B C A B C
    server_cpus = "1"           # optional pinning (sched_setaffinity); client_cpus likewise
    [axes]
    queue = "all"               # a key of `anubis-server --list-strategies`: "all" or a list
    workers = [1, 2]            # a plain server flag (--workers); a list, even of one
    target = ["anubis", "redis"]
    distribution = ["uniform", "zipf"]   # a load parameter may be an axis too
    [server]                    # fixed server flags for every anubis run (optional)
    work-us = 1
    [load]                      # the load shape: anubis-load flags, underscores for dashes
    connections = 50
    pipeline = 16
    duration = 5
    [overload]                  # optional: open loop at multiples of the measured capacity
    multiples = [0.5, 1, 2]
    capacity_duration = 3

Every key of --list-strategies is an axis (flag --<key>); an axis the matrix omits keeps the
server's default, read from --help. Each run starts its own server on port 0 (or, for
target=redis, its own redis-server on a free port), drives it with anubis-load --verify, stops it,
checks its `final` line and exit status, and records its peak RSS and CPU time. Results go to
results/<timestamp>/ (results.csv, summary.csv, meta.json, one load JSON per run); the exit status
is 1 when any run was not verified, and 2, before any run starts, when the matrix file or a binary
is not one the runner can use (for an overload matrix, also after its capacity runs, when a rate
they lead to is one the load client refuses). Columns, keys and the matrix rules: docs/RESULTS.md.

    harness/runner.py harness/matrices/quick.toml
    harness/runner.py harness/matrices/axes.toml --repeat 5 --server-cpus 1 --client-cpus 0
"""

# The code lives in harness/matrix_runner/, one responsibility per module (its __init__.py lists
# them); this file is the command line.

import argparse
import os
import sys

from matrix_runner import ROOT
from matrix_runner.cli_types import stop_on_signals
from matrix_runner.errors import Interrupted, MatrixError
from matrix_runner.execute import run_matrix


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("matrix", help="a matrix file, or the name of one in harness/matrices/ "
                                       "(with or without .toml)")
    parser.add_argument("--repeat", type=int, help="runs per combination (overrides the matrix)")
    parser.add_argument("--duration", type=float, help="seconds per run (overrides the matrix)")
    parser.add_argument("--server-cpus", help='pin anubis-server / redis-server, e.g. "1"')
    parser.add_argument("--client-cpus", help='pin anubis-load, e.g. "0"')
    parser.add_argument("--out", help="result directory (default results/<timestamp>)")
    parser.add_argument("--server", default=os.environ.get(
        "ANUBIS_SERVER", os.path.join(ROOT, "build/release/src/anubis-server")))
    parser.add_argument("--load", default=os.environ.get(
        "ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load")))
    args = parser.parse_args(argv)
    # SIGTERM and SIGHUP end the runner as Ctrl-C does: by an exception, so that every run's
    # cleanup (kill its server and load client) happens before it exits instead of leaving them
    # behind.
    stop_on_signals()
    try:
        return run_matrix(args)
    except MatrixError as e:
        print("runner: error: %s" % e, file=sys.stderr)
        return 2
    except Interrupted as e:
        print("runner: interrupted; the runs so far are in %s" % e.runs_dir, file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the result directory was made: nothing was written
        print("runner: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
