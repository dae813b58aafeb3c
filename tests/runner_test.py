#!/usr/bin/python3
"""Tests of harness/runner.py and its harness/matrix_runner/ package against the real
anubis-server and anubis-load (ANUBIS_SERVER, ANUBIS_LOAD), plus fake servers that break the
shutdown contract."""

import argparse
import csv
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import unittest
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "harness"))

from harness_testing import PID_FIFO_WRAPPER, clean_up, write_script  # noqa: E402
from matrix_runner import report, run  # noqa: E402
from matrix_runner.binaries import help_defaults, server_strategies  # noqa: E402
from matrix_runner.columns import (FIXED_SERVER_COLUMNS, HEAD_COLUMNS, LOAD_COLUMNS,  # noqa: E402
                                   META_KEYS, RESULT_COLUMNS, SUMMARY_RESULT_COLUMNS)
from matrix_runner.errors import MatrixError  # noqa: E402
from matrix_runner.matrix import LOAD_DEFAULTS, Matrix  # noqa: E402
from matrix_runner.processes import AnubisServer  # noqa: E402
from matrix_runner.report import build_info, git_info  # noqa: E402
from matrix_runner.run import (LOAD_JSON_SCHEMA, accepted_problems, final_problems,  # noqa: E402
                               load_problems)

SERVER = os.environ.get("ANUBIS_SERVER", os.path.join(ROOT, "build/release/src/anubis-server"))
LOAD = os.environ.get("ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load"))
RUNNER = os.path.join(ROOT, "harness", "runner.py")

# Two combinations of about a second each: small enough for every test run.
TINY_MATRIX = """
description = "test: queue mutex vs lockfree"
repeat = 1
[axes]
queue = ["mutex", "lockfree"]
[load]
connections = 4
pipeline = 8
duration = 1
users = 500
"""

# Wraps the real server and breaks one rule of its shutdown contract (FAKE_MODE): exits 1, or
# reports processed != accepted, or received that does not add up, or (kill9) dies by SIGKILL
# right after announcing its port, while the runner still counts it as serving the run.
FAKE_SERVER = """#!/usr/bin/python3
import json, os, signal, subprocess, sys
real = %(server)r
if {"--help", "--list-strategies", "--check"} & set(sys.argv):
    os.execv(real, [real] + sys.argv[1:])
proc = subprocess.Popen([real] + sys.argv[1:], stdout=subprocess.PIPE, text=True)
signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
mode = os.environ["FAKE_MODE"]
for line in proc.stdout:
    if line.startswith("final "):
        final = json.loads(line[6:])
        if mode == "processed":
            final["processed"] -= 1
        if mode == "received":
            final["received"] += 1
        line = "final " + json.dumps(final) + "\\n"
    sys.stdout.write(line)
    sys.stdout.flush()
    if mode == "kill9" and line.startswith("listening on"):
        proc.kill()
        proc.wait()
        os.kill(os.getpid(), signal.SIGKILL)
proc.wait()
sys.exit(1 if mode == "exit1" else proc.returncode)
"""


def run_runner(matrix_text, out, server=SERVER, env=None, extra=()):
    matrix = os.path.join(out + "-matrix.toml")
    with open(matrix, "w") as f:
        f.write(matrix_text)
    return subprocess.run(
        [sys.executable, RUNNER, matrix, "--out", out, "--server", server, "--load", LOAD,
         *extra], capture_output=True, text=True, env=dict(os.environ, **(env or {})),
        timeout=240)


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def expected_columns(extra_server_columns=()):
    strategies = server_strategies(SERVER)
    return (list(HEAD_COLUMNS) + list(strategies) + list(FIXED_SERVER_COLUMNS)
            + list(extra_server_columns) + list(LOAD_COLUMNS) + list(RESULT_COLUMNS))


class TinyMatrixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runner_test-")
        cls.out = os.path.join(cls.tmp, "tiny")
        cls.result = run_runner(TINY_MATRIX, cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # A clean matrix exits 0 and names its CSV.
    def test_exit_status(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        self.assertIn(os.path.join(self.out, "results.csv"), self.result.stdout)

    # The printed table says what its ratio column is relative to: the server's defaults.
    def test_table_names_its_baseline(self):
        _, defaults = help_defaults(SERVER)
        self.assertIn("ratio: events/s median over that of queue=%s (the server's defaults)"
                      % defaults["queue"], self.result.stdout)

    # results.csv has exactly the documented columns, one column per registry axis, and one
    # verified row per run with the axis values it ran with.
    def test_results_csv(self):
        columns, rows = read_csv(os.path.join(self.out, "results.csv"))
        self.assertEqual(columns, expected_columns())
        self.assertEqual(len(rows), 2)
        self.assertEqual(sorted(r["queue"] for r in rows), ["lockfree", "mutex"])
        _, defaults = help_defaults(SERVER)
        for row in rows:
            self.assertEqual(row["verified"], "true", row["failure"])
            self.assertEqual(row["failure"], "")
            self.assertEqual(row["lock"], defaults["lock"])
            self.assertEqual(row["target"], "anubis")
            self.assertGreater(float(row["events_per_s"]), 0)
            self.assertEqual(row["accepted"], row["server_events"])
            self.assertGreater(float(row["peak_rss_mib"]), 0)
            self.assertGreater(float(row["cpu_s_per_million_events"]), 0)
            self.assertEqual((row["connections"], row["pipeline"], row["users"]),
                             ("4", "8", "500"))

    # summary.csv has one ranked row per combination.
    def test_summary_csv(self):
        columns, rows = read_csv(os.path.join(self.out, "summary.csv"))
        self.assertEqual(len(rows), 2)
        self.assertEqual(sorted(r["rank"] for r in rows), ["1", "2"])
        for key in SUMMARY_RESULT_COLUMNS:
            self.assertIn(key, columns)
        first, second = sorted(rows, key=lambda r: int(r["rank"]))
        self.assertGreaterEqual(float(first["events_per_s_median"]),
                                float(second["events_per_s_median"]))

    # summary.csv's columns are in the order docs/RESULTS.md gives: rank, combination, target,
    # every server column and every load column, then the statistics.
    def test_summary_csv_columns_as_documented(self):
        columns, _ = read_csv(os.path.join(self.out, "summary.csv"))
        results_columns, _ = read_csv(os.path.join(self.out, "results.csv"))
        server_columns = results_columns[results_columns.index("target") + 1:
                                         results_columns.index(LOAD_COLUMNS[0])]
        self.assertEqual(columns, ["rank", "combination", "target"] + server_columns
                         + list(LOAD_COLUMNS) + [c for c in SUMMARY_RESULT_COLUMNS if c != "rank"])
        with open(os.path.join(ROOT, "docs", "RESULTS.md")) as f:
            section = f.read().split("### `summary.csv` columns", 1)[1].split("\n|", 1)[0]
        self.assertEqual(re.findall(r"`([a-z_]+)`", section)[:3], ["rank", "combination", "target"])

    # meta.json carries every documented key, the matrix itself and the build it measured.
    def test_meta(self):
        with open(os.path.join(self.out, "meta.json")) as f:
            meta = json.load(f)
        self.assertEqual(set(meta), set(META_KEYS))
        self.assertEqual(meta["matrix"], TINY_MATRIX)
        self.assertTrue(meta["all_verified"])
        self.assertIn("commit", meta["git"])
        self.assertIn("compiler", meta["build"])
        self.assertGreater(meta["machine"]["cores"], 0)


class DocumentationTest(unittest.TestCase):
    # docs/RESULTS.md documents every CSV column and every meta.json key the runner writes.
    def test_results_md_documents_every_column(self):
        with open(os.path.join(ROOT, "docs", "RESULTS.md")) as f:
            text = f.read()
        documented = set(re.findall(r"^\|\s*`([a-z0-9_.]+)`", text, re.M))
        names = (list(HEAD_COLUMNS) + list(FIXED_SERVER_COLUMNS) + list(LOAD_COLUMNS)
                 + list(RESULT_COLUMNS) + list(SUMMARY_RESULT_COLUMNS) + list(META_KEYS))
        missing = [n for n in names if n not in documented]
        self.assertEqual(missing, [], "columns or keys missing from docs/RESULTS.md")


class FailureDetectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runner_fail-")
        cls.fake = os.path.join(cls.tmp, "fake-server")
        with open(cls.fake, "w") as f:
            f.write(FAKE_SERVER % {"server": os.path.abspath(SERVER)})
        os.chmod(cls.fake, os.stat(cls.fake).st_mode | stat.S_IXUSR)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_fake(self, mode):
        matrix = TINY_MATRIX.replace('["mutex", "lockfree"]', '["mutex"]')
        out = os.path.join(self.tmp, mode)
        result = run_runner(matrix, out, server=self.fake, env={"FAKE_MODE": mode})
        _, rows = read_csv(os.path.join(out, "results.csv"))
        self.assertEqual(len(rows), 1)
        return result, rows[0]

    # A server that exits 1 after an otherwise perfect run makes the run unverified.
    def test_nonzero_exit(self):
        result, row = self.run_fake("exit1")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(row["verified"], "false")
        self.assertIn("server exited with 1", row["failure"])

    # processed != accepted (an event lost in the drain) makes the run unverified.
    def test_processed_not_accepted(self):
        result, row = self.run_fake("processed")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(row["verified"], "false")
        self.assertRegex(row["failure"], r"processed \d+ != accepted \d+")

    # received that does not add up makes the run unverified.
    def test_received_does_not_add_up(self):
        result, row = self.run_fake("received")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(row["verified"], "false")
        self.assertIn("received", row["failure"])


    # A server killed mid-run is reaped by the runner itself: the failure names the signal and
    # the row still carries the server's rusage.
    def test_killed_by_signal(self):
        result, row = self.run_fake("kill9")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(row["verified"], "false")
        self.assertIn("server killed by signal 9", row["failure"])
        self.assertNotIn("ChildProcessError", row["failure"])
        self.assertGreater(float(row["peak_rss_mib"]), 0)
        self.assertNotEqual(row["server_cpu_s"], "")


class CheckTest(unittest.TestCase):
    FINAL = {"received": 10, "accepted": 7, "dropped": 1, "invalid": 1,
             "rejected_shutting_down": 1, "processed": 7}

    # A clean final line passes; each broken invariant is named.
    def test_final_problems(self):
        self.assertEqual(final_problems(self.FINAL, 0), [])
        self.assertEqual(final_problems(self.FINAL, 1), ["server exited with 1"])
        self.assertEqual(final_problems(self.FINAL, -9), ["server killed by signal 9"])
        self.assertEqual(final_problems(None, 0), ["server printed no final line"])
        self.assertIn("processed 6 != accepted 7",
                      final_problems(dict(self.FINAL, processed=6), 0))
        self.assertEqual(len(final_problems(dict(self.FINAL, dropped=2), 0)), 1)

    # The server must have accepted exactly what the client saw accepted, warm-up included.
    def test_accepted_problems(self):
        self.assertEqual(accepted_problems(self.FINAL, {"accepted_with_warmup": 7}), [])
        self.assertEqual(accepted_problems(self.FINAL, {"accepted_with_warmup": 6}),
                         ["server accepted 7, client counted 6"])

    # The load client's exit status, its JSON layout and its verify verdict all count.
    def test_load_problems(self):
        schema = {"schema": LOAD_JSON_SCHEMA}
        ok = dict(schema, verify={"ok": True, "outcome": "ok", "mismatches": 0})
        self.assertEqual(load_problems(0, ok), [])
        self.assertEqual(len(load_problems(1, ok)), 1)
        bad = dict(schema, verify={"ok": False, "outcome": "mismatch", "mismatches": 3})
        self.assertEqual(load_problems(0, bad), ["verify mismatch (3 mismatches)"])
        self.assertEqual(load_problems(0, dict(schema, summary={})),
                         ["anubis-load JSON has no verify result"])
        self.assertEqual(load_problems(0, dict(ok, schema=1)),
                         ["anubis-load JSON is schema 1, not 2"])


class LoadDefaultsTest(unittest.TestCase):
    # The runner's record of anubis-load's defaults matches `anubis-load --help`, so a changed
    # default in the client cannot make the CSV describe a load that was not the one run.
    def test_defaults_match_help(self):
        _, defaults = help_defaults(LOAD)
        for key, value in LOAD_DEFAULTS.items():
            if value is None:
                self.assertNotIn(key, defaults)
            elif isinstance(value, str):
                self.assertEqual(defaults[key], value, key)
            else:
                self.assertEqual(float(defaults[key]), value, key)


class EnvironmentRecordTest(unittest.TestCase):
    # Without git on PATH, meta.json's git state is unknown (null), not an exception that would
    # lose a finished matrix.
    def test_git_missing(self):
        with mock.patch.dict(os.environ, {"PATH": "/nonexistent"}):
            self.assertEqual(git_info(), {"commit": None, "dirty": None})

    # A build tree whose compiler is gone records its version as unknown.
    def test_compiler_missing(self):
        with tempfile.TemporaryDirectory() as build:
            with open(os.path.join(build, "CMakeCache.txt"), "w") as f:
                f.write("CMAKE_BUILD_TYPE:STRING=Release\n"
                        "CMAKE_CXX_COMPILER:FILEPATH=/nonexistent/c++\n")
            info = build_info(os.path.join(build, "src", "anubis-server"))
            self.assertEqual(info["compiler"], "/nonexistent/c++")
            self.assertIsNone(info["compiler_version"])

    # meta.json's matrix_path is relative to the repository only for a file inside it, however
    # it was named; a file elsewhere, even in a directory whose name begins with the
    # repository's, is recorded by its absolute path.
    def test_matrix_path(self):
        quick = os.path.join("harness", "matrices", "quick.toml")
        self.assertEqual(report.repository_path(os.path.join(ROOT, quick)), quick)
        outside = os.path.realpath(ROOT) + "-elsewhere/y.toml"
        self.assertEqual(report.repository_path(outside), outside)
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(report.repository_path(os.path.join(tmp, "y.toml")),
                             os.path.join(tmp, "y.toml"))
        cwd = os.getcwd()
        os.chdir(os.path.join(ROOT, "harness"))
        try:
            self.assertEqual(report.repository_path(os.path.join("matrices", "quick.toml")),
                             quick)
        finally:
            os.chdir(cwd)


class ServerAddressTest(unittest.TestCase):
    # AnubisServer takes its address from the `listening on` line, an IPv6 one without its
    # brackets, so that the load client connects where --bind put the server.
    def test_ipv6_address(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        with tempfile.TemporaryDirectory() as tmp:
            server = AnubisServer(SERVER, ["--bind", "::1"], [], os.path.join(tmp, "server.log"))
            try:
                self.assertEqual(server.host, "::1")
                with socket.create_connection((server.host, server.port), timeout=5):
                    pass
            finally:
                server.kill()


class FakeRegistryTest(unittest.TestCase):
    """Parses matrix text against a made-up server: two strategy axes and a workers flag."""
    STRATEGIES = {"queue": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                  "lock": [{"name": "x"}, {"name": "y"}]}
    DEFAULTS = {"queue": "a", "lock": "y", "workers": "1"}
    FLAGS = {"queue", "lock", "workers", "port", "help"}

    def matrix(self, text, repeat=None, duration=None):
        overrides = argparse.Namespace(repeat=repeat, server_cpus=None, client_cpus=None,
                                       duration=duration)
        return Matrix("test", textwrap.dedent(text), self.STRATEGIES, self.FLAGS, self.DEFAULTS,
                      overrides)


class ExpansionTest(FakeRegistryTest):
    # "all" takes every registry row; product mode multiplies the axes.
    def test_product(self):
        m = self.matrix('[axes]\nqueue = "all"\nlock = "all"\n')
        self.assertEqual(len(m.combinations), 6)

    # one_at_a_time: the defaults once, then each axis's other values alone.
    def test_one_at_a_time(self):
        m = self.matrix('mode = "one_at_a_time"\n[axes]\nqueue = "all"\nlock = "all"\n'
                        'workers = [1, 2, 4]\n')
        self.assertEqual(m.combinations[0], {"queue": "a", "lock": "y", "workers": "1"})
        self.assertEqual(len(m.combinations), 1 + 2 + 1 + 2)
        for combo in m.combinations[1:]:
            changed = [k for k in combo if combo[k] != m.combinations[0][k]]
            self.assertEqual(len(changed), 1, combo)

    # Redis runs carry no ANUBIS axes, so they are not repeated once per strategy.
    def test_redis_rows_drop_server_axes(self):
        m = self.matrix('[axes]\ntarget = ["anubis", "redis"]\nqueue = "all"\n')
        redis = [c for c in m.combinations if c["target"] == "redis"]
        self.assertEqual(len(m.combinations), 4)
        self.assertEqual(redis, [{"target": "redis", "queue": None}])

    # one_at_a_time starts from the defaults, target anubis included, so server axes beside
    # target = ["redis"] alone still apply to ANUBIS runs and are not refused.
    def test_one_at_a_time_redis_keeps_anubis_runs(self):
        m = self.matrix('mode = "one_at_a_time"\n[axes]\nworkers = [2, 1]\n'
                        'target = ["redis"]\n')
        self.assertEqual(m.combinations, [{"workers": "1", "target": "anubis"},
                                          {"workers": "2", "target": "anubis"},
                                          {"workers": None, "target": "redis"}])

    # A value a run does not use (zipf_s in a uniform run) does not make another combination:
    # the uniform runs of distribution x zipf_s are one combination, run once per repetition.
    def test_unused_values_merge(self):
        m = self.matrix('[axes]\ndistribution = ["uniform", "zipf"]\nzipf_s = [0.5, 1.0]\n')
        self.assertEqual(m.combinations, [{"distribution": "uniform", "zipf_s": None},
                                          {"distribution": "zipf", "zipf_s": "0.5"},
                                          {"distribution": "zipf", "zipf_s": "1"}])

    # Unknown strategy names and unknown axes are refused before anything runs.
    def test_refuses_unknown(self):
        with self.assertRaises(MatrixError):
            self.matrix('[axes]\nqueue = ["nope"]\n')
        with self.assertRaises(MatrixError):
            self.matrix('[axes]\nbogus = [1]\n')


class ValidationTest(FakeRegistryTest):
    # repeat must be an integer >= 1 whether from --repeat or the matrix; 0 is not "unset".
    def test_repeat(self):
        self.assertEqual(self.matrix("repeat = 3\n", repeat=1).repeat, 1)
        self.assertEqual(self.matrix("repeat = 1000\n").repeat, 1000)
        for text, repeat in (("repeat = 3\n", 0), ("repeat = 0\n", None),
                             ("repeat = -1\n", None), ("repeat = 2.5\n", None),
                             ("", -2), ("", 1001), ("", 100000000),
                             ("repeat = 99999999999999999999\n", None)):
            with self.assertRaisesRegex(MatrixError, "repeat"):
                self.matrix(text, repeat=repeat)

    # duration must be > 0 whether from --duration, [load] or an axis; 0 is not "unset".
    def test_duration(self):
        self.assertEqual(self.matrix("[load]\nduration = 5\n", duration=0.5).load["duration"],
                         0.5)
        for text, duration in (("[load]\nduration = 5\n", 0.0), ("", -1.0),
                               ("", float("nan")), ("[load]\nduration = 0\n", None),
                               ("[axes]\nduration = [1, -1]\n", None)):
            with self.assertRaisesRegex(MatrixError, "duration"):
                self.matrix(text, duration=duration)

    # --duration shortens the capacity run of an overload matrix too.
    def test_duration_sets_capacity_duration(self):
        text = "[overload]\nmultiples = [1]\ncapacity_duration = 5\n"
        self.assertEqual(self.matrix(text).capacity_duration, 5)
        self.assertEqual(self.matrix(text, duration=1).capacity_duration, 1)

    # A rate with a pipeline is refused (anubis-load would refuse it), from [load] or an axis.
    def test_rate_with_pipeline(self):
        for text in ("[load]\nrate = 1000\npipeline = 4\n",
                     "[axes]\nrate = [1000]\n[load]\npipeline = 4\n",
                     "[axes]\npipeline = [4, 8]\n[load]\nrate = 1000\n"):
            with self.assertRaisesRegex(MatrixError, "rate .* pipeline"):
                self.matrix(text)
        self.matrix("[load]\nrate = 1000\nmax_inflight = 8\ntimeout_ms = 100\n")

    # Open-loop flags without a rate are refused rather than dropped.
    def test_open_loop_flags_without_rate(self):
        for key in ("max_inflight", "timeout_ms"):
            with self.assertRaisesRegex(MatrixError, "%s without rate" % key):
                self.matrix("[load]\n%s = 8\n" % key)
            with self.assertRaisesRegex(MatrixError, "%s without rate" % key):
                self.matrix("[axes]\n%s = [8, 16]\n" % key)

    # An overload matrix's pipeline shapes its closed-loop capacity run and is allowed; a rate
    # of its own is not.
    def test_overload_loop_flags(self):
        m = self.matrix("[overload]\nmultiples = [1, 2]\n[load]\npipeline = 4\n"
                        "max_inflight = 64\n")
        self.assertEqual(len(m.combinations), 2)
        with self.assertRaisesRegex(MatrixError, "rate"):
            self.matrix("[overload]\nmultiples = [1]\n[axes]\nrate = [10]\n")
        with self.assertRaisesRegex(MatrixError, "pipeline axis would apply to no run"):
            self.matrix("[overload]\nmultiples = [1]\n[axes]\npipeline = [4, 8]\n")

    # A value listed twice in an axis or in [overload] multiples is refused, naming it, rather
    # than run as two combinations ranked apart; 1 and 1.0 are one value.
    def test_duplicate_values(self):
        for text, message in (
                ("[axes]\nworkers = [1, 2, 1]\n", "axis workers lists 1 twice:"),
                ("[axes]\nworkers = [1, 1.0]\n", "axis workers lists 1 twice (as 1 and 1.0)"),
                ('[axes]\nqueue = ["a", "a"]\n', 'axis queue lists "a" twice'),
                ("[axes]\nzipf_s = [0.5, 0.5]\n", "axis zipf_s lists 0.5 twice"),
                ("[overload]\nmultiples = [0.5, 0.5]\n", "[overload] multiples lists 0.5 twice")):
            with self.subTest(matrix=text):
                with self.assertRaises(MatrixError) as caught:
                    self.matrix(text)
                self.assertIn(message, str(caught.exception))


    # A run lasts --events or --duration, never both: the matrix refuses both rather than
    # dropping one without a word, and --duration cannot override a matrix that counts events.
    def test_events_with_duration(self):
        self.matrix("[load]\nevents = 1000\n")
        for text, duration in (("[load]\nevents = 1000\nduration = 1\n", None),
                               ("[axes]\nevents = [10, 20]\n[load]\nduration = 1\n", None),
                               ("[load]\nevents = 1000\n", 1.0)):
            with self.assertRaisesRegex(MatrixError, "events"):
                self.matrix(text, duration=duration)

    # A zipf_s that no run would use is refused; with a zipf run among the combinations it is not.
    def test_zipf_s_needs_zipf(self):
        with self.assertRaisesRegex(MatrixError, "zipf_s"):
            self.matrix("[load]\nzipf_s = 1.2\n")
        self.matrix('[axes]\ndistribution = ["uniform", "zipf"]\n[load]\nzipf_s = 1.2\n')

    # A misspelt [overload] key is refused, not ignored.
    def test_unknown_overload_key(self):
        with self.assertRaisesRegex(MatrixError, "capacity_durations"):
            self.matrix("[overload]\nmultiples = [1]\ncapacity_durations = 1\n")

    # A CPU list that is not one is a matrix error, whether in the matrix or on the command line.
    def test_bad_cpu_lists(self):
        for text in ('server_cpus = "a"\n', 'client_cpus = "1-0"\n', 'server_cpus = "0,,1"\n'):
            with self.assertRaisesRegex(MatrixError, "CPU list"):
                self.matrix(text)

    # The rules refuse only what is wrong: "all", a list of one value and either spelling of a
    # flag still work, and a Redis-only overload matrix keeps the [server] flags of its ANUBIS
    # capacity run.
    def test_valid_shapes(self):
        m = self.matrix('[axes]\nqueue = "all"\nlock = ["x"]\nworkers = [2]\n'
                        '[load]\nsell-ratio = 0.25\n')
        self.assertEqual(m.axes["workers"], ("server", ["2"]))
        self.assertEqual(m.load["sell_ratio"], 0.25)
        m = self.matrix('[axes]\ntarget = ["redis"]\n[server]\nworkers = 2\n'
                        '[overload]\nmultiples = [1]\n')
        self.assertEqual(m.fixed_server, {"workers": "2"})


class LoadTimeLimitTest(FakeRegistryTest):
    # The runner's time limit on a load run follows its expected length: an open loop with
    # --events lasts its schedule, 500 events at 2 events/s 250 s, beyond the 60 s assumed for
    # a closed loop with --events.
    def test_limit_follows_expected_length(self):
        for text, expected in (
                ("[load]\nrate = 2\nevents = 500\nconnections = 1\n", 250),
                # 167 events on each connection, 1.5 s apart, after the warm-up.
                ("[load]\nrate = 2\nevents = 500\nconnections = 3\nwarmup = 1\n", 251.5),
                ("[load]\nduration = 5\nwarmup = 1\n", 6),
                ("[load]\nevents = 500\n", run.CLOSED_LOOP_EVENTS_S)):
            m = self.matrix(text)
            params, _ = run.load_parameters(m, m.combinations[0], None)
            self.assertAlmostEqual(run.load_time_limit(params), expected + run.LOAD_GRACE_S)

    # A load client still running at the time limit is killed, and its run's failure says it
    # was stopped at the runner's limit and what the limit was, not only that it was killed.
    def test_stopped_at_the_limit(self):
        with tempfile.TemporaryDirectory() as tmp, mock.patch.object(run, "LOAD_GRACE_S", 0):
            code, _, stopped_at = run.run_load(["sleep", "60"],
                                               {"duration": 0.1, "warmup": 0, "events": None},
                                               [], os.path.join(tmp, "load.log"))
            self.assertEqual(code, -signal.SIGKILL)
            self.assertAlmostEqual(stopped_at, 0.1)
            self.assertEqual(load_problems(code, None, stopped_at)[0],
                             "anubis-load stopped at the runner's time limit of 0.1 s (the "
                             "run's expected 0.1 s + 0 s)")


# Matrix files the runner must refuse before any run (exit 2), each with a fragment of its
# message: wrong TOML types, non-finite numbers, and contradictory keys.
BAD_MATRICES = (
    # Top-level tables given as something else.
    ("axes = 5\n", "axes must be a table"),
    ("load = 5\n", "load must be a table"),
    ("server = 5\n", "server must be a table"),
    ("overload = 5\n", "overload must be a table"),
    ("[[axes]]\nworkers = [1]\n", "axes must be a table"),
    # Axis values that are not a non-empty list of strings or numbers.
    ("[axes]\nworkers = 2\n", "write workers = [2]"),
    ('[axes]\nqueue = "mutex"\n', 'write queue = ["mutex"]'),
    ('[axes]\ntarget = "redis"\n', 'write target = ["redis"]'),
    ("[axes]\nworkers = []\n", "axis workers has no values"),
    ("[axes]\nworkers = [true]\n", "axis workers values must be a string or a number, not true"),
    ("[axes]\nworkers = [[1, 2]]\n", "axis workers values must be a string or a number"),
    ("[axes]\nworkers = {min = 1}\n", "axis workers must be a list of values, not a table"),
    ('[axes]\nusers = ["many"]\n', "axis users values must be a number"),
    ("[axes]\ndistribution = [1]\n", "axis distribution values must be a string"),
    # Other keys of the wrong type.
    ("[overload]\nmultiples = 2\n", "write multiples = [2]"),
    ('[overload]\nmultiples = ["a"]\n', "[overload] multiples values must be a number"),
    ("description = 5\n", "description must be a string"),
    ("mode = 5\n", "mode must be"),
    ("server_cpus = [0]\n", "server_cpus must be a string or a number"),
    ('[load]\nconnections = "many"\n', "[load] connections must be a number"),
    ("[load]\ndistribution = 5\n", "[load] distribution must be a string"),
    ("[server]\nwork-us = [1]\n", "[server] work-us must be a string or a number"),
    ("[server]\nwork-us = true\n", "[server] work-us must be a string or a number"),
    # nan and inf, wherever they appear.
    ("[load]\nrate = nan\n", "[load] rate must be a finite number, not nan"),
    ("[load]\nwarmup = nan\n", "[load] warmup must be a finite number"),
    ("[load]\nsell_ratio = -inf\n", "[load] sell_ratio must be a finite number, not -inf"),
    ("[server]\nwork-us = inf\n", "[server] work-us must be a finite number"),
    ("[axes]\nworkers = [1, nan]\n", "axis workers values must be a finite number"),
    ("[axes]\nrate = [1000, inf]\n", "axis rate values must be a finite number"),
    ("[overload]\nmultiples = [1, nan]\n", "[overload] multiples values must be a finite"),
    ("[overload]\nmultiples = [1]\ncapacity_duration = inf\n", "capacity_duration"),
    # One flag set twice, or ANUBIS flags where no ANUBIS server runs.
    ("[axes]\nworkers = [1, 2]\n[server]\nworkers = 2\n",
     "workers is both an axis ([axes] workers) and fixed ([server] workers)"),
    ("[axes]\nusers = [100, 200]\n[load]\nusers = 300\n",
     "users is both an axis ([axes] users) and fixed ([load] users)"),
    ("[server]\nio-threads = 1\nio_threads = 2\n", "[server] sets both io-threads and io_threads"),
    ("[axes]\nio-threads = [1]\nio_threads = [2]\n", "[axes] sets both io-threads and io_threads"),
    ("[load]\nsell-ratio = 0.1\nsell_ratio = 0.2\n", "[load] sets both sell-ratio and sell_ratio"),
    ("[axes]\nio_threads = [1, 2]\n[server]\nio-threads = 1\n",
     "([axes] io_threads) and fixed ([server] io-threads)"),
    ('[axes]\ntarget = ["redis"]\n[server]\nwork-us = 1\n',
     "[server] work-us would apply to no run: every combination targets redis"),
    ('[axes]\ntarget = ["redis"]\nqueue = "all"\n', "axis queue would apply to no run"),
    ("[server]\ncheck = 1\n", "[server] check is not an anubis-server flag a matrix may set"),
    # A value listed twice would run one configuration as two combinations.
    ("[axes]\nworkers = [1, 1]\n", "axis workers lists 1 twice"),
    ("[overload]\nmultiples = [0.5, 0.5]\n", "[overload] multiples lists 0.5 twice"),
    ("[axes]\nport = [1]\n", "axis port is neither"),
)


class BadMatrixTest(unittest.TestCase):
    # Every bad matrix exits 2 with its message, without a traceback and before any run (no
    # result directory). --duration keeps a run short should a matrix wrongly get that far.
    def test_bad_matrices_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            for number, (text, message) in enumerate(BAD_MATRICES):
                with self.subTest(matrix=text):
                    out = os.path.join(tmp, "out%d" % number)
                    result = run_runner(text, out, extra=("--duration", "0.5"))
                    self.assertEqual(result.returncode, 2, result.stderr)
                    self.assertIn("runner: error: ", result.stderr)
                    self.assertIn(message, result.stderr)
                    self.assertNotIn("Traceback", result.stderr)
                    self.assertFalse(os.path.exists(out))

    # Every bundled matrix passes the same checks against this tree's server.
    def test_bundled_matrices_are_valid(self):
        strategies = server_strategies(SERVER)
        flags, defaults = help_defaults(SERVER)
        overrides = argparse.Namespace(repeat=None, duration=None, server_cpus=None,
                                       client_cpus=None)
        bundled = os.path.join(ROOT, "harness", "matrices")
        for name in sorted(os.listdir(bundled)):
            with self.subTest(matrix=name), open(os.path.join(bundled, name)) as f:
                Matrix(name, f.read(), strategies, flags, defaults, overrides)


# The address space a runner gets when handed a value it must refuse before expanding it: should
# it expand the value after all, it fails at once with MemoryError instead of filling the
# machine's memory. The binaries it asks first (--help, --check) run well within it.
RUNNER_ADDRESS_SPACE = 1 << 30


def limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (RUNNER_ADDRESS_SPACE, RUNNER_ADDRESS_SPACE))


class CommandLineTest(unittest.TestCase):
    def runner(self, *args, matrix="quick", env=None, cwd=None, limit_memory=False):
        return subprocess.run([sys.executable, RUNNER, matrix, "--server", SERVER,
                               "--load", LOAD, *args], capture_output=True, text=True,
                              env=dict(os.environ, **(env or {})), cwd=cwd, timeout=60,
                              preexec_fn=limit_address_space if limit_memory else None)

    def assertRefused(self, result, message):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("runner: error: " + message, result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    # A matrix path that cannot be read as text (a directory, bytes that are not UTF-8) is a
    # matrix error naming it (exit 2), not a traceback.
    def test_unreadable_matrix_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            # Not regular files: a FIFO would block the read, /dev/zero would never end it.
            fifo = os.path.join(tmp, "fifo.toml")
            os.mkfifo(fifo)
            for path in (tmp, fifo, "/dev/zero"):
                self.assertRefused(self.runner(matrix=path),
                                   "the matrix %s is not a regular file" % path)
            large = os.path.join(tmp, "large.toml")
            with open(large, "w") as f:
                f.write("# padding\n" * 200_000)
            self.assertRefused(self.runner(matrix=large),
                               "the matrix %s is larger than" % large)
            latin1 = os.path.join(tmp, "latin1.toml")
            with open(latin1, "wb") as f:
                f.write('description = "caf\u00e9"\n'.encode("latin-1"))
            self.assertRefused(self.runner(matrix=latin1),
                               "the matrix %s is not UTF-8 text" % latin1)

    # A bundled matrix may be named with its .toml suffix (--repeat 0 then stops it before
    # any run, which shows the matrix was found); an unknown name lists the bundled ones.
    def test_bundled_matrix_names(self):
        self.assertRefused(self.runner("--repeat", "0", matrix="quick.toml"),
                           "--repeat must be")
        result = self.runner(matrix="no-such-matrix")
        self.assertRefused(result, "no matrix no-such-matrix")
        self.assertIn("quick", result.stderr.split("no matrix no-such-matrix", 1)[1])

    # A name without a slash that names a bundled matrix is the bundled one, whatever the
    # current directory holds (a directory quick, a file quick.toml); the local file is
    # ./quick.toml.
    def test_bare_name_is_the_bundled_matrix(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, "quick"))
            with open(os.path.join(tmp, "quick.toml"), "w") as f:
                f.write("bogus = 1\n")
            for name in ("quick", "quick.toml"):
                with self.subTest(matrix=name):
                    self.assertRefused(self.runner("--repeat", "0", matrix=name, cwd=tmp),
                                       "--repeat must be")
            self.assertRefused(self.runner("--repeat", "0", matrix="./quick.toml", cwd=tmp),
                               "./quick.toml: unknown keys bogus")

    # An empty --out is refused rather than taken as the default results/ directory. (--repeat
    # 0 stops a runner that would ignore the empty --out before any run, with another message.)
    def test_empty_out_exit_2(self):
        self.assertRefused(self.runner("--out", "", "--repeat", "0"), "--out is empty")

    # A matrix with Redis runs needs redis-server: without it on PATH the matrix stops before
    # its first run (no result directory), not at the first Redis run after ANUBIS runs.
    def test_redis_server_missing_exit_2_before_any_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            matrix = os.path.join(tmp, "redis.toml")
            with open(matrix, "w") as f:
                f.write(TINY_MATRIX.replace('queue = ["mutex", "lockfree"]',
                                            'target = ["anubis", "redis"]'))
            out = os.path.join(tmp, "out")
            result = self.runner("--out", out, matrix=matrix, env={"PATH": "/nonexistent"})
            self.assertRefused(result, "redis-server is not installed")
            self.assertFalse(os.path.exists(out))

    # --repeat 0 and --duration <= 0 exit 2 before anything runs (no result directory).
    def test_bad_overrides_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            for args in (("--repeat", "0"), ("--duration", "0"), ("--duration", "-1")):
                result = self.runner("--out", out, *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("runner: error: %s must be" % args[0], result.stderr)
                self.assertFalse(os.path.exists(out))

    # A server flag value the server refuses (a range, or a strategy's capability) fails the
    # matrix before any run, with the server's own reason, rather than failing every run.
    def test_refused_server_flags_exit_2(self):
        for axes, reason in (('workers = [1, 0]', "--workers"),
                             ('queue = ["lockfree"]\nqueue-capacity = [100000]', "65534")):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "out")
                matrix = TINY_MATRIX.replace('queue = ["mutex", "lockfree"]', axes)
                result = run_runner(matrix, out)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("runner: error: the server refuses", result.stderr)
                self.assertIn(reason, result.stderr)
                self.assertFalse(os.path.exists(os.path.join(out, "results.csv")))

    # A refusal quotes the load flags the matrix chose and the client's reason, without the
    # runner's stand-in address and flags or CLI11's closing hint to run with --help.
    def test_refusal_quotes_the_matrix_words(self):
        with tempfile.TemporaryDirectory() as tmp:
            matrix = TINY_MATRIX.replace('queue = ["mutex", "lockfree"]', "users = [0]").replace(
                "users = 500\n", "")
            result = run_runner(matrix, os.path.join(tmp, "out"))
            self.assertRefused(result, "the load client refuses --connections 4 --pipeline 8 "
                                       "--duration 1 --users 0: ")
            self.assertIn("--users", result.stderr.split(" --users 0: ", 1)[1])
            self.assertNotIn("--port", result.stderr)
            self.assertNotIn("Run with --help", result.stderr)

    # A load value the load client refuses fails the matrix before any run, in the client's own
    # words (anubis-load --check), rather than failing each run that uses it.
    def test_refused_load_values_exit_2(self):
        for axes, reason in (('users = [500, 0]', "--users"),
                             ('sell_ratio = [1.5]', "--sell-ratio"),
                             ('distribution = ["uniform", "pareto"]', "--distribution")):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "out")
                # users leaves [load] so that the users axis is the only one to set it.
                matrix = TINY_MATRIX.replace('queue = ["mutex", "lockfree"]', axes).replace(
                    "users = 500\n", "")
                result = run_runner(matrix, out)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("runner: error: the load client refuses", result.stderr)
                self.assertIn(reason, result.stderr)
                self.assertFalse(os.path.exists(os.path.join(out, "results.csv")))

    # A bad --server-cpus is a clear error (exit 2), not a traceback.
    def test_bad_cpu_override(self):
        result = self.runner("--server-cpus", "a")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("runner: error: CPU list", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    # A repeat or a CPU range far too large is refused (exit 2) before the runner expands it or
    # creates the result directory, whether it comes from the command line or the matrix.
    def test_huge_values_exit_2_before_anything(self):
        with tempfile.TemporaryDirectory() as tmp:
            matrix = os.path.join(tmp, "huge.toml")
            out = os.path.join(tmp, "out")
            for args, text, message in (
                    (("--repeat", "100000000"), "", "--repeat must be an integer from 1 to 1000"),
                    ((), "repeat = 99999999999999999999\n", "repeat must be an integer from 1"),
                    (("--server-cpus", "0-999999999"), "",
                     "CPU list '0-999999999': CPU 999999999 not available to this process"),
                    ((), 'client_cpus = "0-999999999"\n', "CPU list '0-999999999': CPU")):
                with self.subTest(args=args, matrix=text):
                    with open(matrix, "w") as f:
                        f.write(text + ONE_RUN_MATRIX.replace("repeat = 1\n", ""))
                    result = self.runner("--out", out, *args, matrix=matrix, limit_memory=True)
                    self.assertRefused(result, message)
                    self.assertFalse(os.path.exists(out))

    # A binary that does not answer as anubis-server or anubis-load does (no JSON registry, a
    # failing --help) is a clear error naming it, not a traceback.
    def test_binary_not_answering_exit_2(self):
        for args, message in (
                (("--server", "/bin/true"),
                 "/bin/true --list-strategies did not print the strategy registries as JSON"),
                (("--server", "/bin/false"), "/bin/false --list-strategies exited with 1"),
                (("--load", "/bin/false"), "/bin/false --help exited with 1")):
            with self.subTest(args=args), tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "out")
                result = self.runner("--out", out, *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("runner: error: " + message, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertFalse(os.path.exists(out))

    # An output directory that cannot be created is a matrix error (exit 2), not a traceback.
    def test_unusable_out_dir(self):
        result = self.runner("--out", "/proc/anubis-runner-test/out")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("runner: error: cannot use /proc/anubis-runner-test/out", result.stderr)
        self.assertNotIn("Traceback", result.stderr)

    # The server is asked --check with the port its runs get (0, any free one): --check tries
    # the address and port, so without it a busy default port would fail every matrix.
    def test_server_check_uses_the_runs_port(self):
        with tempfile.TemporaryDirectory() as tmp:
            record = os.path.join(tmp, "checks")
            server = os.path.join(tmp, "server")
            with open(server, "w") as f:
                f.write('#!/bin/sh\ncase " $* " in *" --check "*) echo "$*" >> "%s";; esac\n'
                        'exec "%s" "$@"\n' % (record, os.path.abspath(SERVER)))
            os.chmod(server, 0o755)
            result = subprocess.run(
                [sys.executable, RUNNER, "quick", "--server", server, "--load", LOAD,
                 "--out", "/proc/anubis-runner-test/out"], capture_output=True, text=True,
                timeout=60)
            self.assertEqual(result.returncode, 2, result.stderr)  # stopped after the checks
            with open(record) as f:
                checks = f.read().splitlines()
            self.assertTrue(checks)
            for line in checks:
                self.assertTrue(line.startswith("--check --port 0 "), line)

    # An --out that already holds files is refused (exit 2) and left as it was: a second
    # matrix's runs among the first's would pass for one result set.
    def test_non_empty_out_dir(self):
        with tempfile.TemporaryDirectory() as out:
            earlier = os.path.join(out, "results.csv")
            with open(earlier, "w") as f:
                f.write("earlier\n")
            result = self.runner("--out", out)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("is not empty", result.stderr)
            self.assertEqual(os.listdir(out), ["results.csv"])


# One short closed-loop run of the default server.
ONE_RUN_MATRIX = """
repeat = 1
[load]
connections = 2
pipeline = 4
duration = 0.3
users = 100
"""


class OneRunTest(unittest.TestCase):
    def run_one(self, matrix, env=None):
        """Runs the matrix; returns its one row of results.csv, its meta.json and the finished
        runner process."""
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            result = run_runner(matrix, out, env=env)
            self.assertEqual(result.returncode, 0, result.stderr)
            _, rows = read_csv(os.path.join(out, "results.csv"))
            with open(os.path.join(out, "meta.json")) as f:
                meta = json.load(f)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["verified"], "true", rows[0]["failure"])
        return rows[0], meta, result

    # A server bound to another loopback address (all of 127/8 is loopback on Linux) is
    # measured there: the load client connects to the address the server reports.
    def test_bind_elsewhere(self):
        self.run_one(ONE_RUN_MATRIX + '[server]\nbind = "127.0.0.2"\n')

    # A matrix run without git on PATH still writes its results, its git state null.
    def test_without_git(self):
        _, meta, _ = self.run_one(ONE_RUN_MATRIX, env={"PATH": "/nonexistent"})
        self.assertEqual(meta["git"], {"commit": None, "dirty": None})

    # meta.json's server_defaults are the values the runs had where no axis varied them: a
    # [server] flag's value rather than the server's default. The combination that ran them
    # is the baseline of the ratio, named as the defaults.
    def test_server_defaults_as_run(self):
        row, meta, result = self.run_one(ONE_RUN_MATRIX + "[server]\nwork-us = 1\n")
        self.assertEqual(row["work_us"], "1")
        self.assertEqual(meta["server_defaults"]["work_us"], "1")
        self.assertIn("(the server's defaults)", result.stdout)

    # The progress line's first estimate of the time left is the run's expected length (an
    # open loop of 100 events at 100 events/s: 1 s) plus a second for starting and verifying,
    # not the default duration of 10 s.
    def test_progress_estimate_uses_expected_length(self):
        _, _, result = self.run_one(ONE_RUN_MATRIX.replace("pipeline = 4\nduration = 0.3\n",
                                                           "rate = 100\nevents = 100\n"))
        self.assertRegex(result.stderr, r"\[run 1/1\] .*, ~0:02 left")


class LoadAxisTest(unittest.TestCase):
    # A load parameter as an axis runs like any other, duration included (its values are
    # numbers in the run's time budget, not text).
    def test_duration_axis(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "durations")
            matrix = TINY_MATRIX.replace('queue = ["mutex", "lockfree"]', "duration = [0.5, 1]")
            matrix = matrix.replace("duration = 1\n", "")
            result = run_runner(matrix, out)
            self.assertEqual(result.returncode, 0, result.stderr)
            _, rows = read_csv(os.path.join(out, "results.csv"))
            self.assertEqual(sorted(r["duration_s"] for r in rows), ["0.5", "1"])
            for row in rows:
                self.assertEqual(row["verified"], "true", row["failure"])


# Two open-loop rates on two connections, with more client threads asked for than connections.
OPEN_LOOP_MATRIX = """
description = "test: open loop"
repeat = 2
[axes]
rate = [200, 2000]
[load]
connections = 2
threads = 4
duration = 1
users = 100
"""


class OpenLoopMatrixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runner_test-")
        cls.out = os.path.join(cls.tmp, "open")
        cls.result = run_runner(OPEN_LOOP_MATRIX, cls.out, extra=("--repeat", "1"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # An open loop's events/s is its offered rate, so its combinations rank by latency instead.
    def test_ranked_by_p99(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        _, summary = read_csv(os.path.join(self.out, "summary.csv"))
        by_rank = sorted(summary, key=lambda s: int(s["rank"]))
        p99 = [float(s["p99_us_median"]) for s in by_rank]
        self.assertEqual(p99, sorted(p99))

    # A row records the threads the client ran (one per connection at most), not those asked.
    def test_threads_as_run(self):
        _, rows = read_csv(os.path.join(self.out, "results.csv"))
        self.assertEqual({r["threads"] for r in rows}, {"2"})

    # The printed report names the command-line overrides next to the matrix's description.
    def test_report_names_overrides(self):
        self.assertIn("test: open loop (overridden: --repeat 1)", self.result.stdout)



# Answers --help and --list-strategies as the real server does, but on --check hands its pid
# through a FIFO and then never answers, which holds the runner in its checks.
CHECK_NEVER_ANSWERS = """#!/bin/sh
case " $* " in
  *" --check "*) echo $$ > "%(fifo)s"; exec sleep 60 ;;
esac
exec "%(real)s" "$@"
"""


class InterruptTest(unittest.TestCase):
    # SIGTERM stops the runner with exit 130 and takes the run's server and load client with
    # it: both end within seconds (each would otherwise run its 60 s), whether the runner's
    # cleanup kills them or, if the signal caught the runner starting one, the kernel's
    # parent-death signal does. The runner says where the runs so far are.
    def test_sigterm_leaves_nothing_running(self):
        with tempfile.TemporaryDirectory() as tmp:
            wrappers, fifos, pids, pidfds = {}, {}, {}, {}
            for name, real in (("server", SERVER), ("load", LOAD)):
                wrappers[name] = os.path.join(tmp, name)
                fifos[name] = wrappers[name] + ".pid"
                os.mkfifo(fifos[name])
                with open(wrappers[name], "w") as f:
                    f.write(PID_FIFO_WRAPPER % {"fifo": fifos[name], "real": real})
                os.chmod(wrappers[name], 0o755)
            matrix = os.path.join(tmp, "long.toml")
            with open(matrix, "w") as f:
                f.write(TINY_MATRIX.replace("duration = 1", "duration = 60"))
            out = os.path.join(tmp, "out")
            runner = subprocess.Popen(
                [sys.executable, RUNNER, matrix, "--out", out,
                 "--server", wrappers["server"], "--load", wrappers["load"]],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                for name in ("server", "load"):  # the server starts first, then its load
                    with open(fifos[name]) as f:
                        pids[name] = int(f.read())
                    pidfds[name] = os.pidfd_open(pids[name])  # readable once it has ended
                runner.send_signal(signal.SIGTERM)
                _, stderr = runner.communicate(timeout=30)
                self.assertEqual(runner.returncode, 130)
                self.assertIn("runner: interrupted; the runs so far are in %s\n"
                              % os.path.join(out, "runs"), stderr)
                for name, fd in pidfds.items():
                    ended, _, _ = select.select([fd], [], [], 10)
                    self.assertTrue(ended, "%s left running" % name)
            finally:
                clean_up(runner, pids.values(), pidfds.values())

    # Interrupted during its checks, before it has made the result directory, the runner says
    # only that it was interrupted: there are no runs to point to.
    def test_sigterm_before_the_result_directory(self):
        with tempfile.TemporaryDirectory() as tmp:
            fifo = os.path.join(tmp, "check.pid")
            os.mkfifo(fifo)
            server = write_script(os.path.join(tmp, "server"), CHECK_NEVER_ANSWERS,
                                  fifo=fifo, real=SERVER)
            matrix = os.path.join(tmp, "matrix.toml")
            with open(matrix, "w") as f:
                f.write(ONE_RUN_MATRIX)
            out = os.path.join(tmp, "out")
            runner = subprocess.Popen([sys.executable, RUNNER, matrix, "--out", out,
                                       "--server", server, "--load", LOAD],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
            check = None
            try:
                with open(fifo) as f:
                    check = int(f.read())
                runner.send_signal(signal.SIGTERM)
                _, stderr = runner.communicate(timeout=30)
                self.assertEqual(runner.returncode, 130)
                self.assertEqual(stderr, "runner: interrupted\n")
                self.assertFalse(os.path.exists(out))
            finally:
                clean_up(runner, [] if check is None else [check], [])


# A parent that starts `sleep 60` as the runner starts its children, prints the child's pid and
# dies at once without any cleanup, as a runner interrupted mid-Popen would leave it.
ORPHANING_PARENT = """
import os, subprocess, sys
sys.path.insert(0, %(harness)r)
from matrix_runner.processes import child_preexec
child = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=child_preexec([]))
print(child.pid, flush=True)
os._exit(0)
"""


class ParentDeathTest(unittest.TestCase):
    # A child the runner starts ends when the runner dies, even if nothing killed it: the safety
    # net for a signal that catches the runner inside Popen, before it holds a handle to kill.
    def test_child_ends_with_its_parent(self):
        script = ORPHANING_PARENT % {"harness": os.path.join(ROOT, "harness")}
        parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(parent.returncode, 0, parent.stderr)
        try:
            fd = os.pidfd_open(int(parent.stdout))
        except ProcessLookupError:
            return  # already ended and reaped
        try:
            ended, _, _ = select.select([fd], [], [], 10)
            self.assertTrue(ended, "the child outlived its parent")
        finally:
            os.close(fd)


# A worker-bound server: 100 us of busy work per event, so its one worker applies at most
# 10,000 events/s, offered three times that on a fixed schedule, with a small queue.
WORKER_BOUND_US = 100
OVERLOAD_MATRIX = """
description = "test: backpressure past capacity"
repeat = 1
[server]
work-us = %d
queue-capacity = 256
[load]
connections = 4
rate = 30000
duration = 1
users = 500
max_inflight = 64
timeout_ms = 2000
""" % WORKER_BOUND_US


class OverloadMatrixTest(unittest.TestCase):
    # Past capacity the server sheds the excess with server_busy at once: accepted events/s stays
    # within the workers' rate (a busy-wait cannot go faster; the margin covers the queue's 256
    # events filling in the first second), and the run is still verified. This is the
    # backpressure the bundled overload matrix plots. Whether the client kept its schedule is
    # not asserted: that is a matter of speed, and on a busy machine it may fall behind.
    def test_sheds_past_capacity(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "overload")
            result = run_runner(OVERLOAD_MATRIX, out)
            self.assertEqual(result.returncode, 0, result.stderr)
            _, rows = read_csv(os.path.join(out, "results.csv"))
            row = rows[0]
            self.assertEqual(row["verified"], "true", row["failure"])
            self.assertGreater(int(row["dropped"]), 0)
            self.assertLess(float(row["events_per_s"]), 1.1e6 / WORKER_BOUND_US)

    # The bundled overload matrix is worker-bound, as its comment explains: without work per
    # event the event loop is the bottleneck on a small machine and the queue never fills.
    def test_bundled_matrix_is_worker_bound(self):
        with open(os.path.join(ROOT, "harness", "matrices", "overload.toml"), "rb") as f:
            spec = tomllib.load(f)
        self.assertGreater(float(spec["server"]["work-us"]), 0)


# A server of at most 1,000 events/s (1 ms of busy work per event, one worker), offered rates
# far below and far above it: 1e-4 x capacity is well under one event/s, and 2000 x capacity
# (at most 2 million events/s) is a rate the load client accepts although 2000 times the
# capacity of a fast server would not be.
OVERLOAD_RATES_MATRIX = """
repeat = 2
[server]
work-us = 1000
queue-capacity = 16
[load]
connections = 2
pipeline = 4
duration = 0.3
users = 100
[overload]
multiples = [%s]
capacity_duration = 0.3
"""


class OverloadRatesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runner_test-")
        cls.out = os.path.join(cls.tmp, "rates")
        cls.result = run_runner(OVERLOAD_RATES_MATRIX % "1e-4, 2000", cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def capacity(self):
        """meta.json's capacity record, once the matrix has run."""
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        with open(os.path.join(self.out, "meta.json")) as f:
            return json.load(f)["capacity"]

    # Each rate is its multiple of the measured capacity, kept to six significant digits rather
    # than rounded to whole events/s: the small one is not 0, and both runs are verified.
    def test_rates_follow_the_capacity(self):
        capacity = self.capacity()["events_per_s"]
        _, rows = read_csv(os.path.join(self.out, "results.csv"))
        self.assertEqual(len(rows), 4)
        for row in rows:
            self.assertEqual(row["verified"], "true", row["failure"])
            expected = float(row["rate_multiple"]) * capacity
            self.assertGreater(float(row["rate"]), 0)
            self.assertAlmostEqual(float(row["rate"]) / expected, 1, places=5)

    # The capacity is the median of `repeat` capacity runs, each kept in runs/, and meta.json
    # records every run and their spread.
    def test_capacity_is_a_median(self):
        capacity = self.capacity()
        runs = capacity["runs_events_per_s"]
        self.assertEqual(len(runs), 2)
        self.assertAlmostEqual(capacity["events_per_s"], sum(runs) / 2)
        self.assertEqual((capacity["events_per_s_min"], capacity["events_per_s_max"]),
                         (min(runs), max(runs)))
        for number in (1, 2):
            for suffix in ("load.json", "load.log", "server.log"):
                self.assertTrue(os.path.exists(os.path.join(
                    self.out, "runs", "capacity-%d-%s" % (number, suffix))))

    # A rate the load client refuses at the measured capacity (1e-12 x capacity is below its
    # smallest --rate) stops the matrix after the capacity runs and before the first open-loop
    # run, in the client's own words.
    def test_rate_refused_at_the_capacity_exit_2(self):
        out = os.path.join(self.tmp, "refused")
        result = run_runner((OVERLOAD_RATES_MATRIX % "1e-12").replace("repeat = 2", "repeat = 1"),
                            out)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertRegex(result.stderr, r"runner: error: at the measured capacity of \d+ "
                                        r"events/s, the load client refuses .*--rate")
        self.assertNotIn("Traceback", result.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "runs", "capacity-1-load.json")))
        self.assertFalse(os.path.exists(os.path.join(out, "runs", "001-load.log")))


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class RedisTargetTest(unittest.TestCase):
    # A redis row runs against a private redis-server, verifies, and leaves strategy columns empty.
    def test_redis_row(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "redis")
            matrix = TINY_MATRIX.replace('queue = ["mutex", "lockfree"]',
                                         'target = ["anubis", "redis"]')
            result = run_runner(matrix, out)
            self.assertEqual(result.returncode, 0, result.stderr)
            _, rows = read_csv(os.path.join(out, "results.csv"))
            by_target = {r["target"]: r for r in rows}
            self.assertEqual(set(by_target), {"anubis", "redis"})
            redis = by_target["redis"]
            self.assertEqual(redis["verified"], "true", redis["failure"])
            for axis in server_strategies(SERVER):
                self.assertEqual(redis[axis], "")
            self.assertEqual(redis["accepted"], redis["server_events"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
