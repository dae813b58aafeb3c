"""One run of one combination: its server flags and load command, starting and stopping the
server, the checks that decide whether it is verified, and its row of results.csv. A capacity
run of an overload matrix is one closed-loop run of the default server."""

import json
import math
import os
import signal
import subprocess
import time

from .binaries import flag, normalise, number_text
from .columns import LATENCY_KEYS
from .errors import MatrixError
from .matrix import LOAD_DEFAULTS, OPEN_LOOP_ONLY
from .processes import (AnubisServer, RedisServer, child_preexec, signal_child, tail,
                        wait_rusage)

LOAD_JSON_SCHEMA = 2  # the anubis-load --json-out layout this runner reads (docs/RESULTS.md)
LOAD_GRACE_S = 120  # beyond a run's expected length: connecting, draining, verifying
# The length assumed for a closed loop with --events, which goes as fast as the server answers
# and so has no length known in advance.
CLOSED_LOOP_EVENTS_S = 60


def server_flags_for(matrix, combo):
    """The anubis-server flags of a combination and the value of every server column."""
    values = matrix.unvaried_server_values()
    flags = []
    for key, value in matrix.fixed_server.items():
        if key not in matrix.axes:
            flags += [flag(key), value]
    for key, (kind, _) in matrix.axes.items():
        if kind in ("registry", "server"):
            values[key] = combo[key]
            flags += [flag(key), combo[key]]
    return flags, values


def offered_rate(multiple, capacity):
    """The --rate of an overload run: multiple x capacity to six significant digits. Whole
    events/s would turn a small multiple of a small capacity into 0, which no load client runs;
    six digits keep every positive rate positive and its CSV column short."""
    return float("%.6g" % (multiple * capacity))


def load_parameters(matrix, combo, capacity):
    """The effective load parameters of a combination (every LOAD_DEFAULTS key) and the keys
    to pass as flags: only those the matrix set, so that a load client without the open-loop
    flags still runs closed-loop matrices, and defaults stay the load client's own. An
    overload combination's rate is its multiple of capacity."""
    params = dict(matrix.load)
    passed = set(matrix.load_set)
    for key, (kind, _) in matrix.axes.items():
        if kind == "load":
            params[key] = combo[key]
    if "rate_multiple" in combo:
        params["rate"] = offered_rate(combo["rate_multiple"], capacity)
        passed.add("rate")
    if params.get("events") is not None:
        params["duration"] = None
    # Matrix refuses pipeline with a rate and open-loop flags without one, except that an
    # overload matrix's pipeline belongs to its closed-loop capacity run only.
    if params.get("rate") is not None:
        passed.discard("pipeline")
        params["pipeline"] = None
    if params["distribution"] != "zipf":
        passed.discard("zipf_s")
    return params, passed


def runner_load_words(host, port):
    """The words every load command starts with, the runner's rather than the matrix's: the
    address of the run's server, and what the runner needs of every run."""
    return ["--host", host, "--port", str(port), "--verify", "--quiet"]


def load_command(binary, load_flags, host, port, target, params, passed, client_cpus, json_out):
    cmd = [binary, *runner_load_words(host, port), "--json-out", json_out]
    if target != "anubis":
        cmd += ["--target", target]
    for key in LOAD_DEFAULTS:
        if key in passed and params.get(key) is not None:
            cmd += [flag(key), number_text(params[key])]
    if client_cpus and "cpus" in load_flags:
        cmd += ["--cpus", ",".join(map(str, client_cpus))]
    missing = [w for w in cmd if w.startswith("--") and normalise(w[2:]) not in load_flags]
    if missing:
        raise MatrixError("%s lacks %s: rebuild it (./lab build release)" % (
            binary, " ".join(sorted(set(missing)))))
    return cmd


def exit_text(name, code):
    """"server exited with 1", or "server killed by signal 9" for a negative exit code."""
    if code < 0:
        return "%s killed by signal %d" % (name, -code)
    return "%s exited with %s" % (name, code)


def final_problems(final, code):
    """What is wrong with an anubis-server exit: [] when it stopped cleanly and adds up."""
    problems = []
    if code != 0:
        problems.append(exit_text("server", code))
    if final is None:
        problems.append("server printed no final line")
        return problems
    needed = ("received", "accepted", "dropped", "invalid", "rejected_shutting_down", "processed")
    missing = [k for k in needed if not isinstance(final.get(k), int)]
    if missing:
        problems.append("final line lacks %s" % ", ".join(missing))
        return problems
    if final["processed"] != final["accepted"]:
        problems.append("processed %d != accepted %d" % (final["processed"], final["accepted"]))
    parts = sum(final[k] for k in ("accepted", "dropped", "invalid", "rejected_shutting_down"))
    if final["received"] != parts:
        problems.append("received %d != accepted+dropped+invalid+rejected_shutting_down %d" % (
            final["received"], parts))
    return problems


def accepted_problems(final, summary):
    """Whether the server accepted exactly the events the client saw accepted (warm-up included).

    A load client too old to report accepted_with_warmup is not checked here."""
    client = (summary or {}).get("accepted_with_warmup")
    if final is None or client is None or final.get("accepted") == client:
        return []
    return ["server accepted %s, client counted %s" % (final.get("accepted"), client)]


def load_problems(code, result, stopped_at=None):
    """What is wrong with an anubis-load run: exit status and its --verify verdict. stopped_at
    is the time limit (load_time_limit) at which the runner killed it, if it did."""
    problems = []
    if stopped_at is not None:
        limit, expected = (number_text(round(s, 1)) for s in (stopped_at,
                                                               stopped_at - LOAD_GRACE_S))
        problems.append("anubis-load stopped at the runner's time limit of %s s (the run's "
                        "expected %s s + %d s)" % (limit, expected, LOAD_GRACE_S))
    elif code != 0:
        problems.append(exit_text("anubis-load", code))
    if result is None:
        problems.append("anubis-load wrote no JSON")
        return problems
    if result.get("schema") != LOAD_JSON_SCHEMA:
        problems.append("anubis-load JSON is schema %s, not %d" % (result.get("schema"),
                                                                   LOAD_JSON_SCHEMA))
        return problems
    verify = result.get("verify")
    if not isinstance(verify, dict):
        problems.append("anubis-load JSON has no verify result")
    elif verify.get("ok") is not True:
        problems.append("verify %s (%s mismatches)" % (verify.get("outcome"),
                                                       verify.get("mismatches")))
    return problems


def expected_seconds(params):
    """How long anubis-load's load lasts, warm-up included, by its effective parameters
    (load_parameters): --duration; with --events in the open loop, its schedule (each connection
    sends at most ceil(events / connections) events, connections / rate seconds apart); with
    --events in the closed loop, CLOSED_LOOP_EVENTS_S."""
    if params.get("events") is None:
        measured = float(params["duration"])
    elif params.get("rate") is not None:
        connections = float(params["connections"])
        measured = (math.ceil(float(params["events"]) / connections) * connections
                    / float(params["rate"]))
    else:
        measured = CLOSED_LOOP_EVENTS_S
    return measured + float(params["warmup"])


def load_time_limit(params):
    """Seconds after which the runner kills anubis-load: its expected length and a grace."""
    return expected_seconds(params) + LOAD_GRACE_S


def run_load(cmd, params, cpus, log_path):
    """Runs anubis-load to its end (killed at its time limit, or when the runner itself is
    interrupted, so that no load client outlives the runner). Returns (exit code, rusage, the
    time limit in s if the runner killed it there, else None)."""
    limit = load_time_limit(params)
    load = None
    try:
        with open(log_path, "w") as log:
            load = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=child_preexec(cpus))
        deadline = time.monotonic() + limit
        code, usage = wait_rusage(load, deadline)
        # wait_rusage kills it with SIGKILL once the deadline has passed.
        stopped = code == -signal.SIGKILL and time.monotonic() > deadline
        return code, usage, limit if stopped else None
    finally:
        if load is not None and load.returncode is None:
            signal_child(load, signal.SIGKILL)
            os.wait4(load.pid, 0)


def read_load_json(path):
    """anubis-load's --json-out, or None when it wrote none (or not a whole one)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_once(ctx, index, repetition, combination, combo, capacity):
    matrix = ctx.matrix
    target = combo.get("target") or "anubis"
    params, passed = load_parameters(matrix, combo, capacity)
    run_dir = ctx.runs_dir
    stem = os.path.join(run_dir, "%03d" % index)
    json_out = stem + "-load.json"
    row = {c: "" for c in ctx.columns}
    row.update(run=index, repetition=repetition, combination=combination, target=target)
    if target == "anubis":
        flags, server_values = server_flags_for(matrix, combo)
        for key in matrix.server_axis_columns:
            row[key] = server_values.get(key, "")
    open_loop = params.get("rate") is not None
    row.update(
        load_mode="open" if open_loop else "closed",
        connections=params["connections"],
        pipeline="" if open_loop else params["pipeline"],
        rate_multiple=combo.get("rate_multiple", ""),
        rate=number_text(params["rate"]) if open_loop else "",
        max_inflight=params["max_inflight"] if open_loop else "",
        timeout_ms=params["timeout_ms"] if open_loop else "",
        duration_s="" if params.get("duration") is None else number_text(params["duration"]),
        events="" if params.get("events") is None else params["events"],
        warmup_s=number_text(params["warmup"]),
        users=params["users"],
        distribution=params["distribution"],
        zipf_s=number_text(params["zipf_s"]) if params["distribution"] == "zipf" else "",
        sell_ratio=number_text(params["sell_ratio"]),
        seed=params["seed"],
        threads=params["threads"],
        client_cpus=",".join(map(str, matrix.client_cpus)),
        server_cpus=",".join(map(str, matrix.server_cpus)),
    )

    problems = []
    server = None
    try:
        if target == "anubis":
            server = AnubisServer(ctx.server, flags, matrix.server_cpus, stem + "-server.log")
        else:
            server = RedisServer(matrix.server_cpus, stem + "-redis.log")
            ctx.redis_version = ctx.redis_version or server.version()
        cmd = load_command(ctx.load, ctx.load_flags, server.host, server.port, target, params,
                           passed, matrix.client_cpus, json_out)
        load_code, load_usage, stopped_at = run_load(cmd, params, matrix.client_cpus,
                                                     stem + "-load.log")
        result = read_load_json(json_out)
        problems += load_problems(load_code, result, stopped_at)
        if load_code != 0:
            problems.append("load log: %s" % tail(stem + "-load.log", 2))
        if target == "anubis":
            code, final, usage = server.stop()
            problems += final_problems(final, code)
            server_events = final.get("processed") if final else None
            invalid = final.get("invalid") if final else None
            problems += accepted_problems(final, (result or {}).get("summary"))
        else:
            server_events = server.events()
            invalid = None
            code, usage = server.stop()
            if code != 0:
                problems.append(exit_text("redis-server", code))
        server = None
        fill_results(row, result, server_events, invalid, usage, load_usage)
    except MatrixError:
        raise
    except Exception as e:  # one broken run must not lose the others
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        if server is not None:
            server.kill()
    row["verified"] = "false" if problems else "true"
    row["failure"] = "; ".join(problems)
    return row


def fill_results(row, result, server_events, invalid, usage, load_usage):
    result = result or {}
    summary = result.get("summary", {})
    # What the client really ran with: it caps its threads at the connections and records the
    # CPUs it could pin to, which may differ from what the matrix asked for.
    parameters = result.get("parameters", {})
    if "threads" in parameters:
        row["threads"] = parameters["threads"]
    if isinstance(parameters.get("cpus"), list):
        row["client_cpus"] = ",".join(map(str, parameters["cpus"]))
    corrected = result.get("latency_us", {})
    uncorrected = result.get("latency_uncorrected_us", {})
    for key in ("elapsed_s", "accepted", "dropped", "rejected_shutting_down", "errors",
                "timeouts", "missed_sends", "unanswered"):
        if key in summary:
            row[key] = summary[key]
    for key in ("events_per_s", "sent_per_s"):
        if key in summary:
            row[key] = round(summary[key], 1)
    if "kept_up" in summary:
        row["kept_up"] = "true" if summary["kept_up"] else "false"
    for key in LATENCY_KEYS:
        if key in corrected:
            row["%s_us" % key] = corrected[key]
        if key in uncorrected:
            row["uncorrected_%s_us" % key] = uncorrected[key]
    row["invalid"] = "" if invalid is None else invalid
    row["server_events"] = "" if server_events is None else server_events
    row["peak_rss_mib"] = round(usage.ru_maxrss / 1024, 1)  # ru_maxrss is in KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    row["server_cpu_s"] = round(cpu, 3)
    row["client_cpu_s"] = round(load_usage.ru_utime + load_usage.ru_stime, 3)
    if server_events:
        row["cpu_s_per_million_events"] = round(cpu / server_events * 1e6, 3)


def capacity_parameters(matrix):
    """The load of an overload matrix's capacity run: its shape, closed loop, for
    capacity_duration seconds. Returns (parameters, keys to pass) as load_parameters does."""
    params = dict(matrix.load, rate=None, duration=matrix.capacity_duration, events=None)
    passed = (matrix.load_set | {"duration"}) - {"events", "rate", "zipf_s"} - set(OPEN_LOOP_ONLY)
    if params["distribution"] == "zipf":
        passed |= {"zipf_s"} & matrix.load_set
    return params, passed


def capacity_run(ctx, number):
    """Closed-loop accepted events/s of the default server under the matrix's connections and
    pipeline, in runs/capacity-NUMBER-*: one measurement of the 1.0x point of an overload
    matrix. A run that is not verified measured nothing, and the matrix stops."""
    matrix = ctx.matrix
    params, passed = capacity_parameters(matrix)
    fixed = [w for key, value in matrix.fixed_server.items() for w in (flag(key), value)]
    stem = os.path.join(ctx.runs_dir, "capacity-%d" % number)
    server = None
    try:
        server = AnubisServer(ctx.server, fixed, matrix.server_cpus, stem + "-server.log")
        cmd = load_command(ctx.load, ctx.load_flags, server.host, server.port, "anubis", params,
                           passed, matrix.client_cpus, stem + "-load.json")
        code, _, stopped_at = run_load(cmd, params, matrix.client_cpus, stem + "-load.log")
        scode, final, _ = server.stop()
        server = None
    except RuntimeError as e:  # the server did not start
        raise MatrixError("capacity run %d: %s" % (number, e))
    finally:
        if server is not None:
            server.kill()
    result = read_load_json(stem + "-load.json")
    problems = load_problems(code, result, stopped_at) + final_problems(final, scode)
    if code != 0:
        problems.append("load log: %s" % tail(stem + "-load.log", 2))
    if problems:
        raise MatrixError("capacity run %d not verified: %s" % (number, "; ".join(problems)))
    return result["summary"]["events_per_s"]
