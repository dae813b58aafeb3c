"""What a matrix leaves behind: the environment it ran in (git, build, machine), the summary of
its runs, the tables it prints, and results.csv, summary.csv and meta.json."""

import csv
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from . import ROOT
from .binaries import number_text
from .columns import SUMMARY_RESULT_COLUMNS


def tool_output(*cmd):
    """The standard output of a tool asked about the environment, or None when it failed or
    cannot be run at all: meta.json records what is unknown as null rather than losing the
    runs of a matrix that has already finished."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return r.stdout if r.returncode == 0 else None


def git_info():
    def git(*args):
        out = tool_output("git", "-C", ROOT, *args)
        return None if out is None else out.strip()
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
        out = tool_output(info["compiler"], "--version")
        info["compiler_version"] = out.splitlines()[0] if out else None
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
    """One row per combination: median and spread of events/s and p99, ranked by events/s
    (closed loop) or by p99 (open loop)."""
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
    # server's defaults (with the matrix's [server] flags), else against the first combination.
    base = capacity
    if not base and out:
        unvaried = ctx.matrix.unvaried_server_values()
        defaults = [s for s in out if s["target"] == "anubis" and all(
            str(s[k]) == str(unvaried.get(k, "")) for k in ctx.matrix.server_axis_columns)]
        base_row = (defaults or out)[0]
        base_row["baseline"] = "defaults" if defaults else "first"  # named under the table
        base = base_row["events_per_s_median"]
    for s in out:
        median = s["events_per_s_median"]
        s["ratio"] = round(median / base, 3) if base and median != "" else ""
    if out and all(s["load_mode"] == "open" for s in out):
        # An open loop's events/s is its offered rate as long as the server keeps up, so it
        # ranks nothing: rank by the latency at that rate, runs that fell behind last.
        out.sort(key=lambda s: (s["kept_up_runs"] < s["runs"],
                                s["p99_us_median"] if s["p99_us_median"] != "" else float("inf")))
    else:
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
    # An overload matrix is read along its rates: a rank by p99 across different offered rates
    # would compare unlike things, so its table shows none (summary.csv keeps the column).
    ranked = not ctx.matrix.multiples
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
                        for i, (cell, w) in enumerate(zip(r, widths)) if ranked or i > 0),
              file=stream)
    base = [s for s in summary if s.get("baseline")]
    if base:
        print("ratio: events/s median over that of %s (%s)" % (
            describe_row(base[0], varying),
            "the server's defaults" if base[0]["baseline"] == "defaults"
            else "the first combination: none runs the server's defaults"), file=stream)


def describe_row(s, varying):
    return ", ".join("%s=%s" % (c, number_text(s[c])) for c in varying if s[c] != "")


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


def result_dir(base):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(base, stamp)
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(base, "%s-%d" % (stamp, n))
    return path


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def summary_columns(ctx):
    """summary.csv: rank and combination, what the combination ran with, then its statistics."""
    return (["rank", "combination"] + [c for c in ctx.summary_key_columns if c != "combination"]
            + [c for c in SUMMARY_RESULT_COLUMNS if c != "rank"])


def repository_path(path):
    """A file's path as meta.json records it: relative to the repository when the file really is
    inside it (symlinks resolved, wherever the runner was started from), else absolute."""
    real, root = os.path.realpath(path), os.path.realpath(ROOT)
    if os.path.commonpath([real, root]) == root:
        return os.path.relpath(real, root)
    return os.path.abspath(path)


def capacity_record(matrix, capacity_runs):
    """meta.json's capacity: the median the rates were computed from, the spread of the runs it
    is the median of, and each run's events/s (runs/capacity-N-load.json in order)."""
    if not capacity_runs:
        return None
    return {"events_per_s": statistics.median(capacity_runs),
            "events_per_s_min": min(capacity_runs), "events_per_s_max": max(capacity_runs),
            "events_per_s_mad": mad(capacity_runs), "runs_events_per_s": capacity_runs,
            "duration_s": matrix.capacity_duration}


def meta(ctx, path, text, strategies, rows, capacity_runs, started):
    """meta.json: the command, the matrix itself, what it ran on, and whether every run held."""
    matrix = ctx.matrix
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "matrix_path": repository_path(path),
        "matrix": text,
        "git": git_info(),
        "build": build_info(ctx.server),
        "machine": machine_info(),
        "python": platform.python_version(),
        "server": ctx.server,
        "load": ctx.load,
        "redis": {"version": ctx.redis_version} if ctx.redis_version else None,
        "strategies": strategies,
        "server_defaults": matrix.unvaried_server_values(),
        "axes": {k: {"kind": kind, "values": v} for k, (kind, v) in matrix.axes.items()},
        "combinations": len(matrix.combinations),
        "repeat": matrix.repeat,
        "runs": len(rows),
        "capacity": capacity_record(matrix, capacity_runs),
        "columns": ctx.columns,
        "wall_s": round(time.monotonic() - started, 1),
        "all_verified": all(r["verified"] == "true" for r in rows),
    }


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def print_report(ctx, path, meta_data, summary, csv_path):
    """On stdout: the matrix, machine and compiler, the summary table, and where the CSV is."""
    m = meta_data["machine"]
    print()
    description = ctx.matrix.description
    if ctx.matrix.overridden:
        description += " (overridden: %s)" % ctx.matrix.overridden
    print("%s: %s%s, %d cores, Linux %s; %s" % (
        os.path.basename(path), description.strip() + "; " if description else "",
        m["cpu_model"], m["cores"], m["kernel"], meta_data["build"].get("compiler_version") or ""))
    print_summary(ctx, summary, sys.stdout)
    print("results: %s" % csv_path)
