#!/usr/bin/python3
"""Tests of run_lesson_blocks.py: a block sees the environment of an ordinary shell, and a hung
block fails at its timeout instead of hanging the test."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_lesson_blocks.py")


def run_lesson(text, timeout=30):
    """Runs the runner on a lesson with `text`; returns (exit status, output, seconds taken)."""
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "LESSON.md"), "w", encoding="utf-8") as f:
            f.write(text)
        start = time.monotonic()
        result = subprocess.run([sys.executable, RUNNER, "--build-dir", root, "--root", root,
                                 "--timeout", str(timeout), "LESSON.md"],
                                env=dict(os.environ, TMPDIR=root), capture_output=True,
                                text=True, timeout=120)
        return result.returncode, result.stdout, time.monotonic() - start


def block(script):
    return "```sh lesson-test\n" + script + "\n```\n"


class RunLessonBlocksTest(unittest.TestCase):
    # A block relying on a TMPDIR that a learner's shell does not set fails, even if the
    # runner itself was started with one.
    def test_block_does_not_inherit_tmpdir(self):
        status, output, _ = run_lesson(block('echo hi > "$TMPDIR/file"'))
        self.assertEqual(status, 1, output)
        self.assertIn("TMPDIR: unbound variable", output)

    # A block that never ends (a wait loop on a dead stage) fails at its timeout.
    def test_hung_block_fails_at_timeout(self):
        status, output, seconds = run_lesson(block("echo waiting; sleep 600"), timeout=1)
        self.assertEqual(status, 1, output)
        self.assertIn("timeout after 1 s", output)
        self.assertIn("waiting", output)  # what it printed before it hung
        self.assertLess(seconds, 60)

    # A block that makes its own files with mktemp -d and cleans up passes.
    def test_self_contained_block_passes(self):
        status, output, _ = run_lesson(block('tmp=$(mktemp -d)\necho hi > "$tmp/f"\n'
                                             'grep -qx hi "$tmp/f"\nrm -r "$tmp"'))
        self.assertEqual(status, 0, output)


if __name__ == "__main__":
    unittest.main()
