"""A matrix file parsed and checked against the binaries: axes classified (target, strategy,
server flag, load parameter), the load shape resolved, and the combinations expanded."""

import itertools
import json
import math
import tomllib

from .binaries import flag, normalise, number_text
from .columns import FIXED_SERVER_COLUMNS
from .errors import MatrixError
from .processes import parse_cpus

# Load parameters a matrix may set (in [load] or as an axis), with the load client's defaults
# (anubis-load --help; docs/RESULTS.md). Keys are flags with underscores for dashes.
LOAD_DEFAULTS = {
    "connections": 50, "pipeline": 16, "duration": 10.0, "events": None, "users": 10000,
    "seed": 1, "threads": 1, "rate": None, "max_inflight": 128, "timeout_ms": 2000,
    "warmup": 0.0, "distribution": "uniform", "zipf_s": 0.99, "sell_ratio": 0.5,
}

# Flags of anubis-load only the open loop accepts; the closed loop only takes --pipeline.
OPEN_LOOP_ONLY = ("max_inflight", "timeout_ms")

# anubis-server flags the runner owns: it passes --port 0 and --check itself, and --help and
# --list-strategies print and exit instead of serving.
RUNNER_SERVER_FLAGS = ("port", "check", "help", "list_strategies")

# The most runs per combination a matrix may ask for: more than enough to settle any difference
# these runs can resolve, and a bound on a typo such as 100000000, which would otherwise run for
# years.
MAX_REPEAT = 1000

# What a value of the matrix may be, by the flag it becomes. No flag of anubis-server or
# anubis-load takes a boolean, a date, an array or a table.
NUMBER, TEXT, NUMBER_OR_TEXT = "a number", "a string", "a string or a number"


def toml_text(value):
    """A value as a matrix file spells it, for messages: true, nan, "mutex", [1, 2]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "%sinf" % ("-" if value < 0 else "")
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[%s]" % ", ".join(map(toml_text, value))
    if isinstance(value, dict):
        return "a table"
    return str(value)


def check_value(value, where, kind=NUMBER_OR_TEXT):
    """One value that becomes a flag's argument, of the kind that flag takes. nan and inf are
    refused wherever they appear: TOML allows them, but no count, rate or length of a run is
    one, and the runner computes with some of them (a rate of nan hangs the runner)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and not math.isfinite(value):
        raise MatrixError("%s must be a finite number, not %s" % (where, toml_text(value)))
    if not ((is_number and kind != TEXT) or (isinstance(value, str) and kind != NUMBER)):
        raise MatrixError("%s must be %s, not %s" % (where, kind, toml_text(value)))
    return value


def check_list(values, where, key, kind, every=None):
    """The values of an axis (or of [overload] multiples): a non-empty list of distinct values
    of the kind, or "all" for an axis that knows all its values (every). A bare value is refused
    rather than taken as a list of one, because `queue = "all"` and `queue = "mutex"` would
    then look alike and mean different things. A value listed twice (1 and 1.0 are one flag
    value) would run the same combination twice as two combinations, ranked apart."""
    if every is not None and values == "all":
        return every
    if not isinstance(values, list):
        hint = "" if isinstance(values, dict) else ": write %s = [%s]" % (key, toml_text(values))
        raise MatrixError("%s must be a list of values%s, not %s%s" % (
            where, ' or "all"' if every is not None else "", toml_text(values), hint))
    if not values:
        raise MatrixError("%s has no values" % where)
    seen = {}  # flag value -> the value that gave it first
    for value in values:
        check_value(value, "%s values" % where, kind)
        text = number_text(value)
        if text in seen:
            first = seen[text]
            spelt = ("" if toml_text(first) == toml_text(value)
                     else " (as %s and %s)" % (toml_text(first), toml_text(value)))
            raise MatrixError("%s lists %s twice%s: each value is one combination, and repeat "
                              "says how many runs it gets" % (where, toml_text(first), spelt))
        seen[text] = value
    return values


def load_kind(key):
    """A load parameter is text where its default is (distribution), else a number (events and
    rate too, which have no default)."""
    return TEXT if isinstance(LOAD_DEFAULTS[key], str) else NUMBER


def check_table(spec, name):
    """A top-level table of the matrix ([axes], [server], [load], [overload]); {} when absent."""
    table = spec.get(name, {})
    if not isinstance(table, dict):
        raise MatrixError("%s must be a table ([%s] and its key = value lines), not %s" % (
            name, name, toml_text(table)))
    return table


def flag_table(spec, name):
    """A table whose keys are flags: {key with underscores: (key as written, value)}. A flag
    spelt both ways (io-threads and io_threads) is refused: one of the two would silently win."""
    table = {}
    for written, value in check_table(spec, name).items():
        key = normalise(written)
        if key in table:
            raise MatrixError("[%s] sets both %s and %s: they are one flag, %s" % (
                name, table[key][0], written, flag(key)))
        table[key] = (written, value)
    return table


def check_apart(axes, other, name):
    """An axis and a fixed value of the same key contradict each other: one would silently win.
    Refused by name, whichever way each table spells it."""
    for key in axes:
        if key in other:
            raise MatrixError("%s is both an axis ([axes] %s) and fixed ([%s] %s): an axis "
                              "varies it and [%s] fixes it, so keep one" % (
                                  key, axes[key][0], name, other[key][0], name))


def matrix_server_flag(key, server_flags):
    """Whether a matrix may set this anubis-server flag, in [server] or as an axis."""
    return key in server_flags and key not in RUNNER_SERVER_FLAGS


def check_repeat(value, where):
    """Runs per combination: an integer from 1 (0 would run nothing and still exit 0) to
    MAX_REPEAT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        raise MatrixError("%s must be an integer from 1 to %d, not %s" % (
            where, MAX_REPEAT, toml_text(value)))
    return value


def check_duration(value, where):
    """Seconds of a run: a finite number > 0 (anubis-load refuses anything else only after the
    server has started, which would fail every run of the matrix)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise MatrixError("%s must be a number of seconds > 0, not %s" % (where,
                                                                           toml_text(value)))
    return value


class Matrix:
    """The parsed matrix: axes classified, combinations expanded, load shape resolved."""

    def __init__(self, path, text, strategies, server_flags, server_defaults, overrides):
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise MatrixError("%s: %s" % (path, e))
        known = {"description", "mode", "repeat", "server_cpus", "client_cpus", "axes", "server",
                 "load", "overload"}
        unknown = set(spec) - known
        if unknown:
            raise MatrixError("%s: unknown keys %s" % (path, ", ".join(sorted(unknown))))
        self.description = check_value(spec.get("description", ""), "description", TEXT)
        # The command-line overrides, named in the printed report beside the description that
        # they make out of date.
        self.overridden = " ".join(
            "--%s %s" % (name.replace("_", "-"), value)
            for name in ("repeat", "duration", "server_cpus", "client_cpus")
            if (value := getattr(overrides, name, None)) is not None)
        self.mode = spec.get("mode", "product")
        if self.mode not in ("product", "one_at_a_time"):
            raise MatrixError('mode must be "product" or "one_at_a_time", not %s' % (
                toml_text(self.mode)))
        if overrides.repeat is not None:
            self.repeat = check_repeat(overrides.repeat, "--repeat")
        else:
            self.repeat = check_repeat(spec.get("repeat", 1), "repeat")
        for name in ("server_cpus", "client_cpus"):
            if name in spec:
                check_value(spec[name], name)
        self.server_cpus = parse_cpus(overrides.server_cpus if overrides.server_cpus is not None
                                      else spec.get("server_cpus"))
        self.client_cpus = parse_cpus(overrides.client_cpus if overrides.client_cpus is not None
                                      else spec.get("client_cpus"))

        axes_spec = flag_table(spec, "axes")
        server_spec = flag_table(spec, "server")
        load_spec = flag_table(spec, "load")
        check_apart(axes_spec, server_spec, "server")
        check_apart(axes_spec, load_spec, "load")

        self.registry_axes = list(strategies)
        self.server_defaults = {}
        for key in self.registry_axes:
            if key not in server_defaults:
                raise MatrixError("anubis-server --help gives no default for --%s" % key)
            self.server_defaults[key] = server_defaults[key]
        for key in FIXED_SERVER_COLUMNS:
            self.server_defaults[key] = server_defaults.get(key, "")

        self.fixed_server = {}
        for key, (written, value) in server_spec.items():
            if not matrix_server_flag(key, server_flags):
                raise MatrixError("[server] %s is not an anubis-server flag a matrix may set" % (
                    written))
            self.fixed_server[key] = number_text(check_value(value, "[server] %s" % written))

        self.load = dict(LOAD_DEFAULTS)
        for key, (written, value) in load_spec.items():
            if key not in LOAD_DEFAULTS:
                raise MatrixError("[load] %s is not a load parameter (%s)" % (
                    written, ", ".join(LOAD_DEFAULTS)))
            self.load[key] = check_value(value, "[load] %s" % written, load_kind(key))
        self.load_set = set(load_spec)
        if "duration" in load_spec:
            check_duration(self.load["duration"], "[load] duration")
        if overrides.duration is not None:
            self.load["duration"] = check_duration(overrides.duration, "--duration")
            self.load_set.add("duration")
        if "events" in load_spec.keys() | axes_spec.keys():
            if overrides.duration is not None:
                raise MatrixError("--duration cannot override a matrix that sets events: a run "
                                  "is either --events or --duration long")
            if "duration" in load_spec.keys() | axes_spec.keys():
                raise MatrixError("events and duration conflict: a run is either --events or "
                                  "--duration long")

        # axis name -> (kind, values); kinds: target, registry, server, load
        self.axes = {}
        for key, (written, values) in axes_spec.items():
            where = "axis %s" % written
            if key == "target":
                kind = "target"
                values = check_list(values, where, written, TEXT, every=["anubis", "redis"])
                for v in values:
                    if v not in ("anubis", "redis"):
                        raise MatrixError("target must be anubis or redis, not %r" % v)
            elif key in strategies:
                kind = "registry"
                names = [row["name"] for row in strategies[key]]
                values = check_list(values, where, written, TEXT, every=names)
                for v in values:
                    if v not in names:
                        raise MatrixError("--%s %s is not in the registry (%s)" % (
                            key, v, ", ".join(names)))
            elif key in LOAD_DEFAULTS:
                kind = "load"
                values = check_list(values, where, written, load_kind(key))
                self.load_set.add(key)
                if key == "duration":
                    if overrides.duration is not None:
                        raise MatrixError("--duration cannot override the duration axis")
                    for v in values:
                        check_duration(v, "duration axis value")
            elif matrix_server_flag(key, server_flags):
                kind = "server"
                values = check_list(values, where, written, NUMBER_OR_TEXT)
                self.server_defaults.setdefault(key, server_defaults.get(key, ""))
            else:
                raise MatrixError("axis %s is neither a strategy axis, a server flag a matrix "
                                  "may set, a load parameter nor target" % written)
            self.axes[key] = (kind, [number_text(v) for v in values])

        self.server_axis_columns = self.registry_axes + list(FIXED_SERVER_COLUMNS) + [
            k for k, (kind, _) in self.axes.items()
            if kind == "server" and k not in FIXED_SERVER_COLUMNS]

        self.multiples = None
        if "overload" in spec:
            overload = check_table(spec, "overload")
            unknown = set(overload) - {"multiples", "capacity_duration"}
            if unknown:
                raise MatrixError("[overload] takes multiples and capacity_duration, not %s" % (
                    ", ".join(sorted(unknown))))
            self.multiples = [float(m) for m in check_list(
                overload.get("multiples", []), "[overload] multiples", "multiples", NUMBER)]
            if min(self.multiples) <= 0:
                raise MatrixError("[overload] multiples must be numbers > 0, not %s" % (
                    toml_text(overload["multiples"])))
            capacity_duration = check_duration(overload.get("capacity_duration", 3),
                                               "[overload] capacity_duration")
            self.capacity_duration = float(overrides.duration if overrides.duration is not None
                                           else capacity_duration)
            if "rate" in self.load_set:
                raise MatrixError("[overload] sets the rate; neither [load] nor an axis may")

        self.combinations = self.expand()
        # ANUBIS strategies and flags would apply to no run of a matrix whose every combination
        # targets Redis. Asked of the combinations, not of the target axis: one_at_a_time
        # starts from the defaults, target anubis included, so target = ["redis"] alone still
        # leaves ANUBIS runs there. An overload matrix's [server] flags are the exception:
        # they shape its capacity runs, which are always ANUBIS's.
        if all(c.get("target") == "redis" for c in self.combinations):
            unused = ["axis %s" % axes_spec[k][0] for k, (kind, _) in self.axes.items()
                      if kind in ("registry", "server")]
            if "overload" not in spec:
                unused += ["[server] %s" % written for written, _ in server_spec.values()]
            if unused:
                raise MatrixError("%s would apply to no run: every combination targets redis, "
                                  "and ANUBIS strategies and flags apply to ANUBIS runs only" % (
                                      ", ".join(unused)))
        self.check_loop_flags()
        if "zipf_s" in self.load_set and not any(
                (c.get("distribution") or self.load["distribution"]) == "zipf"
                for c in self.combinations):
            raise MatrixError("zipf_s without a zipf distribution: no run would use it")

    def check_loop_flags(self):
        """Refuses load flags the loop of a combination would ignore: anubis-load takes
        --pipeline in the closed loop only and --max-inflight / --timeout-ms in the open loop
        only. An overload matrix's [load] pipeline shapes its closed-loop capacity run; a
        pipeline axis there would change no run."""
        if self.multiples and "pipeline" in self.axes:
            raise MatrixError("a pipeline axis would apply to no run of an overload matrix: its "
                              "open-loop runs have no pipeline, and its capacity runs take "
                              "[load] pipeline")
        for combo in self.combinations:
            rate = combo["rate"] if "rate" in combo else self.load.get("rate")
            if "rate_multiple" in combo:
                continue
            if rate is not None and "pipeline" in self.load_set:
                raise MatrixError("rate %s and pipeline %s conflict: --pipeline applies to the "
                                  "closed loop only, --rate makes the loop open" % (
                                      rate, combo.get("pipeline", self.load["pipeline"])))
            if rate is None:
                stray = [k for k in OPEN_LOOP_ONLY if k in self.load_set]
                if stray:
                    raise MatrixError("%s without rate: %s applies to the open loop only" % (
                        " and ".join(stray), " and ".join("--" + k.replace("_", "-")
                                                          for k in stray)))

    def unvaried_server_values(self):
        """Every anubis-server flag the runner records (the server columns and each [server]
        flag) as a run has it where no axis varies it: the matrix's [server] value, else the
        server's default from --help. meta.json records these; the combination whose server
        columns all equal them is the baseline of the summary's ratio."""
        values = dict(self.server_defaults)
        values.update(self.fixed_server)
        return values

    def default_value(self, key):
        kind, _ = self.axes[key]
        if kind == "target":
            return "anubis"
        if kind == "load":
            value = self.load.get(key)
            return None if value is None else number_text(value)
        return number_text(self.unvaried_server_values().get(key, ""))

    def without_unused(self, combo):
        """The combination with None for each value its run does not use: the ANUBIS server's
        axes in a Redis run (Redis has no server strategies or flags), zipf_s in a run that is
        not Zipf. Combinations alike once these are dropped are one configuration, which runs
        once per repetition rather than as rows ranked apart."""
        redis = combo.get("target") == "redis"
        zipf = combo.get("distribution", self.load["distribution"]) == "zipf"
        return {k: None if (redis and self.axes[k][0] in ("registry", "server"))
                or (k == "zipf_s" and not zipf) else v
                for k, v in combo.items()}

    def expand(self):
        """The combinations, each a dict axis -> value (plus "rate_multiple" with [overload])."""
        keys = list(self.axes)
        if self.mode == "product":
            combos = [dict(zip(keys, values))
                      for values in itertools.product(*(self.axes[k][1] for k in keys))]
        else:
            base = {k: self.default_value(k) for k in keys}
            combos = [base]
            for k in keys:
                for v in self.axes[k][1]:
                    if v != base[k]:
                        combos.append(dict(base, **{k: v}))
        unique, seen = [], set()
        for c in map(self.without_unused, combos):
            key = tuple(sorted((k, str(v)) for k, v in c.items()))
            if key not in seen:
                seen.add(key)
                unique.append(c)
        if self.multiples:
            unique = [dict(c, rate_multiple=m) for m in self.multiples for c in unique]
        return unique
