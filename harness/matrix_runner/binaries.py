"""What the binaries offer, read from them rather than listed here: the strategy axes
(anubis-server --list-strategies), every flag and its default (--help), and how a matrix key
or value is spelled as a flag."""

import json
import re
import subprocess

from .errors import MatrixError

# A question to a binary (--help, --list-strategies, --check) is answered at once; one that takes
# longer is not the binary the runner expects, and the matrix stops before any run.
ASK_TIMEOUT_S = 30


def ask(binary, *args):
    """Runs `binary ARGS` before any run starts, to ask what it offers or accepts. A binary that
    cannot be started or does not answer is a MatrixError naming it."""
    try:
        return subprocess.run([binary, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=ASK_TIMEOUT_S)
    except OSError as e:
        raise MatrixError("cannot run %s: %s" % (binary, e.strerror))
    except subprocess.TimeoutExpired:
        raise MatrixError("%s %s did not answer within %d s" % (binary, " ".join(args),
                                                                ASK_TIMEOUT_S))


def answer(binary, *args):
    """The standard output of `binary ARGS`, which must exit 0."""
    result = ask(binary, *args)
    if result.returncode != 0:
        raise MatrixError("%s %s exited with %d%s" % (
            binary, " ".join(args), result.returncode,
            ": " + result.stderr.strip() if result.stderr.strip() else ""))
    return result.stdout


def is_registry(strategies):
    """Whether --list-strategies printed what the runner reads: {axis: [{"name": ...}, ...]}."""
    return isinstance(strategies, dict) and all(
        isinstance(rows, list) and all(isinstance(row, dict) and isinstance(row.get("name"), str)
                                       for row in rows)
        for rows in strategies.values())


def server_strategies(server):
    out = answer(server, "--list-strategies")
    try:
        strategies = json.loads(out)
    except ValueError:
        strategies = None
    if not is_registry(strategies):
        raise MatrixError("%s --list-strategies did not print the strategy registries as JSON "
                          "(is it anubis-server?); it printed %r" % (server, out[:80]))
    return strategies


def help_defaults(binary):
    """{flag name with underscores: default text} from CLI11's --help ("--workers UINT=1")."""
    out = answer(binary, "--help")
    flags, defaults = set(), {}
    for line in out.splitlines():
        match = re.match(r"\s+(?:-\w,)?--([\w-]+)(.*)$", line)
        if not match:
            continue
        name = match.group(1).replace("-", "_")
        flags.add(name)
        # "TYPE=default", then either the description on the same line (after a run of spaces)
        # or " Excludes: ..."; defaults themselves contain no spaces.
        rest = match.group(2).split(" Excludes:")[0].strip()
        if "=" in rest:
            defaults[name] = rest.split("=", 1)[1].split()[0]
    return flags, defaults


def normalise(key):
    return key.replace("-", "_")


def flag(key):
    return "--" + key.replace("_", "-")


def number_text(value):
    """Axis values as they appear in flags and CSV: 1.0 -> "1", "mutex" -> "mutex"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
