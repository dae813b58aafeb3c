#!/usr/bin/python3
"""Runs the ```sh lesson-test blocks of LESSON.md files, so that lessons never go stale.

usage: run_lesson_blocks.py --build-dir DIR [--root REPO] LESSON.md...

Each block tagged ```sh lesson-test is a self-contained bash script. It runs with the repository
root as its working directory, under `set -euo pipefail`, with every `build/release/` in its text
replaced by the build tree under test (also exported as BUILD_DIR), so a lesson shows the
commands a learner types and the test runs the same commands on the binaries it just built.
TMPDIR is removed from the block's environment, as in an ordinary shell, so each block must make
its own files (`tmp=$(mktemp -d)`). A block fails the test if it exits non-zero or runs longer
than --timeout seconds (then it is killed, so a hung wait loop fails instead of hanging); whatever
it left running (a stage in the background) is killed with its process group. A lesson without
any lesson-test block fails too: its commands would be checked by nothing.
"""
import argparse
import os
import re
import signal
import subprocess
import sys

BLOCK = re.compile(r"^```sh lesson-test[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_block(script, root, build_dir, timeout):
    script = script.replace("build/release/", build_dir.rstrip("/") + "/")
    # The environment of an ordinary shell: no TMPDIR, so a block that writes to "$TMPDIR/..."
    # fails here as it would for a learner (who has no TMPDIR set) instead of passing.
    env = {key: value for key, value in os.environ.items() if key != "TMPDIR"}
    env["BUILD_DIR"] = build_dir
    # A session of its own: the block's background jobs share its process group.
    proc = subprocess.Popen(["/bin/bash", "-euo", "pipefail", "-c", script], cwd=root, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        status = proc.returncode
    except subprocess.TimeoutExpired:
        status = f"timeout after {timeout:g} s"
        kill_group(proc.pid)
        try:
            output, _ = proc.communicate(timeout=5)  # what it printed before it hung
        except subprocess.TimeoutExpired:  # something outside the group holds the pipe open
            proc.kill()
            output = "(no output: the pipe stayed open)"
    kill_group(proc.pid)  # anything the block left running (a stage in the background)
    return status, output


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--root", default=os.getcwd())
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("lessons", nargs="+")
    args = parser.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    failures = 0
    for lesson in args.lessons:
        path = os.path.join(args.root, lesson)
        with open(path, encoding="utf-8") as f:
            blocks = BLOCK.findall(f.read())
        if not blocks:
            print(f"FAIL {lesson}: no ```sh lesson-test block")
            failures += 1
        for number, script in enumerate(blocks, 1):
            status, output = run_block(script, args.root, build_dir, args.timeout)
            verdict = "ok" if status == 0 else f"FAIL (status {status})"
            print(f"--- {lesson} block {number}: {verdict}")
            if status != 0:
                failures += 1
                print(script)
                print("--- output:")
                print(output)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
