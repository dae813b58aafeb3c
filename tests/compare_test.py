#!/usr/bin/python3
"""Tests of harness/compare.py against the real anubis-server and anubis-load (ANUBIS_SERVER,
ANUBIS_LOAD), started through wrappers that record how compare started them."""

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import unittest

from harness_testing import PID_FIFO_WRAPPER, WAIT_S, clean_up, ended, write_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.environ.get("ANUBIS_SERVER", os.path.join(ROOT, "build/release/src/anubis-server"))
LOAD = os.environ.get("ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load"))
COMPARE = os.path.join(ROOT, "harness", "compare.py")

# Words that ask a binary what it offers or accepts rather than start a run; the wrappers below
# spell them as the case pattern *" --check "*|*" --help "*|*" --list-strategies "*.
QUESTIONS = ("--check", "--help", "--list-strategies")

# Appends its arguments to a record file, one line per start (questions included), then runs the
# real binary, so a test knows whether and how compare started it.
RECORDING_WRAPPER = """#!/bin/sh
echo "$*" >> "%(record)s"
exec "%(real)s" "$@"
"""

# A load client that answers questions as the real one does but fails every run, as one that
# cannot connect would: exit 1 and no JSON.
FAILING_LOAD = """#!/bin/sh
case " $* " in
  *" --check "*|*" --help "*|*" --list-strategies "*) exec "%(real)s" "$@" ;;
esac
echo "anubis-load: cannot connect" >&2
exit 1
"""

# A server that answers questions as the real one does but exits at once, saying nothing, when
# started for a run.
SILENT_SERVER = """#!/bin/sh
case " $* " in
  *" --check "*|*" --help "*|*" --list-strategies "*) exec "%(real)s" "$@" ;;
esac
exit 0
"""

# Enough for a run to start and verify; its length is not what these tests measure.
SHORT_RUN = ("--repeat", "1", "--duration", "0.2", "--pipeline", "4", "--users", "100")


def run_compare(server, load, *args):
    return subprocess.run([sys.executable, COMPARE, "--server", server, "--load", load, *args],
                          capture_output=True, text=True, timeout=120)


def read_record(path):
    """The argument lists of the runs a recording wrapper saw, questions (QUESTIONS) left
    out."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        runs = [shlex.split(line) for line in f]
    return [words for words in runs if not any(q in words for q in QUESTIONS)]


def option(words, name):
    return words[words.index(name) + 1]


def table(stdout):
    """The rows of compare's table, split into words, after its header line."""
    return [line.split() for line in stdout.split(" verified\n", 1)[1].splitlines()]


class RecordingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="compare_test-")
        self.server_record = os.path.join(self.tmp.name, "server.record")
        self.load_record = os.path.join(self.tmp.name, "load.record")
        self.server = write_script(os.path.join(self.tmp.name, "server"), RECORDING_WRAPPER,
                                   record=self.server_record, real=os.path.abspath(SERVER))
        self.load = write_script(os.path.join(self.tmp.name, "load"), RECORDING_WRAPPER,
                                 record=self.load_record, real=os.path.abspath(LOAD))

    def tearDown(self):
        self.tmp.cleanup()


class ArgumentTest(RecordingTest):
    BAD_ARGUMENTS = (
        (("--variant", "clients=0"), "clients="),
        (("--variant", "clients=abc"), "clients="),
        (("--variant", "", "--duration", "0"), "--duration"),
        (("--variant", "", "--duration", "inf"), "--duration"),
        (("--variant", "", "--repeat", "0"), "--repeat"),
        (("--variant", "", "--repeat", "1001"), "--repeat"),
        (("--variant", "--"), "'--' is not a server flag"),
        (("--variant", "", "--connections", "0"), "--connections"),
        (("--variant", "", "--pipeline", "-1"), "--pipeline"),
        (("--variant", "", "--users", "many"), "--users"),
        (("--variant", "clients=100", "--connections", "2"), "100 load processes"),
        (("--variant", '"--workers 2'), "No closing quotation"),
        # Flags compare owns: it passes --port 0 and --check itself, and the others exit
        # instead of serving.
        (("--variant", "--port 7878"), "a variant cannot set --port"),
        (("--variant", "--port 0"), "a variant cannot set --port"),
        (("--variant", "clients=2 --port=7878"), "a variant cannot set --port"),
        (("--variant=--check",), "a variant cannot set --check"),
        (("--variant=--help",), "a variant cannot set --help"),
        (("--variant", "-h"), "a variant cannot set -h"),
        (("--variant=--list-strategies",), "a variant cannot set --list-strategies"),
    )

    # Each bad argument is a usage error (exit 2, naming it, no traceback) before anything
    # starts: neither binary runs, so no server can be left behind.
    def test_bad_arguments_exit_2_before_anything_starts(self):
        for args, reason in self.BAD_ARGUMENTS:
            with self.subTest(args=args):
                result = run_compare(self.server, self.load, *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("usage:", result.stderr)
                self.assertIn(reason, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertFalse(os.path.exists(self.server_record), "the server was started")
                self.assertFalse(os.path.exists(self.load_record), "the load was started")

    # A variant flag the server refuses stops the comparison before its first run, in the
    # server's own words, rather than after the variants before it have run.
    def test_refused_server_flag_exit_2(self):
        result = run_compare(self.server, self.load, "--variant", "",
                             "--variant", "--workers 0", *SHORT_RUN)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("compare: error: the server refuses --workers 0", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(read_record(self.server_record), [])

    # The word after --variant is the variant even when it starts with "-" and has no space,
    # which argparse alone would take for an option.
    def test_variant_may_start_with_a_dash(self):
        result = run_compare(self.server, self.load, "--variant", "--queue=lockfree", *SHORT_RUN)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([words[-1] for words in read_record(self.server_record)],
                         ["--queue=lockfree"])

    # A load client or server that is not the one compare drives (here one that answers every
    # question with exit 0 and nothing) is refused before any run, as the matrix runner refuses
    # it, rather than failing the first run.
    def test_foreign_binary_exit_2_before_any_run(self):
        for server, load, reason in ((self.server, "/bin/true", "/bin/true lacks --check"),
                                     ("/bin/true", self.load, "is it anubis-server?")):
            with self.subTest(server=server, load=load):
                result = run_compare(server, load, "--variant", "", *SHORT_RUN)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(reason, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertEqual(read_record(self.server_record), [])
                self.assertEqual(read_record(self.load_record), [])


class VerifiedTest(RecordingTest):
    # A run that is not verified (the second connection over --max-connections 1 is refused)
    # is left out of its variant's median and range, the table says how many runs each median
    # stands on, and the exit status still says that a run was not verified.
    def test_unverified_runs_are_not_measured(self):
        result = run_compare(self.server, self.load, "--variant", "",
                             "--variant", "--max-connections 1", "--connections", "2",
                             *SHORT_RUN)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("NOT VERIFIED", result.stderr)
        self.assertIn("1 of 2 runs were NOT verified", result.stderr)
        # What the load process opened, not what it was asked for: one connection was refused.
        self.assertIn("opened 1 connections, not 2", result.stderr)
        defaults, limited = table(result.stdout)
        self.assertEqual(defaults[0], "(defaults)")
        self.assertEqual(defaults[-2:], ["1.00x", "1/1"])
        self.assertEqual(limited, ["--max-connections", "1", "-", "-", "-", "0/1"])


class ConnectionsTest(RecordingTest):
    # Connections that do not divide among the load processes are spread, not lost: 5 over 3
    # processes opens 2+2+1, every run opens exactly --connections, and each run reports what
    # its load processes opened. The same variant twice is two rows, not one.
    def test_uneven_split_opens_every_connection(self):
        result = run_compare(self.server, self.load, "--variant", "",
                             "--variant", "clients=3", "--variant", "",
                             "--connections", "5", *SHORT_RUN)
        self.assertEqual(result.returncode, 0, result.stderr)
        runs = {}
        for words in read_record(self.load_record):
            run_dir = os.path.dirname(option(words, "--json-out"))
            runs.setdefault(run_dir, []).append(int(option(words, "--connections")))
        self.assertEqual(sorted(sorted(split) for split in runs.values()),
                         [[1, 2, 2], [5], [5]])
        self.assertIn("2+2+1 = 5 connections  verified", result.stderr)
        self.assertEqual(len(re.findall(r" 5 connections  verified", result.stderr)), 3)
        self.assertEqual([row[0] for row in table(result.stdout)],
                         ["(defaults)", "clients=3", "(defaults)"])


class AddressTest(RecordingTest):
    # A variant that binds the server elsewhere than 127.0.0.1 (all of 127/8 is loopback on
    # Linux) is measured there: the load goes to the address the server reports.
    def test_bind_is_where_the_load_goes(self):
        result = run_compare(self.server, self.load, "--variant", "--bind 127.0.0.2",
                             *SHORT_RUN)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([option(words, "--host") for words in read_record(self.load_record)],
                         ["127.0.0.2"])


class FailureTest(unittest.TestCase):
    # A load process that fails ends the comparison with the reason and exit 1, not a traceback,
    # and the run's server has been stopped by then.
    def test_failed_load_is_an_error_and_stops_the_server(self):
        with tempfile.TemporaryDirectory(prefix="compare_test-") as tmp:
            fifo = os.path.join(tmp, "server.pid")
            os.mkfifo(fifo)
            server = write_script(os.path.join(tmp, "server"), PID_FIFO_WRAPPER, fifo=fifo,
                                  real=os.path.abspath(SERVER))
            load = write_script(os.path.join(tmp, "load"), FAILING_LOAD,
                                real=os.path.abspath(LOAD))
            # Opened before compare starts, so the wrapper's write never waits for a reader.
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            try:
                result = run_compare(server, load, "--variant", "", *SHORT_RUN)
                pid = int(os.read(reader, 64))
            finally:
                os.close(reader)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn("compare: error: run 1/1 of (defaults) measured nothing", result.stderr)
            self.assertIn("anubis-load exited with 1", result.stderr)
            self.assertIn("cannot connect", result.stderr)
            self.assertNotIn("Traceback", result.stderr)
            self.assertTrue(ended(pid), "the server was left running")

    # A server that exits without listening and without a word on stderr still gets a reason,
    # not a message that ends in an empty one.
    def test_silent_server_has_a_reason(self):
        with tempfile.TemporaryDirectory(prefix="compare_test-") as tmp:
            server = write_script(os.path.join(tmp, "server"), SILENT_SERVER,
                                  real=os.path.abspath(SERVER))
            result = run_compare(server, LOAD, "--variant", "", *SHORT_RUN)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn("did not report `listening on` (exit 0) and wrote nothing to stderr",
                          result.stderr)
            self.assertFalse(result.stderr.rstrip("\n").endswith(":"), result.stderr)


class InterruptTest(unittest.TestCase):
    # Killing compare mid-run takes the run's server and load process with it: SIGTERM through
    # its own cleanup (exit 130), SIGKILL through the kernel's parent-death signal. Either would
    # otherwise run its 60 s.
    def test_signal_leaves_nothing_running(self):
        for sig, status in ((signal.SIGTERM, 130), (signal.SIGHUP, 130),
                            (signal.SIGKILL, -signal.SIGKILL)):
            with self.subTest(signal=sig.name):
                self.interrupt(sig, status)

    def interrupt(self, sig, status):
        with tempfile.TemporaryDirectory(prefix="compare_test-") as tmp:
            wrappers, readers, pids = {}, {}, {}
            for name, real in (("server", SERVER), ("load", LOAD)):
                fifo = os.path.join(tmp, name + ".pid")
                os.mkfifo(fifo)
                readers[name] = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                wrappers[name] = write_script(os.path.join(tmp, name), PID_FIFO_WRAPPER,
                                              fifo=fifo, real=os.path.abspath(real))
            compare = subprocess.Popen(
                [sys.executable, COMPARE, "--server", wrappers["server"],
                 "--load", wrappers["load"], "--variant", "", "--repeat", "1",
                 "--duration", "60", "--connections", "2", "--users", "100"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # compare's own temporary directory goes in ours: SIGKILL leaves it behind.
                env=dict(os.environ, TMPDIR=tmp))
            try:
                for name in ("server", "load"):  # the server starts first, then its load
                    readable, _, _ = select.select([readers[name]], [], [], WAIT_S)
                    self.assertTrue(readable, "compare did not start the %s" % name)
                    pids[name] = int(os.read(readers[name], 64))
                compare.send_signal(sig)
                self.assertEqual(compare.wait(timeout=WAIT_S), status)
                for name, pid in pids.items():
                    self.assertTrue(ended(pid), "%s left running" % name)
            finally:
                clean_up(compare, pids.values(), readers.values())


if __name__ == "__main__":
    unittest.main(verbosity=2)
