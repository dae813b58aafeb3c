"""A whole matrix: find it, check it against the binaries, build every load command up front,
measure the capacity of an overload matrix, run every combination repetition by repetition with
progress on stderr, then write and print the results. Exit status 1 when a run was not verified."""

import os
import shutil
import stat
import statistics
import sys
import time

from . import ROOT
from .binaries import ask, help_defaults, server_strategies
from .columns import HEAD_COLUMNS, LOAD_COLUMNS, RESULT_COLUMNS
from .errors import Interrupted, MatrixError
from .matrix import Matrix
from .processes import REDIS_SERVER, AnubisServer
from .report import (clock, describe, fmt_us, meta, print_report, result_dir, summarise,
                     summary_columns, write_csv, write_json)
from .run import (capacity_parameters, capacity_run, expected_seconds, load_command,
                  load_parameters, run_once, runner_load_words, server_flags_for)

# Bundled matrices, which the command line may name without a path.
BUNDLED = os.path.join(ROOT, "harness", "matrices")

# Where the checks before the first run send a load command: anubis-load --check connects to
# nothing, and each run's own server gives the real address.
STAND_IN_HOST, STAND_IN_PORT = "127.0.0.1", 1
# The line CLI11 ends each refusal with; a refusal the runner quotes is not a command to rerun.
CLI11_HINT = "Run with --help for more information."
# What a run takes beyond its expected length, assumed by the first progress line's estimate
# until the first run has measured it.
RUN_OVERHEAD_S = 1.0
# An overload run's rate before the capacity is known: one every load client accepts, so that
# the first check judges all of the command but its rate, and the check after the capacity
# runs judges the rate.
STAND_IN_RATE = 1000.0

# Far above any matrix a person writes (the bundled ones are under 2 KB).
MAX_MATRIX_BYTES = 1 << 20


def find_matrix(name):
    """The path of the matrix a command line names: a name without a slash that names a bundled
    matrix (with or without .toml) is that one, whatever the current directory holds (a local
    quick.toml is ./quick.toml); any other name is a path."""
    if os.sep not in name:
        path = os.path.join(BUNDLED, name if name.endswith(".toml") else name + ".toml")
        if os.path.isfile(path):
            return path
    if os.path.exists(name):
        return name
    bundled = sorted(f.removesuffix(".toml") for f in os.listdir(BUNDLED) if f.endswith(".toml"))
    raise MatrixError("no matrix %s: neither a file nor a bundled matrix (%s)" % (
        name, ", ".join(bundled)))


def read_matrix(path):
    """The text of a matrix file, which TOML requires to be UTF-8. Only a regular file of at
    most MAX_MATRIX_BYTES is read: a FIFO would block the runner and /dev/zero never ends."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise MatrixError("the matrix %s is not a regular file" % path)
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_MATRIX_BYTES + 1)
        if len(text) > MAX_MATRIX_BYTES:
            raise MatrixError("the matrix %s is larger than %d bytes: a matrix lists axes, "
                              "not data" % (path, MAX_MATRIX_BYTES))
        return text
    except OSError as e:
        raise MatrixError("cannot read the matrix %s: %s" % (path, e.strerror))
    except UnicodeDecodeError as e:
        raise MatrixError("the matrix %s is not UTF-8 text (byte %d): a matrix is a TOML file"
                          % (path, e.start))


def ask_check(binary, who, arg_lists, common=()):
    """Runs `binary --check COMMON ARGS` once for each distinct argument list, before the runs
    that would use them, so that a value the binary refuses fails the matrix at once, in the
    binary's own words, instead of failing its runs one by one. A refusal quotes ARGS: COMMON
    are the caller's own words, not a choice of whoever wrote the arguments."""
    for args in dict.fromkeys(tuple(args) for args in arg_lists):
        result = ask(binary, "--check", *common, *args)
        if result.returncode != 0:
            reason = "\n".join(line for line in result.stderr.strip().splitlines()
                               if line.strip() != CLI11_HINT)
            raise MatrixError("the %s refuses %s: %s" % (who, " ".join(args) or "its defaults",
                                                         reason))


def require_check(load, load_flags):
    """Refuses a load client without --check (by the flags its --help lists): every tool asks
    it about its commands before the first run, and an exit status alone could come from any
    program."""
    if "check" not in load_flags:
        raise MatrixError("%s lacks --check: is it anubis-load? (./lab build release)" % load)


def check_server_flags(server, matrix):
    """The server's verdict on every ANUBIS combination: a range, a strategy's capability."""
    ask_check(server, "server", [server_flags_for(matrix, combo)[0]
                                 for combo in matrix.combinations
                                 if (combo.get("target") or "anubis") == "anubis"],
              common=AnubisServer.PORT_FLAGS)


def check_load_flags(load, commands):
    """The load client's verdict on every load command (load_command at the stand-in address):
    users = 0, a sell_ratio above 1, an unknown distribution. Each run's own --json-out is left
    out (its directory is checked apart), and a refusal quotes the matrix's words only."""
    runner_words = runner_load_words(STAND_IN_HOST, STAND_IN_PORT)
    arg_lists = []
    for cmd in commands:
        args = cmd[1 + len(runner_words):]
        json_at = args.index("--json-out")
        del args[json_at:json_at + 2]
        arg_lists.append(args)
    ask_check(load, "load client", arg_lists, runner_words)


def check_combinations_load(ctx, capacity=None):
    """check_load_flags for the load command of every combination: overload rates at the
    measured capacity, or, before it is known (None), at STAND_IN_RATE."""
    commands = []
    for combo in ctx.matrix.combinations:
        if capacity is None and "rate_multiple" in combo:
            params, passed = load_parameters(ctx.matrix, dict(combo, rate_multiple=1.0),
                                             STAND_IN_RATE)
        else:
            params, passed = load_parameters(ctx.matrix, combo, capacity)
        commands.append(load_command(ctx.load, ctx.load_flags, STAND_IN_HOST, STAND_IN_PORT,
                                     combo.get("target") or "anubis", params, passed,
                                     ctx.matrix.client_cpus, os.devnull))
    check_load_flags(ctx.load, commands)


def measure_capacity(ctx):
    """The events/s of `repeat` capacity runs, one after another: their median is the capacity,
    so that one run disturbed by the rest of a busy machine does not move every rate."""
    matrix = ctx.matrix
    print("measuring capacity: %d x %g s closed loop against the default server" % (
        matrix.repeat, matrix.capacity_duration), file=sys.stderr)
    runs = []
    for number in range(1, matrix.repeat + 1):
        runs.append(capacity_run(ctx, number))
        print("[capacity %d/%d] %.0f events/s" % (number, matrix.repeat, runs[-1]),
              file=sys.stderr, flush=True)
    return runs


class Context:
    """What every run of one matrix shares: binaries, their flags, the matrix, the columns, the
    runs directory, and the Redis version once a Redis run has seen it."""


def run_matrix(args):
    """Checks the matrix, the binaries and the result directory, then runs the matrix. Nothing
    is written before every check has passed; SIGINT or SIGTERM after the result directory
    exists is raised as Interrupted, which names the directory the runs so far are in."""
    path = find_matrix(args.matrix)
    for binary in (args.server, args.load):
        if not os.access(binary, os.X_OK):
            raise MatrixError("%s is not built (./lab build release)" % binary)
    if args.out == "":
        raise MatrixError("--out is empty: give a directory, or leave --out out for the "
                          "default results/<timestamp>")
    text = read_matrix(path)

    ctx = Context()
    ctx.server, ctx.load = os.path.abspath(args.server), os.path.abspath(args.load)
    strategies = server_strategies(ctx.server)
    server_flags, server_defaults = help_defaults(ctx.server)
    ctx.load_flags, _ = help_defaults(ctx.load)
    ctx.matrix = matrix = Matrix(path, text, strategies, server_flags, server_defaults, args)
    ctx.redis_version = None

    ctx.columns = (list(HEAD_COLUMNS) + matrix.server_axis_columns + list(LOAD_COLUMNS)
                   + list(RESULT_COLUMNS))
    ctx.summary_key_columns = (["combination", "target"] + matrix.server_axis_columns
                               + list(LOAD_COLUMNS))

    # Every run's load command, built once before anything starts: a load client that lacks a
    # flag the matrix needs, or refuses a value, fails here, not after half of the matrix.
    # Overload runs, whose rates are not known yet, are checked for everything but their rate
    # here, and with their real rates after the capacity runs.
    require_check(ctx.load, ctx.load_flags)
    check_combinations_load(ctx)
    if matrix.multiples:
        check_load_flags(ctx.load, [load_command(
            ctx.load, ctx.load_flags, STAND_IN_HOST, STAND_IN_PORT, "anubis",
            *capacity_parameters(matrix), matrix.client_cpus, os.devnull)])
    check_server_flags(ctx.server, matrix)
    if (any((combo.get("target") or "anubis") == "redis" for combo in matrix.combinations)
            and not shutil.which(REDIS_SERVER)):
        raise MatrixError("%s is not installed (./lab setup installs it): the matrix has "
                          "target redis runs" % REDIS_SERVER)
    plan = [(rep, number, combo) for rep in range(1, matrix.repeat + 1)
            for number, combo in enumerate(matrix.combinations, 1)]

    out_dir = args.out or result_dir(os.path.join(ROOT, "results"))
    ctx.runs_dir = os.path.join(out_dir, "runs")
    # A second matrix's files among the first's would pass for one result set.
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise MatrixError("the result directory %s is not empty: give a new or empty one"
                          % out_dir)
    try:
        os.makedirs(ctx.runs_dir, exist_ok=True)
    except OSError as e:
        raise MatrixError("cannot use %s as the result directory: %s" % (out_dir, e.strerror))
    if not os.access(ctx.runs_dir, os.W_OK | os.X_OK):
        raise MatrixError("cannot write to the result directory %s" % out_dir)
    try:
        return run_plan(ctx, path, text, strategies, plan, out_dir)
    except KeyboardInterrupt as e:
        raise Interrupted(ctx.runs_dir) from e


def time_left(expected_left, runs_left, overhead):
    """The progress line's estimate of the time left: the expected lengths of the runs still to
    come (expected_seconds), plus for each of them the overhead, what a run so far took beyond
    its expected length (starting the server, connecting, the drain, verifying; negative where
    runs end sooner than assumed, as a closed loop with --events may)."""
    return max(0.0, expected_left + overhead * runs_left)


def run_plan(ctx, path, text, strategies, plan, out_dir):
    """The capacity runs of an overload matrix, then every run of the plan with a progress line
    on stderr, then the results: written, and printed on stdout. Returns the exit status."""
    matrix = ctx.matrix
    started = time.monotonic()
    capacity_runs = []
    capacity = None
    if matrix.multiples:
        capacity_runs = measure_capacity(ctx)
        capacity = statistics.median(capacity_runs)
        print("capacity %.0f events/s (median of %d, %.0f - %.0f)" % (
            capacity, len(capacity_runs), min(capacity_runs), max(capacity_runs)),
            file=sys.stderr)
        try:
            check_combinations_load(ctx, capacity)
        except MatrixError as e:
            raise MatrixError("at the measured capacity of %.0f events/s, %s" % (capacity, e))

    print("%s: %d combinations x %d repetitions = %d runs -> %s" % (
        os.path.basename(path), len(matrix.combinations), matrix.repeat, len(plan), out_dir),
        file=sys.stderr)
    expected = [expected_seconds(load_parameters(matrix, combo, capacity)[0])
                for combo in matrix.combinations]
    expected_left = sum(expected) * matrix.repeat
    expected_done = 0.0
    rows = []
    run_started = time.monotonic()
    for index, (rep, number, combo) in enumerate(plan, 1):
        elapsed = time.monotonic() - run_started
        finished = index - 1
        overhead = (elapsed - expected_done) / finished if finished else RUN_OVERHEAD_S
        print("[run %d/%d] %s (rep %d)  elapsed %s, ~%s left" % (
            index, len(plan), describe(combo), rep, clock(time.monotonic() - started),
            clock(time_left(expected_left, len(plan) - finished, overhead))),
            file=sys.stderr, flush=True)
        row = run_once(ctx, index, rep, number, combo, capacity)
        rows.append(row)
        expected_done += expected[number - 1]
        expected_left -= expected[number - 1]
        status = "verified" if row["verified"] == "true" else "NOT VERIFIED: " + row["failure"]
        rate = "%.0f events/s" % float(row["events_per_s"]) if row["events_per_s"] != "" else "-"
        print("          %s, p99 %s, %s" % (rate, fmt_us(row["p99_us"]), status),
              file=sys.stderr, flush=True)

    csv_path = os.path.join(out_dir, "results.csv")
    write_csv(csv_path, ctx.columns, rows)
    summary = summarise(ctx, rows, capacity)
    write_csv(os.path.join(out_dir, "summary.csv"), summary_columns(ctx), summary)

    meta_data = meta(ctx, path, text, strategies, rows, capacity_runs, started)
    write_json(os.path.join(out_dir, "meta.json"), meta_data)

    print_report(ctx, path, meta_data, summary, csv_path)
    if not meta_data["all_verified"]:
        bad = sum(r["verified"] != "true" for r in rows)
        print("%d of %d runs were NOT verified (see the failure column)" % (bad, len(rows)),
              file=sys.stderr)
        return 1
    return 0
