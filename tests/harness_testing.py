"""Helpers the harness's Python tests share: wrapper scripts that stand in for a binary, and a
bounded wait for a process to end."""

import os
import select
import signal

# Bounds every wait on a child, so that a regression fails the test instead of hanging it.
WAIT_S = 30

# Runs the real binary, first handing its pid through a FIFO when it is a run (not --help,
# --check or --list-strategies), so the test can wait for the run to start without polling.
PID_FIFO_WRAPPER = """#!/bin/sh
case " $* " in
  *" --help "*|*" --check "*|*" --list-strategies "*) ;;
  *) echo $$ > "%(fifo)s" ;;
esac
exec "%(real)s" "$@"
"""


def write_script(path, template, **values):
    with open(path, "w") as f:
        f.write(template % values)
    os.chmod(path, 0o755)
    return path


def ended(pid):
    """Whether pid ends within WAIT_S (at once if it is already gone)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], WAIT_S)
        return bool(readable)
    finally:
        os.close(fd)


def clean_up(tool, pids, fds):
    """After an interrupt test, pass or fail: closes `fds`, kills the recorded children (pids)
    and the tool (a Popen) if any is still there, so that a failed test leaves nothing behind."""
    for fd in fds:
        os.close(fd)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if tool.poll() is None:
        tool.kill()
        tool.wait()
