#!/usr/bin/python3
"""Matrix runner: the same load against every combination of server setups, every run verified.

A matrix file (TOML, harness/matrices/*.toml) lists axis values and one load shape:

    mode = "product"            # or "one_at_a_time": each axis varied alone from the defaults
    repeat = 3                  # runs per combination, alternating A B C A B C
    server_cpus = "1"           # optional pinning (sched_setaffinity); client_cpus likewise
    [axes]
    queue = "all"               # a key of `anubis-server --list-strategies`: "all" or names
    workers = [1, 2]            # a plain server flag (--workers)
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
is 1 when any run was not verified. Columns and keys: docs/RESULTS.md.

    harness/runner.py harness/matrices/quick.toml
    harness/runner.py harness/matrices/axes.toml --repeat 5 --server-cpus 1 --client-cpus 0
"""

import argparse
import csv
import datetime
import itertools
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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

# Load parameters a matrix may set (in [load] or as an axis), with the load client's defaults
# (anubis-load --help; docs/RESULTS.md). Keys are flags with underscores for dashes.
LOAD_DEFAULTS = {
    "connections": 50, "pipeline": 16, "duration": 10.0, "events": None, "users": 10000,
    "seed": 1, "threads": 1, "rate": None, "max_inflight": 128, "timeout_ms": 2000,
    "warmup": 0.0, "distribution": "uniform", "zipf_s": 0.99, "sell_ratio": 0.5,
}

# Flags of anubis-load only the open loop accepts; the closed loop only takes --pipeline.
OPEN_LOOP_ONLY = ("max_inflight", "timeout_ms")

SERVER_START_TIMEOUT_S = 15
SERVER_STOP_TIMEOUT_S = 60
LOAD_JSON_SCHEMA = 2  # the anubis-load --json-out layout this runner reads (docs/RESULTS.md)
LOAD_GRACE_S = 120  # beyond duration + warmup: connecting, draining, verifying


class MatrixError(Exception):
    """The matrix or the environment cannot be run at all (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# Processes


def affinity_preexec(cpus):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def parse_cpus(text):
    """"0,2-3" -> [0, 2, 3]; "" or None -> []."""
    if text in (None, ""):
        return []
    cpus = []
    for part in str(text).split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    allowed = os.sched_getaffinity(0)
    missing = [c for c in cpus if c not in allowed]
    if missing:
        raise MatrixError("CPU %s not available to this process (allowed: %s)" % (
            ",".join(map(str, missing)), ",".join(map(str, sorted(allowed)))))
    return cpus


def wait_rusage(proc, deadline):
    """Reaps proc with wait4 so that its own peak RSS and CPU time are known; kills it at deadline.

    Returns (exit code, rusage). A negative exit code is the signal that ended it."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        time.sleep(0.01)


def read_line_matching(fd, pattern, deadline, buffer):
    """Reads from a pipe until a line matches pattern (returns the match) or EOF/deadline (None)."""
    while True:
        for line in buffer[0].split("\n")[:-1]:
            match = pattern.match(line.strip())
            if match:
                return match
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buffer[0] += chunk.decode(errors="replace")


def read_to_eof(fd, deadline, buffer):
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer[0] += chunk.decode(errors="replace")


class AnubisServer:
    """One anubis-server on port 0: started, then stopped with SIGTERM and reaped with wait4."""

    LISTENING = re.compile(r"listening on .*:(\d+)$")

    def __init__(self, binary, flags, cpus, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "--port", "0", *flags], stdout=subprocess.PIPE,
                                     stderr=self.log, preexec_fn=affinity_preexec(cpus))
        self.out = [""]
        match = read_line_matching(self.proc.stdout.fileno(), self.LISTENING,
                                   time.monotonic() + SERVER_START_TIMEOUT_S, self.out)
        if not match:
            code, _ = wait_rusage(self.proc, time.monotonic() + 5)
            self.close()
            raise RuntimeError("server did not report `listening on` (exit %s): %s" % (
                code, tail(log_path)))
        self.port = int(match.group(1))

    def stop(self):
        """SIGTERM, wait for exit. Returns (exit code, final dict or None, rusage)."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT_S
        read_to_eof(self.proc.stdout.fileno(), deadline, self.out)
        code, usage = wait_rusage(self.proc, deadline)
        self.close()
        finals = [l for l in self.out[0].splitlines() if l.startswith("final ")]
        final = None
        if finals:
            try:
                final = json.loads(finals[-1][len("final "):])
            except ValueError:
                final = None
        return code, final, usage

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()
            wait_rusage(self.proc, time.monotonic() + 5)
        self.close()

    def close(self):
        self.proc.stdout.close()
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_command(port, *words, timeout=5.0):
    """Sends one RESP command to 127.0.0.1:port and returns the decoded reply (str, int or None)."""
    payload = b"*%d\r\n" % len(words)
    for w in words:
        w = str(w).encode()
        payload += b"$%d\r\n%s\r\n" % (len(w), w)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        line = f.readline()
        if not line:
            return None
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis error: %s" % rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        raise RuntimeError("unexpected redis reply %r" % line)


class RedisServer:
    """A private redis-server (never the system service): no persistence, loopback, a free port."""

    def __init__(self, cpus, log_path, binary="redis-server"):
        if not shutil.which(binary):
            raise MatrixError("redis-server is not installed (./lab setup installs it)")
        self.log_path = log_path
        self.dir = os.path.dirname(os.path.abspath(log_path))
        last_error = ""
        for _ in range(5):  # another process may take the free port before redis binds it
            self.port = free_port()
            self.log = open(log_path, "w")
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--bind", "127.0.0.1", "--daemonize", "no", "--dir", self.dir],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=affinity_preexec(cpus))
            if self._wait_ready(time.monotonic() + SERVER_START_TIMEOUT_S):
                return
            last_error = tail(log_path)
            self.kill()
        raise RuntimeError("redis-server did not answer PING: %s" % last_error)

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if resp_command(self.port, "PING", timeout=1) == "PONG":
                    return True
            except (OSError, RuntimeError):
                pass
            time.sleep(0.02)
        return False

    def events(self):
        """INCRBY + DECRBY calls since start: the events Redis applied (INFO commandstats)."""
        info = resp_command(self.port, "INFO", "commandstats") or ""
        total = 0
        for name in ("incrby", "decrby"):
            match = re.search(r"cmdstat_%s:calls=(\d+)" % name, info)
            if match:
                total += int(match.group(1))
        return total

    def version(self):
        info = resp_command(self.port, "INFO", "server") or ""
        match = re.search(r"redis_version:(\S+)", info)
        return match.group(1) if match else None

    def stop(self):
        """SHUTDOWN NOSAVE (SIGTERM if that fails). Returns (exit code, rusage)."""
        try:
            resp_command(self.port, "SHUTDOWN", "NOSAVE")
        except (OSError, RuntimeError):
            self.proc.send_signal(signal.SIGTERM)
        code, usage = wait_rusage(self.proc, time.monotonic() + SERVER_STOP_TIMEOUT_S)
        self.log.close()
        return code, usage

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()
            wait_rusage(self.proc, time.monotonic() + 5)
        self.log.close()


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.strip() for l in f.read().splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# What the binaries offer


def server_strategies(server):
    out = subprocess.run([server, "--list-strategies"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def help_defaults(binary):
    """{flag name with underscores: default text} from CLI11's --help ("--workers UINT=1")."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    flags, defaults = set(), {}
    for line in out.splitlines():
        match = re.match(r"\s+(?:-\w,)?--([\w-]+)(.*)$", line)
        if not match:
            continue
        name = match.group(1).replace("-", "_")
        flags.add(name)
        rest = match.group(2).split(" Excludes:")[0].strip()
        if "=" in rest:
            defaults[name] = rest.rsplit("=", 1)[1].strip()
    return flags, defaults


def normalise(key):
    return key.replace("-", "_")


def flag(key):
    return "--" + key.replace("_", "-")


def number_text(value):
    """Axis values as they appear in flags and CSV: 1.0 -> "1", "mutex" -> "mutex"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# The matrix


class Matrix:
    """The parsed matrix: axes classified, combinations expanded, load shape resolved."""

    def __init__(self, path, text, strategies, server_flags, server_defaults, overrides):
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise MatrixError("%s: %s" % (path, e))
        known = {"description", "mode", "repeat", "server_cpus", "client_cpus", "axes", "server",
                 "load", "overload"}
        unknown = set(spec) - known
        if unknown:
            raise MatrixError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))
        self.description = spec.get("description", "")
        self.mode = spec.get("mode", "product")
        if self.mode not in ("product", "one_at_a_time"):
            raise MatrixError('mode must be "product" or "one_at_a_time"')
        self.repeat = int(overrides.repeat or spec.get("repeat", 1))
        self.server_cpus = parse_cpus(overrides.server_cpus or spec.get("server_cpus"))
        self.client_cpus = parse_cpus(overrides.client_cpus or spec.get("client_cpus"))

        self.registry_axes = list(strategies)
        self.server_defaults = {}
        for key in self.registry_axes:
            if key not in server_defaults:
                raise MatrixError("anubis-server --help gives no default for --%s" % key)
            self.server_defaults[key] = server_defaults[key]
        for key in FIXED_SERVER_COLUMNS:
            self.server_defaults[key] = server_defaults.get(key, "")

        self.fixed_server = {}
        for key, value in spec.get("server", {}).items():
            key = normalise(key)
            if key not in server_flags or key in ("port", "help", "list_strategies"):
                raise MatrixError("[server] %s is not an anubis-server flag" % key)
            self.fixed_server[key] = number_text(value)

        self.load = dict(LOAD_DEFAULTS)
        for key, value in spec.get("load", {}).items():
            key = normalise(key)
            if key not in LOAD_DEFAULTS:
                raise MatrixError("[load] %s is not a load parameter (%s)" % (
                    key, ", ".join(LOAD_DEFAULTS)))
            self.load[key] = value
        self.load_set = {normalise(k) for k in spec.get("load", {})}
        if overrides.duration:
            self.load["duration"] = overrides.duration
            self.load_set.add("duration")

        # axis name -> (kind, values); kinds: target, registry, server, load
        self.axes = {}
        for key, values in spec.get("axes", {}).items():
            key = normalise(key)
            if key == "target":
                kind = "target"
                values = ["anubis", "redis"] if values == "all" else values
                for v in values:
                    if v not in ("anubis", "redis"):
                        raise MatrixError("target must be anubis or redis, not %r" % v)
            elif key in strategies:
                kind = "registry"
                names = [row["name"] for row in strategies[key]]
                values = names if values == "all" else values
                for v in values:
                    if v not in names:
                        raise MatrixError("--%s %s is not in the registry (%s)" % (
                            key, v, ", ".join(names)))
            elif key in LOAD_DEFAULTS:
                kind = "load"
                self.load_set.add(key)
            elif key in server_flags:
                kind = "server"
                self.server_defaults.setdefault(key, server_defaults.get(key, ""))
            else:
                raise MatrixError("axis %s is neither a strategy axis, a server flag, a load "
                                  "parameter nor target" % key)
            if isinstance(values, str):
                values = [values]
            if not values:
                raise MatrixError("axis %s has no values" % key)
            self.axes[key] = (kind, [number_text(v) for v in values])

        self.server_axis_columns = self.registry_axes + list(FIXED_SERVER_COLUMNS) + [
            k for k, (kind, _) in self.axes.items()
            if kind == "server" and k not in FIXED_SERVER_COLUMNS]

        overload = spec.get("overload")
        self.multiples = None
        if overload is not None:
            self.multiples = [float(m) for m in overload.get("multiples", [])]
            if not self.multiples or min(self.multiples) <= 0:
                raise MatrixError("[overload] multiples must be positive numbers")
            self.capacity_duration = float(overload.get("capacity_duration", 3))
            if self.load.get("rate") is not None:
                raise MatrixError("[overload] sets the rate; [load] must not")

        self.combinations = self.expand()

    def default_value(self, key):
        kind, _ = self.axes[key]
        if kind == "target":
            return "anubis"
        if kind == "load":
            value = self.load.get(key)
            return None if value is None else number_text(value)
        return number_text(self.fixed_server.get(key, self.server_defaults.get(key, "")))

    def expand(self):
        """The combinations, each a dict axis -> value (plus "rate_multiple" with [overload])."""
        keys = list(self.axes)
        if self.mode == "product":
            combos = [dict(zip(keys, values))
                      for values in itertools.product(*(self.axes[k][1] for k in keys))]
        else:
            base = {k: self.default_value(k) for k in keys}
            combos = [base]
            for k in keys:
                for v in self.axes[k][1]:
                    if v != base[k]:
                        combos.append(dict(base, **{k: v}))
        # A Redis run has no server strategies: axes of the ANUBIS server do not apply to it.
        unique, seen = [], set()
        for c in combos:
            if c.get("target", "anubis") == "redis":
                c = {k: (v if self.axes[k][0] in ("target", "load") else None)
                     for k, v in c.items()}
            key = tuple(sorted((k, str(v)) for k, v in c.items()))
            if key not in seen:
                seen.add(key)
                unique.append(c)
        if self.multiples:
            unique = [dict(c, rate_multiple=m) for m in self.multiples for c in unique]
        return unique


# ---------------------------------------------------------------------------------------------
# One run


def server_flags_for(matrix, combo):
    """The anubis-server flags of a combination and the value of every server column."""
    values = dict(matrix.server_defaults)
    values.update(matrix.fixed_server)
    flags = []
    for key, value in matrix.fixed_server.items():
        if key not in matrix.axes:
            flags += [flag(key), value]
    for key, (kind, _) in matrix.axes.items():
        if kind in ("registry", "server"):
            values[key] = combo[key]
            flags += [flag(key), combo[key]]
    return flags, values


def load_parameters(matrix, combo, capacity):
    """The effective load parameters of a combination (every LOAD_DEFAULTS key) and the keys
    to pass as flags: only those the matrix set, so that a load client without the open-loop
    flags still runs closed-loop matrices, and defaults stay the load client's own."""
    params = dict(matrix.load)
    passed = set(matrix.load_set)
    for key, (kind, _) in matrix.axes.items():
        if kind == "load":
            params[key] = combo[key]
    if "rate_multiple" in combo:
        params["rate"] = round(combo["rate_multiple"] * capacity)
        passed.add("rate")
    if params.get("events") is not None:
        params["duration"] = None
    open_loop = params.get("rate") is not None
    if open_loop:
        passed.discard("pipeline")
        params["pipeline"] = None
    else:
        passed -= set(OPEN_LOOP_ONLY)
    if params["distribution"] != "zipf":
        passed.discard("zipf_s")
    return params, passed


def load_command(binary, load_flags, port, target, params, passed, client_cpus, json_out):
    cmd = [binary, "--host", "127.0.0.1", "--port", str(port), "--verify", "--quiet",
           "--json-out", json_out]
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


def final_problems(final, code):
    """What is wrong with an anubis-server exit: [] when it stopped cleanly and adds up."""
    problems = []
    if code != 0:
        problems.append("server exited with %s" % code)
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


def load_problems(code, result):
    """What is wrong with an anubis-load run: exit status and its --verify verdict."""
    problems = []
    if code != 0:
        problems.append("anubis-load exited with %s" % code)
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
        rate=params.get("rate") if open_loop else "",
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
        cmd = load_command(ctx.load, ctx.load_flags, server.port, target, params, passed,
                           matrix.client_cpus, json_out)
        with open(stem + "-load.log", "w") as log:
            load = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=affinity_preexec(matrix.client_cpus))
        budget = (params.get("duration") or 60) + float(params["warmup"]) + LOAD_GRACE_S
        load_code, load_usage = wait_rusage(load, time.monotonic() + budget)
        result = None
        if os.path.exists(json_out):
            try:
                with open(json_out) as f:
                    result = json.load(f)
            except ValueError:
                result = None
        problems += load_problems(load_code, result)
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
                problems.append("redis-server exited with %s" % code)
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


# ---------------------------------------------------------------------------------------------
# Environment and summary


def git_info():
    def git(*args):
        r = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def build_info(server):
    """Compiler, flags and preset of the build tree the server binary comes from."""
    d = os.path.dirname(os.path.abspath(server))
    while d != "/" and not os.path.exists(os.path.join(d, "CMakeCache.txt")):
        d = os.path.dirname(d)
    cache_path = os.path.join(d, "CMakeCache.txt")
    info = {"build_dir": d if os.path.exists(cache_path) else None}
    if not info["build_dir"]:
        return info
    cache = {}
    with open(cache_path) as f:
        for line in f:
            match = re.match(r"([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
            if match:
                cache[match.group(1)] = match.group(2)
    build_type = cache.get("CMAKE_BUILD_TYPE", "")
    info.update(
        preset=os.path.basename(d),
        build_type=build_type,
        compiler=cache.get("CMAKE_CXX_COMPILER"),
        cxx_flags=cache.get("CMAKE_CXX_FLAGS", ""),
        cxx_flags_build_type=cache.get("CMAKE_CXX_FLAGS_%s" % build_type.upper(), ""),
        sanitize=cache.get("ANUBIS_SANITIZE", ""),
        werror=cache.get("ANUBIS_WERROR", ""),
    )
    if info["compiler"]:
        r = subprocess.run([info["compiler"], "--version"], capture_output=True, text=True)
        info["compiler_version"] = r.stdout.splitlines()[0] if r.returncode == 0 else None
    return info


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)),
            "kernel": platform.release(), "hostname": platform.node()}


def mad(values):
    m = statistics.median(values)
    return statistics.median(abs(v - m) for v in values)


def summarise(ctx, rows, capacity):
    """One row per combination: median and spread of events/s and p99, ranked by events/s."""
    groups = {}
    for row in rows:
        groups.setdefault(row["combination"], []).append(row)
    out = []
    for combination, group in groups.items():
        first = group[0]
        s = {c: first.get(c, "") for c in ctx.summary_key_columns}
        s["combination"] = combination
        ok = [r for r in group if r["verified"] == "true" and r["events_per_s"] != ""]
        s["runs"] = len(group)
        s["verified_runs"] = sum(r["verified"] == "true" for r in group)
        s["kept_up_runs"] = sum(r["kept_up"] == "true" for r in group)
        for key in ("events_per_s", "p99_us"):
            values = [float(r[key]) for r in ok if r[key] != ""]
            for stat, fn in (("median", statistics.median), ("min", min), ("max", max),
                             ("mad", mad)):
                s["%s_%s" % (key, stat)] = round(fn(values), 1) if values else ""
        for key in ("peak_rss_mib", "cpu_s_per_million_events"):
            values = [float(r[key]) for r in ok if r[key] != ""]
            s["%s_median" % key] = round(statistics.median(values), 3) if values else ""
        out.append(s)
    # Ratios against the capacity (overload), else against the combination that runs the
    # server's defaults, else against the first combination.
    base = capacity
    if not base:
        defaults = [s for s in out if s["target"] == "anubis" and all(
            str(s[k]) == str(ctx.matrix.server_defaults.get(k, ""))
            for k in ctx.matrix.server_axis_columns)]
        base = (defaults or out)[0]["events_per_s_median"] if out else None
    for s in out:
        median = s["events_per_s_median"]
        s["ratio"] = round(median / base, 3) if base and median != "" else ""
    out.sort(key=lambda s: -(s["events_per_s_median"] or 0))
    for rank, s in enumerate(out, 1):
        s["rank"] = rank
    return out


def fmt_us(v):
    if v == "":
        return "-"
    v = float(v)
    return "%.0f us" % v if v < 1000 else "%.2f ms" % (v / 1000)


def print_summary(ctx, summary, stream):
    # Only what differs between combinations; a Redis row's empty server columns do not count.
    varying = [c for c in ctx.summary_key_columns if c not in ("combination",)
               and len({str(s[c]) for s in summary if s[c] not in ("", None)}) > 1]
    open_loop = any(s["load_mode"] == "open" for s in summary)
    if not varying:
        varying = ["combination"]
    rows = summary
    if ctx.matrix.multiples:
        rows = sorted(summary, key=lambda s: (str([s[c] for c in varying
                                                   if c not in ("rate_multiple", "rate")]),
                                              float(s["rate_multiple"] or 0)))
    header = ["rank"] + varying + ["events/s median", "min - max",
                                   "x capacity" if ctx.matrix.multiples else "ratio",
                                   "p99 median", "p99 min - max"] + (
                                       ["kept up"] if open_loop else []) + ["verified"]
    table = [header]
    for s in rows:
        table.append([str(s["rank"])] + [number_text(s[c]) if s[c] != "" else "-"
                                         for c in varying] + [
            "%.0f" % s["events_per_s_median"] if s["events_per_s_median"] != "" else "-",
            "%.0f - %.0f" % (s["events_per_s_min"], s["events_per_s_max"])
            if s["events_per_s_min"] != "" else "-",
            "%.2f" % s["ratio"] if s["ratio"] != "" else "-",
            fmt_us(s["p99_us_median"]),
            "%s - %s" % (fmt_us(s["p99_us_min"]), fmt_us(s["p99_us_max"]))] + (
            ["%d/%d" % (s["kept_up_runs"], s["runs"])] if open_loop else []) + [
            "%d/%d" % (s["verified_runs"], s["runs"]),
        ])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.rjust(w) if i > len(varying) else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(r, widths))), file=stream)


def describe(combo):
    parts = []
    for k, v in combo.items():
        if v is None:
            continue
        parts.append("%s=%s" % (k, number_text(v) if not isinstance(v, str) else v))
    return " ".join(parts) or "(defaults)"


def clock(seconds):
    seconds = int(round(seconds))
    return "%d:%02d" % (seconds // 60, seconds % 60)


class Context:
    pass


def result_dir(base):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(base, stamp)
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(base, "%s-%d" % (stamp, n))
    return path


def measure_capacity(ctx):
    """Closed-loop accepted events/s of the default server under the matrix's connections and
    pipeline: the 1.0x point of an overload matrix."""
    matrix = ctx.matrix
    params = dict(matrix.load, rate=None, duration=matrix.capacity_duration, events=None)
    passed = (matrix.load_set | {"duration"}) - {"events", "rate", "zipf_s"} - set(OPEN_LOOP_ONLY)
    fixed = [w for key, value in matrix.fixed_server.items() for w in (flag(key), value)]
    stem = os.path.join(ctx.runs_dir, "capacity")
    server = AnubisServer(ctx.server, fixed, matrix.server_cpus, stem + "-server.log")
    try:
        cmd = load_command(ctx.load, ctx.load_flags, server.port, "anubis", params, passed,
                           matrix.client_cpus, stem + "-load.json")
        code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=affinity_preexec(matrix.client_cpus)).returncode
        scode, final, _ = server.stop()
        server = None
    finally:
        if server is not None:
            server.kill()
    with open(stem + "-load.json") as f:
        result = json.load(f)
    problems = load_problems(code, result) + final_problems(final, scode)
    if problems:
        raise MatrixError("capacity run not verified: %s" % "; ".join(problems))
    return result["summary"]["events_per_s"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("matrix", help="a matrix file, or the name of one in harness/matrices/")
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
    try:
        return run_matrix(args)
    except MatrixError as e:
        print("runner: error: %s" % e, file=sys.stderr)
        return 2


def run_matrix(args):
    path = args.matrix
    if not os.path.exists(path) and os.sep not in path:
        path = os.path.join(ROOT, "harness", "matrices", path + ".toml")
    if not os.path.exists(path):
        raise MatrixError("no matrix %s" % args.matrix)
    for binary in (args.server, args.load):
        if not os.access(binary, os.X_OK):
            raise MatrixError("%s is not built (./lab build release)" % binary)
    with open(path) as f:
        text = f.read()

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
    # flag the matrix needs fails here, not after the first half of the matrix.
    for combo in matrix.combinations:
        params, passed = load_parameters(matrix, combo, 1.0)
        load_command(ctx.load, ctx.load_flags, 1, combo.get("target") or "anubis", params,
                     passed, matrix.client_cpus, os.devnull)

    out_dir = args.out or result_dir(os.path.join(ROOT, "results"))
    ctx.runs_dir = os.path.join(out_dir, "runs")
    os.makedirs(ctx.runs_dir, exist_ok=True)

    started = time.monotonic()
    capacity = None
    if matrix.multiples:
        print("measuring capacity: %g s closed loop against the default server" %
              matrix.capacity_duration, file=sys.stderr)
        capacity = measure_capacity(ctx)
        print("capacity %.0f events/s" % capacity, file=sys.stderr)

    plan = [(rep, number, combo) for rep in range(1, matrix.repeat + 1)
            for number, combo in enumerate(matrix.combinations, 1)]
    print("%s: %d combinations x %d repetitions = %d runs -> %s" % (
        os.path.basename(path), len(matrix.combinations), matrix.repeat, len(plan), out_dir),
        file=sys.stderr)
    rows = []
    run_started = time.monotonic()
    per_run = (matrix.load.get("duration") or 5) + float(matrix.load["warmup"]) + 1.0
    for index, (rep, number, combo) in enumerate(plan, 1):
        elapsed = time.monotonic() - run_started
        estimate = (elapsed / (index - 1) if index > 1 else per_run) * (len(plan) - index + 1)
        print("[run %d/%d] %s (rep %d)  elapsed %s, ~%s left" % (
            index, len(plan), describe(combo), rep, clock(time.monotonic() - started),
            clock(estimate)), file=sys.stderr, flush=True)
        row = run_once(ctx, index, rep, number, combo, capacity)
        rows.append(row)
        status = "verified" if row["verified"] == "true" else "NOT VERIFIED: " + row["failure"]
        rate = "%.0f events/s" % float(row["events_per_s"]) if row["events_per_s"] != "" else "-"
        print("          %s, p99 %s, %s" % (rate, fmt_us(row["p99_us"]), status),
              file=sys.stderr, flush=True)

    csv_path = os.path.join(out_dir, "results.csv")
    write_csv(csv_path, ctx.columns, rows)
    summary = summarise(ctx, rows, capacity)
    write_csv(os.path.join(out_dir, "summary.csv"),
              ["rank", "combination"] + [c for c in ctx.summary_key_columns if c != "combination"]
              + [c for c in SUMMARY_RESULT_COLUMNS if c != "rank"], summary)

    all_verified = all(r["verified"] == "true" for r in rows)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "matrix_path": os.path.relpath(path, ROOT) if path.startswith(ROOT) else path,
        "matrix": text,
        "git": git_info(),
        "build": build_info(ctx.server),
        "machine": machine_info(),
        "python": platform.python_version(),
        "server": ctx.server,
        "load": ctx.load,
        "redis": {"version": ctx.redis_version} if ctx.redis_version else None,
        "strategies": strategies,
        "server_defaults": matrix.server_defaults,
        "axes": {k: {"kind": kind, "values": v} for k, (kind, v) in matrix.axes.items()},
        "combinations": len(matrix.combinations),
        "repeat": matrix.repeat,
        "runs": len(rows),
        "capacity": {"events_per_s": capacity, "duration_s": matrix.capacity_duration}
        if capacity else None,
        "columns": ctx.columns,
        "wall_s": round(time.monotonic() - started, 1),
        "all_verified": all_verified,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    m = meta["machine"]
    print()
    print("%s: %s%s, %d cores, Linux %s; %s" % (
        os.path.basename(path), matrix.description + "; " if matrix.description else "",
        m["cpu_model"], m["cores"], m["kernel"], meta["build"].get("compiler_version") or ""))
    print_summary(ctx, summary, sys.stdout)
    print("results: %s" % csv_path)
    if not all_verified:
        bad = sum(r["verified"] != "true" for r in rows)
        print("%d of %d runs were NOT verified (see the failure column)" % (bad, len(rows)),
              file=sys.stderr)
        return 1
    return 0


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


if __name__ == "__main__":
    sys.exit(main())
