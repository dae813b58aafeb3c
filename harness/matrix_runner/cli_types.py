"""What compare.py and redis_peer.py share as command-line tools: argparse types, so that both
refuse the same values in the same words (a count below 1, a number of runs above the runner's
MAX_REPEAT, or a duration that is not a finite number of seconds above 0: float() accepts "nan"
and "inf", which no run can use), and one way of turning their errors and signals into exit
statuses."""

import argparse
import math
import signal
import subprocess
import sys

from .errors import MatrixError
from .matrix import MAX_REPEAT


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be an integer >= 1, not %d" % value)
    return value


def run_count(text):
    """Runs per variant or pair: 1 to MAX_REPEAT, as the matrix runner takes them, so that a
    typo does not start a measurement that never ends."""
    value = positive_int(text)
    if value > MAX_REPEAT:
        raise argparse.ArgumentTypeError("must be at most %d, not %d" % (MAX_REPEAT, value))
    return value


def positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a number of seconds > 0, not %r" % text)
    return value


def run_tool(name, body, args, cannot_run=(), run_failed=()):
    """Returns body(args)'s exit status, or the one its failure calls for, with the reason as
    one line on stderr: 2 when the tool cannot run at all (`cannot_run`, a matrix error, a
    program the kernel will not start), 1 when a run failed (`run_failed`), 130 on SIGINT,
    SIGTERM or SIGHUP. SIGTERM and SIGHUP (a closed terminal) end it as Ctrl-C does, by an
    exception, so that the current run's cleanup stops its processes and removes its files
    before the tool exits."""
    stop_on_signals()
    try:
        return body(args)
    except (MatrixError, OSError, subprocess.SubprocessError) + tuple(cannot_run) as e:
        print("%s: error: %s" % (name, e), file=sys.stderr)
        return 2
    except tuple(run_failed) as e:
        print("%s: error: %s" % (name, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("%s: interrupted" % name, file=sys.stderr)
        return 130


def stop_on_signals():
    """Makes SIGTERM and SIGHUP (a closed terminal) stop a tool as Ctrl-C does: by a
    KeyboardInterrupt, so that the cleanup on its way out runs."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
