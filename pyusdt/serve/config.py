"""What `pyusdt serve` exports: :class:`ServeConfig`, its :class:`MetricSpec`
list and their :class:`Target` s, as frozen dataclasses.

Build them in code, or load a JSON file with :func:`pyusdt.serve.load_config`
(pyusdt.serve.config_file).  Everything is checked when an object is made,
so a bad config never reaches the kernel: a :class:`ServeConfigError` (a
ConfigError) names the file, the metric and the field at fault, in one line.

    ServeConfig(metrics=(
        MetricSpec("requests", "count", targets=(Target("path", "/usr/bin/app"),),
                   probe="app:request", by="str(arg0)", labels=("method",)),
        MetricSpec("request_duration", "latency", targets=(Target("pid", 1234),),
                   start="app:start", done="app:done", pair_by=0),
    ))

Exported names follow Prometheus's conventions (metric_names.py): the
namespace, the name, the unit (latency is in seconds, values the user says are
bytes end in _bytes), and _total for counters (count and sum).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

from pyusdt import limits
from pyusdt.aggregate.specs import UNITS as LATENCY_RESOLUTIONS
from pyusdt.aggregate.specs import check_lhist
from pyusdt.errors import ConfigError, PyusdtError
from pyusdt.expr import parse, parse_list
from pyusdt.serve.defaults import (
    DEFAULT_MAX_SERIES,
    DEFAULT_NAMESPACE,
    MAX_RETRY_INTERVAL_S,
    MAX_SERIES_LIMIT,
    RETRY_INTERVAL_S,
)
from pyusdt.serve.metric_names import (
    HISTOGRAM_SUFFIXES,
    LABEL_NAME,
    METRIC_NAME,
    SELF_METRIC_NAMES,
    exported_name,
    label_names_for,
    sample_names,
)

METRIC_KINDS = ("count", "sum", "hist", "lhist", "latency")
TARGET_KINDS = ("path", "pid", "container", "cgroup", "object")
# What a value can be said to be measured in (it becomes the name's suffix).
VALUE_UNITS = ("bytes",)
COUNTER_KINDS = ("count", "sum")


class ServeConfigError(ConfigError):
    """A serve config that cannot be used: one line naming the file (when it
    came from one), the metric and the field at fault."""

    def __init__(self, reason: str, *, source: Optional[str] = None, metric: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        self.reason, self.source, self.metric, self.field = reason, source, metric, field
        where = [source] if source else []
        if metric is not None:
            where.append(f"metric {metric!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(": ".join([*where, reason]))

    def in_source(self, source: str) -> ServeConfigError:
        """The same error, naming the file it came from."""
        return ServeConfigError(self.reason, source=source, metric=self.metric, field=self.field)


@dataclass(frozen=True)
class Target:
    """Where a metric's probes are: kind "path" (every process running the
    file, those started later included), "pid" (one process), "container"
    (an id or name), "cgroup" (a cgroup v2 path; both with the processes
    that join later), or "object" (a file name or build-id: that object in
    every process on the host, in every container, now and later)."""

    kind: str
    value: Union[str, int]

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ServeConfigError(f"a target is one of {', '.join(TARGET_KINDS)} (got {self.kind!r})",
                                   field="targets")
        if self.kind == "pid":
            if isinstance(self.value, bool) or not isinstance(self.value, int):
                raise ServeConfigError(f"a pid is an integer (got {self.value!r})", field="targets")
            try:
                limits.check_pid(self.value)
            except ConfigError as e:
                raise ServeConfigError(str(e), field="targets") from None
        elif not isinstance(self.value, str) or not self.value or "\0" in self.value:
            raise ServeConfigError(f"a {self.kind} target is a non-empty string (got {self.value!r})",
                                   field="targets")

    @property
    def label(self) -> str:
        """How the target is named in pyusdt_target_attached{target=...}."""
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: an in-kernel aggregation of some probes in some targets.

    name: the metric's name ([a-zA-Z_:][a-zA-Z0-9_:]*), exported as
        NAMESPACE_name[_unit][_total].
    kind: count, sum (counters), hist (log2), lhist (linear) or latency
        (histograms; latency in seconds).
    targets: where the probes are (at least one).
    probe: the probes' pattern (provider:name, globs allowed); not for latency.
    value: what sum, hist and lhist add up: a bpftrace expression ("arg2",
        "arg2 * 8", "*(int32 *)arg1").
    by: the keys, bpftrace expressions separated by commas ("str(arg0), arg1",
        "pid", "comm"); each becomes a label.
    labels: the label name of each key of `by`; default: made from the
        expression's text ("str(arg0)" -> "str_arg0").
    where: a bpftrace predicate: only the hits where it holds are counted
        (for latency: evaluated at the start probe).
    help: the HELP text; default: says what is aggregated.
    unit: "bytes" when the value is a number of bytes (the name ends in _bytes).
    lhist: (min, max, step) of a linear histogram (lhist, or latency in
        `resolution` units).
    start, done, pair_by: latency: the start and done patterns, and the
        argument holding a request id (an index, or (start index, done
        index)); None pairs each start with the next done of the same thread.
    resolution: latency: the unit the kernel measures in (ns, us, ms, s);
        exported in seconds all the same (exact for ns).
    max_series: label sets exported at most; the keys beyond are summed into
        one series labelled "__overflow__" and counted in
        pyusdt_series_dropped_total.
    """

    name: str
    kind: str
    targets: Tuple[Target, ...]
    probe: Optional[str] = None
    value: Optional[str] = None
    by: Optional[str] = None
    labels: Tuple[str, ...] = ()
    where: Optional[str] = None
    help: Optional[str] = None
    unit: Optional[str] = None
    lhist: Optional[Tuple[int, int, int]] = None
    start: Optional[str] = None
    done: Optional[str] = None
    pair_by: Union[None, int, Tuple[int, int]] = None
    resolution: str = "ns"
    max_series: int = DEFAULT_MAX_SERIES

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not METRIC_NAME.fullmatch(self.name):
            raise ServeConfigError(f"a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]* (got {self.name!r})",
                                   field="name")
        try:
            self._check()
        except ServeConfigError as e:
            raise ServeConfigError(e.reason, metric=self.name, field=e.field) from None

    def _check(self) -> None:
        def fail(what: str, reason: str) -> ServeConfigError:
            return ServeConfigError(reason, field=what)


        if self.kind not in METRIC_KINDS:
            raise fail("kind", f"one of {', '.join(METRIC_KINDS)} (got {self.kind!r})")
        if not isinstance(self.targets, tuple) or not self.targets:
            raise fail("targets", "at least one target is needed (path, pid, container or cgroup)")
        for t in self.targets:
            if not isinstance(t, Target):
                raise fail("targets", f"each target is a Target (got {t!r})")
        if len(set(self.targets)) != len(self.targets):
            raise fail("targets", "a target is listed twice")
        latency = self.kind == "latency"
        for what, needed in (("probe", not latency), ("start", latency), ("done", latency)):
            given = getattr(self, what)
            if needed and (not isinstance(given, str) or not given):
                raise fail(what, f"{self.kind} needs a probe pattern here")
            if not needed and given is not None:
                raise fail(what, f"not for {self.kind}" + (" (it takes start and done)" if latency else ""))
        if self.kind in ("sum", "hist", "lhist"):
            if self.value is None:
                raise fail("value", f"{self.kind} needs a value (an expression such as arg2)")
        elif self.value is not None:
            raise fail("value", f"{self.kind} takes no value")
        if (self.lhist is not None) != (self.kind == "lhist") and self.kind != "latency":
            raise fail("lhist", "lhist needs (min, max, step)" if self.kind == "lhist"
                       else f"{self.kind} takes no lhist")
        if self.lhist is not None:
            try:
                check_lhist(self.lhist)
            except ConfigError as e:
                raise fail("lhist", str(e)) from None
        if latency:
            if self.resolution not in LATENCY_RESOLUTIONS:
                raise fail("resolution", f"one of {', '.join(LATENCY_RESOLUTIONS)} (got {self.resolution!r})")
            self._check_pair_by()
        else:
            if self.pair_by is not None:
                raise fail("pair_by", "only latency pairs probes")
            if self.resolution != "ns":
                raise fail("resolution", "only latency has a resolution (use unit for bytes)")
        if self.unit is not None and (self.unit not in VALUE_UNITS or self.kind in ("count", "latency")):
            raise fail("unit", f"{'latency is in seconds' if latency else 'count has no unit'}"
                       if self.kind in ("count", "latency") else
                       f"one of {', '.join(VALUE_UNITS)} (got {self.unit!r})")
        for what in ("value", "where", "by"):
            text = getattr(self, what)
            if text is None:
                continue
            if not isinstance(text, str):
                raise fail(what, f"a bpftrace expression (text) (got {text!r})")
            try:
                parse_list(text) if what == "by" else parse(text)
            except PyusdtError as e:
                raise fail(what, str(e)) from None
        self._check_labels()
        if self.help is not None and not isinstance(self.help, str):
            raise fail("help", f"text (got {self.help!r})")
        if isinstance(self.max_series, bool) or not isinstance(self.max_series, int) or \
                not 1 <= self.max_series <= MAX_SERIES_LIMIT:
            raise fail("max_series", f"an integer from 1 to {MAX_SERIES_LIMIT} (got {self.max_series!r})")
        # The namespace is a prefix: the name and unit make the suffix.
        if self.kind not in COUNTER_KINDS and self.exported_base("").endswith(HISTOGRAM_SUFFIXES):
            raise fail("name", f"a histogram's name does not end in {', '.join(HISTOGRAM_SUFFIXES)}")

    def _check_pair_by(self) -> None:
        pair = self.pair_by
        if pair is None:
            return
        indexes = (pair,) if isinstance(pair, int) and not isinstance(pair, bool) else pair
        if not isinstance(indexes, tuple) or len(indexes) not in (1, 2) or \
                not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
            raise ServeConfigError(f"an argument index or (start index, done index) (got {pair!r})",
                                   field="pair_by")
        for i in indexes:
            try:
                limits.check_arg_index(i, "pairing argument")
            except ConfigError as e:
                raise ServeConfigError(str(e), field="pair_by") from None

    def _check_labels(self) -> None:
        if not isinstance(self.labels, tuple) or not all(isinstance(x, str) for x in self.labels):
            raise ServeConfigError(f"a list of label names (got {self.labels!r})", field="labels")
        keys = parse_list(self.by) if self.by is not None else []
        if self.labels and len(self.labels) != len(keys):
            raise ServeConfigError(f"one label name per key of 'by' ({len(keys)}), got {len(self.labels)}",
                                   field="labels")
        for name in self.labels:
            if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ServeConfigError(f"a label name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start "
                                       f"with __ (got {name!r})", field="labels")
            if name == "le" and self.kind not in COUNTER_KINDS:
                raise ServeConfigError("'le' is the bucket label of a histogram", field="labels")
        if len(set(self.labels)) != len(self.labels):
            raise ServeConfigError("a label name is used twice", field="labels")

    # -- derived ---------------------------------------------------------------

    @property
    def is_counter(self) -> bool:
        return self.kind in COUNTER_KINDS

    @property
    def label_names(self) -> Tuple[str, ...]:
        """One label name per key of `by` (given, or made from its text)."""
        if self.labels:
            return self.labels
        if self.by is None:
            return ()
        return label_names_for([node.text for node in parse_list(self.by)])

    def exported_base(self, namespace: str) -> str:
        """The family's name: a counter's samples add _total to it."""
        unit = "seconds" if self.kind == "latency" else self.unit
        return exported_name(namespace, self.name, unit, counter=self.is_counter)

    @property
    def help_text(self) -> str:
        if self.help:
            return self.help
        what = (f"time from {self.start} to {self.done}" if self.kind == "latency"
                else f"{self.kind} of {self.value} at {self.probe}" if self.value else f"hits of {self.probe}")
        kind = {"count": "count", "sum": "sum", "hist": "log2 histogram", "lhist": "linear histogram",
                "latency": "histogram"}[self.kind]
        return f"{kind}: {what}" + (f" by {self.by}" if self.by else "") + \
            (f" where {self.where}" if self.where else "")


@dataclass(frozen=True)
class ServeConfig:
    """Everything `pyusdt serve` exports.

    metrics: the metrics, each with its own tracer (unchanged ones keep
        running, and counting, across a reload).
    namespace: the prefix of every exported name ("" for none).
    listen: HOST:PORT to serve on (the command line's --listen wins).
    retry_interval: seconds between attempts to attach a target that failed
        (a file not there yet, a process not started yet).
    """

    metrics: Tuple[MetricSpec, ...]
    namespace: str = DEFAULT_NAMESPACE
    listen: Optional[str] = None
    retry_interval: float = RETRY_INTERVAL_S
    # Where it was read from, for messages; not part of what it says.
    source: Optional[str] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            self._check()
        except ServeConfigError as e:
            raise (e.in_source(self.source) if self.source else e) from None

    def _check(self) -> None:
        if not isinstance(self.namespace, str) or (self.namespace and not METRIC_NAME.fullmatch(self.namespace)):
            raise ServeConfigError(f"a namespace matches [a-zA-Z_:][a-zA-Z0-9_:]* or is empty "
                                   f"(got {self.namespace!r})", field="namespace")
        if self.listen is not None:
            try:
                parse_listen(self.listen)
            except ConfigError as e:
                raise ServeConfigError(str(e), field="listen") from None
        try:
            limits.check_seconds(self.retry_interval, "retry_interval", most=MAX_RETRY_INTERVAL_S)
        except ConfigError as e:
            raise ServeConfigError(str(e), field="retry_interval") from None
        if not isinstance(self.metrics, tuple) or not all(isinstance(m, MetricSpec) for m in self.metrics):
            raise ServeConfigError("metrics are a list of MetricSpec", field="metrics")
        if not self.metrics:
            raise ServeConfigError("no metrics: there is nothing to export", field="metrics")
        taken: dict[str, str] = {name: "a self-metric of pyusdt serve" for name in SELF_METRIC_NAMES}
        seen: set[str] = set()
        for m in self.metrics:
            if m.name in seen:
                raise ServeConfigError("two metrics have this name", metric=m.name, field="name")
            seen.add(m.name)
            base = m.exported_base(self.namespace)
            for sample in sample_names(base, m.is_counter):
                if sample in taken:
                    raise ServeConfigError(f"exported as {sample}, which is {taken[sample]}",
                                           metric=m.name, field="name")
            for sample in sample_names(base, m.is_counter):
                taken[sample] = f"metric {m.name!r}'s"

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


_LISTEN = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$")


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT ([::1]:PORT for IPv6; an empty host listens everywhere) as (host, port)."""
    m = _LISTEN.match(text) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"listen address must be HOST:PORT (got {text!r})")
    port = int(m.group("port"))
    if port > 65535:
        raise ConfigError(f"listen port must be at most 65535 (got {port})")
    host = m.group("v6") if m.group("v6") is not None else m.group("host")
    return host or "0.0.0.0", port
