#!/usr/bin/python3
"""Tests of harness/redis_peer.py with this tree's anubis-load (ANUBIS_LOAD) and the installed
redis-server and redis-benchmark, each started through a wrapper that records how redis_peer
started it. The tests that run Redis are skipped when it is not installed."""

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from harness_testing import WAIT_S, ended, write_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = os.environ.get("ANUBIS_LOAD", os.path.join(ROOT, "build/release/harness/anubis-load"))
REDIS_PEER = os.path.join(ROOT, "harness", "redis_peer.py")
# Looked up before the wrappers shadow them on redis_peer's PATH. A wrapper of a missing program
# is still there for redis_peer to find, so the tests that must start nothing need no Redis.
REDIS_SERVER = shutil.which("redis-server") or "/nonexistent/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/nonexistent/redis-benchmark"
HAVE_REDIS = os.path.exists(REDIS_SERVER) and os.path.exists(REDIS_BENCHMARK)

# Appends its name, pid and arguments to the record file, one line per start (--check and
# --help included), then runs the real program under the same pid, so a test knows whether, how and as
# which process redis_peer started it.
RECORDING_WRAPPER = """#!/bin/sh
echo "%(name)s $$ $*" >> "%(record)s"
%(announce)s
exec "%(real)s" "$@"
"""

# The wrapper's extra line that hands its pid to the test through a FIFO when it is a run (not
# a question: --check or --help), so the test learns when that run has started without polling.
ANNOUNCE = 'case " $* " in *" --check "*|*" --help "*) ;; *) echo $$ > "%s" ;; esac'

# A client that answers questions (--check, --help) as the real one does but fails every run,
# as one that cannot connect would: exit 1, no JSON, and a reason on stderr.
FAILING_CLIENT = """#!/bin/sh
echo "%(name)s $$ $*" >> "%(record)s"
case " $* " in *" --check "*|*" --help "*) exec "%(real)s" "$@" ;; esac
echo "%(name)s: cannot connect" >&2
exit 1
"""

# Enough for both clients to run and anubis-load to verify; the rates are not what these tests
# measure.
TINY_RUN = ("--runs", "1", "--requests", "1000", "--connections", "2", "--pipeline", "1",
            "--users", "100", "--duration", "0.2")







class PeerTest(unittest.TestCase):
    """redis_peer with redis-server, redis-benchmark (first on its PATH) and anubis-load (its
    --load) wrapped, and its temporary files under a TMPDIR of the test's own."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="redis_peer_test-")
        self.bin = os.path.join(self.tmp.name, "bin")
        self.tmpdir = os.path.join(self.tmp.name, "tmp")
        os.mkdir(self.bin)
        os.mkdir(self.tmpdir)
        self.record = os.path.join(self.tmp.name, "record")
        for name, real in (("redis-server", REDIS_SERVER), ("redis-benchmark", REDIS_BENCHMARK),
                           ("anubis-load", LOAD)):
            self.wrap(name, real)
        self.load = os.path.join(self.bin, "anubis-load")

    def tearDown(self):
        self.tmp.cleanup()

    def wrap(self, name, real, template=RECORDING_WRAPPER, announce=""):
        write_script(os.path.join(self.bin, name), template, name=name, real=os.path.abspath(real),
                     record=self.record, announce=announce)

    def command(self, *args):
        return [sys.executable, REDIS_PEER, "--load", self.load, *args]

    def environment(self):
        return dict(os.environ, PATH=self.bin + os.pathsep + os.environ.get("PATH", ""),
                    TMPDIR=self.tmpdir)

    def run_peer(self, *args):
        return subprocess.run(self.command(*args), env=self.environment(), capture_output=True,
                              text=True, timeout=120)

    def starts(self):
        """(name, pid, arguments) of every program a wrapper started, questions included."""
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            # The wrapper writes a space after the pid even when there are no arguments.
            return [(name, int(pid), rest.split())
                    for name, pid, rest in (line.split(" ", 2) for line in f)]

    def forget_starts(self):
        """Empties the record, so that a subtest sees only its own starts."""
        if os.path.exists(self.record):
            os.remove(self.record)

    def runs(self):
        """The names of the programs started for a run, questions (--check, --help) left out."""
        return [name for name, _, words in self.starts()
                if "--check" not in words and "--help" not in words]


class ArgumentTest(PeerTest):
    BAD_ARGUMENTS = (
        (("--runs", "0"), "--runs"),
        (("--runs", "-1"), "--runs"),
        (("--runs", "1001"), "--runs"),
        (("--min-ratio", "nan"), "--min-ratio"),
        (("--min-ratio", "-0.5"), "--min-ratio"),
        (("--requests", "0"), "--requests"),
        (("--requests", "799"), "--connections x --pipeline = 800"),
        (("--requests", "2000000000"), "--requests"),
        (("--duration", "0"), "--duration"),
        (("--duration", "inf"), "--duration"),
        (("--connections", "0"), "--connections"),
        (("--pipeline", "-1"), "--pipeline"),
        (("--users", "many"), "--users"),
        (("--client-cpu", "-1"), "--client-cpu"),
    )

    # Each bad number is a usage error (exit 2, naming it, no traceback) before anything
    # starts: no program runs, not even anubis-load --check.
    def test_bad_arguments_exit_2_before_anything_starts(self):
        for args, reason in self.BAD_ARGUMENTS:
            with self.subTest(args=args):
                result = self.run_peer(*args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("usage:", result.stderr)
                self.assertIn(reason, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                self.assertEqual(self.starts(), [])


class SetupTest(PeerTest):
    # A load command anubis-load refuses stops redis_peer before its first run (exit 2, in the
    # client's words): no redis-server or redis-benchmark runs first.
    def test_refused_load_command_exit_2_before_any_run(self):
        result = self.run_peer(*TINY_RUN, "--users", "20000000")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("redis_peer: error: the load client refuses", result.stderr)
        self.assertIn("--users: Value 20000000 not in range", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual({name for name, _, _ in self.starts()}, {"anubis-load"})
        self.assertEqual(self.runs(), [])

    # A load client that is not there is found before the first run, not after a benchmark run.
    def test_missing_load_exit_2_before_any_run(self):
        self.load = os.path.join(self.tmp.name, "no-anubis-load")
        result = self.run_peer(*TINY_RUN)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("no-anubis-load is not built", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(self.starts(), [])

    # A program that is not anubis-load (no --check among its flags) is refused before the first
    # run: its exit status alone would pass any check.
    def test_foreign_load_exit_2_before_any_run(self):
        self.load = "/bin/true"
        result = self.run_peer(*TINY_RUN)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("/bin/true lacks --check", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(self.starts(), [])


@unittest.skipUnless(HAVE_REDIS, "redis-server and redis-benchmark are not installed")
class FailureTest(PeerTest):
    # A client that fails is reported by name with its exit status and its own reason (exit 1,
    # no traceback), and the run's redis-server has ended by then.
    def test_failed_client_is_a_clear_error(self):
        for name, real in (("redis-benchmark", REDIS_BENCHMARK), ("anubis-load", LOAD)):
            with self.subTest(client=name):
                self.forget_starts()
                self.wrap(name, real, template=FAILING_CLIENT)
                result = self.run_peer(*TINY_RUN)
                self.wrap(name, real)
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertIn("redis_peer: error: run 1/1 of %s failed: %s exited with 1"
                              % (name, name), result.stderr)
                self.assertIn("%s: cannot connect" % name, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
                for started, pid, _ in self.starts():
                    self.assertTrue(ended(pid), "%s left running" % started)
                self.assertEqual(os.listdir(self.tmpdir), [])


@unittest.skipUnless(HAVE_REDIS, "redis-server and redis-benchmark are not installed")
class InterruptTest(PeerTest):
    # SIGTERM in the middle of either client's run stops redis_peer as Ctrl-C does (exit 130):
    # the client and its redis-server end with it and the temporary directory is removed.
    # Either run would otherwise go on for minutes.
    def test_sigterm_leaves_nothing_behind(self):
        for client, real, args in (
                ("redis-benchmark", REDIS_BENCHMARK, ("--requests", "1000000000")),
                ("anubis-load", LOAD, ("--duration", "60"))):
            with self.subTest(client=client):
                self.interrupt(client, real, args)

    def interrupt(self, client, real, args):
        self.forget_starts()
        fifo = os.path.join(self.tmp.name, client + ".pid")
        os.mkfifo(fifo)
        # Opened before redis_peer starts, so the wrapper's write never waits for a reader.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.wrap(client, real, announce=ANNOUNCE % fifo)
        peer = subprocess.Popen(self.command(*TINY_RUN, *args), env=self.environment(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            readable, _, _ = select.select([reader], [], [], WAIT_S)
            self.assertTrue(readable, "redis_peer did not start %s" % client)
            peer.send_signal(signal.SIGTERM)
            _, stderr = peer.communicate(timeout=WAIT_S)
            self.assertEqual(peer.returncode, 130, stderr)
            self.assertIn("redis_peer: interrupted", stderr)
            self.assertNotIn("Traceback", stderr)
            for started, pid, _ in self.starts():
                self.assertTrue(ended(pid), "%s left running" % started)
            self.assertEqual(os.listdir(self.tmpdir), [])
        finally:
            os.close(reader)
            self.wrap(client, real)
            os.unlink(fifo)
            # Its children die with it, by their parent-death signal.
            if peer.poll() is None:
                peer.kill()
                peer.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
