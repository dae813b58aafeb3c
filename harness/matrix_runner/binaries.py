"""What the binaries offer, read from them rather than listed here: the strategy axes
(anubis-server --list-strategies), every flag and its default (--help), and how a matrix key
or value is spelled as a flag."""

import json
import re
import subprocess


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
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
