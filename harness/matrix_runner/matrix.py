"""A matrix file parsed and checked against the binaries: axes classified (target, strategy,
server flag, load parameter), the load shape resolved, and the combinations expanded."""

import itertools
import math
import tomllib

from .binaries import normalise, number_text
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


def check_repeat(value, where):
    """Runs per combination: an integer >= 1 (0 would run nothing and still exit 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MatrixError("%s must be an integer >= 1, not %r" % (where, value))
    return value


def check_duration(value, where):
    """Seconds of a run: a finite number > 0 (anubis-load refuses anything else only after the
    server has started, which would fail every run of the matrix)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise MatrixError("%s must be a number of seconds > 0, not %r" % (where, value))
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
        self.description = spec.get("description", "")
        # The command-line overrides, named in the printed report beside the description that
        # they make out of date.
        self.overridden = " ".join(
            "--%s %s" % (name.replace("_", "-"), value)
            for name in ("repeat", "duration", "server_cpus", "client_cpus")
            if (value := getattr(overrides, name, None)) is not None)
        self.mode = spec.get("mode", "product")
        if self.mode not in ("product", "one_at_a_time"):
            raise MatrixError('mode must be "product" or "one_at_a_time"')
        if overrides.repeat is not None:
            self.repeat = check_repeat(overrides.repeat, "--repeat")
        else:
            self.repeat = check_repeat(spec.get("repeat", 1), "repeat")
        self.server_cpus = parse_cpus(overrides.server_cpus if overrides.server_cpus is not None
                                      else spec.get("server_cpus"))
        self.client_cpus = parse_cpus(overrides.client_cpus if overrides.client_cpus is not None
                                      else spec.get("client_cpus"))

        self.registry_axes = list(strategies)
        self.server_defaults = {}
        for key in self.registry_axes:
            if key not in server_defaults:
                raise MatrixError("anubis-server --help gives no default for --%s" % key)
            self.server_defaults[key] = server_defaults[key]
        for key in FIXED_SERVER_COLUMNS:
            self.server_defaults[key] = server_defaults.get(key, "")

        self.fixed_server = {}
        for key, value in spec.get("server", {}).items():
            key = normalise(key)
            if key not in server_flags or key in ("port", "help", "list_strategies"):
                raise MatrixError("[server] %s is not an anubis-server flag" % key)
            self.fixed_server[key] = number_text(value)

        self.load = dict(LOAD_DEFAULTS)
        for key, value in spec.get("load", {}).items():
            key = normalise(key)
            if key not in LOAD_DEFAULTS:
                raise MatrixError("[load] %s is not a load parameter (%s)" % (
                    key, ", ".join(LOAD_DEFAULTS)))
            self.load[key] = value
        self.load_set = {normalise(k) for k in spec.get("load", {})}
        if overrides.duration is not None:
            self.load["duration"] = check_duration(overrides.duration, "--duration")
            self.load_set.add("duration")
        else:
            check_duration(self.load["duration"], "[load] duration")
        spec_load = {normalise(k) for k in spec.get("load", {})}
        spec_axes = {normalise(k) for k in spec.get("axes", {})}
        if "events" in spec_load | spec_axes:
            if overrides.duration is not None:
                raise MatrixError("--duration cannot override a matrix that sets events: a run "
                                  "is either --events or --duration long")
            if "duration" in spec_load | spec_axes:
                raise MatrixError("events and duration conflict: a run is either --events or "
                                  "--duration long")

        # axis name -> (kind, values); kinds: target, registry, server, load
        self.axes = {}
        for key, values in spec.get("axes", {}).items():
            key = normalise(key)
            if key == "target":
                kind = "target"
                values = ["anubis", "redis"] if values == "all" else values
                for v in values:
                    if v not in ("anubis", "redis"):
                        raise MatrixError("target must be anubis or redis, not %r" % v)
            elif key in strategies:
                kind = "registry"
                names = [row["name"] for row in strategies[key]]
                values = names if values == "all" else values
                for v in values:
                    if v not in names:
                        raise MatrixError("--%s %s is not in the registry (%s)" % (
                            key, v, ", ".join(names)))
            elif key in LOAD_DEFAULTS:
                kind = "load"
                self.load_set.add(key)
                if key == "duration":
                    if overrides.duration is not None:
                        raise MatrixError("--duration cannot override the duration axis")
                    for v in values if isinstance(values, list) else [values]:
                        check_duration(v, "duration axis value")
            elif key in server_flags:
                kind = "server"
                self.server_defaults.setdefault(key, server_defaults.get(key, ""))
            else:
                raise MatrixError("axis %s is neither a strategy axis, a server flag, a load "
                                  "parameter nor target" % key)
            if isinstance(values, str):
                values = [values]
            if not values:
                raise MatrixError("axis %s has no values" % key)
            self.axes[key] = (kind, [number_text(v) for v in values])

        self.server_axis_columns = self.registry_axes + list(FIXED_SERVER_COLUMNS) + [
            k for k, (kind, _) in self.axes.items()
            if kind == "server" and k not in FIXED_SERVER_COLUMNS]

        overload = spec.get("overload")
        self.multiples = None
        if overload is not None:
            unknown = set(overload) - {"multiples", "capacity_duration"}
            if unknown:
                raise MatrixError("[overload] takes multiples and capacity_duration, not %s" % (
                    ", ".join(sorted(unknown))))
            self.multiples = [float(m) for m in overload.get("multiples", [])]
            if not self.multiples or min(self.multiples) <= 0:
                raise MatrixError("[overload] multiples must be positive numbers")
            if overrides.duration is not None:
                self.capacity_duration = float(overrides.duration)
            else:
                self.capacity_duration = float(check_duration(
                    overload.get("capacity_duration", 3), "[overload] capacity_duration"))
            if "rate" in self.load_set:
                raise MatrixError("[overload] sets the rate; neither [load] nor an axis may")

        self.combinations = self.expand()
        self.check_loop_flags()
        if "zipf_s" in self.load_set and not any(
                (c.get("distribution") or self.load["distribution"]) == "zipf"
                for c in self.combinations):
            raise MatrixError("zipf_s without a zipf distribution: no run would use it")

    def check_loop_flags(self):
        """Refuses load flags the loop of a combination would ignore: anubis-load takes
        --pipeline in the closed loop only and --max-inflight / --timeout-ms in the open loop
        only. An overload matrix's pipeline shapes its closed-loop capacity run."""
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

    def default_value(self, key):
        kind, _ = self.axes[key]
        if kind == "target":
            return "anubis"
        if kind == "load":
            value = self.load.get(key)
            return None if value is None else number_text(value)
        return number_text(self.fixed_server.get(key, self.server_defaults.get(key, "")))

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
        # A Redis run has no server strategies: axes of the ANUBIS server do not apply to it.
        unique, seen = [], set()
        for c in combos:
            if c.get("target", "anubis") == "redis":
                c = {k: (v if self.axes[k][0] in ("target", "load") else None)
                     for k, v in c.items()}
            key = tuple(sorted((k, str(v)) for k, v in c.items()))
            if key not in seen:
                seen.add(key)
                unique.append(c)
        if self.multiples:
            unique = [dict(c, rate_multiple=m) for m in self.multiples for c in unique]
        return unique
