"""What the kernel computes for each hit: :class:`Aggregate` (count, sum,
min, max, avg, stats, hist, lhist; optionally keyed and filtered) and
:class:`Latency` (the time from a start probe to a done probe).  Nothing is
compiled: a spec becomes data in the BPF site map, read by the one
precompiled aggregating program."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

from pyusdt import _native, expr, limits
from pyusdt.errors import ConfigError, ConfigTypeError

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.discover.probes import Probe

KINDS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


_CMP = {"==": _native.Cmp.EQ, "!=": _native.Cmp.NE, "<": _native.Cmp.LT,
        "<=": _native.Cmp.LE, ">": _native.Cmp.GT, ">=": _native.Cmp.GE}


# Latency units: divisor applied to nanoseconds.
UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True)
class Arg:
    """An integer argument, by 0-based index (bpftrace's argN)."""

    index: int

    def __post_init__(self) -> None:
        limits.check_arg_index(self.index, "key argument")


@dataclass(frozen=True)
class StrArg:
    """A string argument (a char * read as a bounded string), by index."""

    index: int

    def __post_init__(self) -> None:
        limits.check_arg_index(self.index, "key argument")


# str: "pid", "tid", "comm" or "probe", or bpftrace expressions ("str(arg1, arg2), arg0")
KeySpec = Union[None, Arg, StrArg, str]
_KEY_NAMES = {"pid": _native.KeyKind.PID, "tid": _native.KeyKind.TID, "comm": _native.KeyKind.COMM,
              "probe": _native.KeyKind.PROBE}


def is_key_expression(key: KeySpec) -> bool:
    """A key given as bpftrace expressions, not one of the plain kinds."""
    return isinstance(key, str) and key not in _KEY_NAMES


def key_text(key: KeySpec) -> Optional[str]:
    """The key as expression text (the plain kinds in bpftrace's spelling)."""
    if key is None:
        return None
    if isinstance(key, Arg):
        return f"arg{key.index}"
    if isinstance(key, StrArg):
        return f"str(arg{key.index})"
    return key


def plain_key(text: str) -> KeySpec:
    """A key given as expression text, on the plain route when it is one
    (argN, str(argN), pid, tid, comm, probe): as fast as before expressions."""
    nodes = expr.parse_list(text)
    plain = expr.simple_form(nodes[0]) if len(nodes) == 1 else None
    if isinstance(plain, expr.PlainArg):
        return Arg(plain.index)
    if isinstance(plain, expr.PlainStr):
        return StrArg(plain.index)
    if isinstance(plain, expr.PlainBuiltin) and plain.name in _KEY_NAMES:
        return plain.name
    return text


def plain_value(text: str) -> Union[int, str]:
    """A value given as expression text: argN is that argument's index."""
    plain = expr.simple_form(expr.parse(text))
    return plain.index if isinstance(plain, expr.PlainArg) else text


@dataclass(frozen=True)
class Where:
    """A predicate evaluated in the kernel: argument `arg` OP `value`."""

    arg: int
    op: str
    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.op, str) or self.op not in _CMP:
            raise ConfigError(f"comparison must be one of {' '.join(_CMP)} (got {self.op!r})")
        # Signed or unsigned: the 64 bits the kernel compares.
        value = limits.as_int(self.value, "comparison value")
        if not limits.S64_MIN <= value <= limits.U64_MAX:
            raise ConfigError(f"comparison value {value} does not fit in 64 bits")
        limits.check_arg_index(self.arg, "filter argument")


def plain_where(text: str) -> Union[Where, str]:
    """A predicate given as expression text: `argN OP number` is a Where."""
    plain = expr.simple_form(expr.parse(text))
    return Where(plain.arg, plain.op, plain.value) if isinstance(plain, expr.PlainCompare) else text


def check_lhist(lhist: Any) -> tuple[int, int, int]:
    """(min, max, step) of a linear histogram: 64-bit signed numbers (the BPF
    side's), step >= 1, min + step <= max, at most MAX_LINEAR_BUCKETS buckets."""
    try:
        given_min, given_max, given_step = lhist
    except (TypeError, ValueError):
        raise ConfigTypeError(f"lhist must be (min, max, step) (got {lhist!r})") from None
    lmin = limits.S64.check(given_min, "lhist min")
    lmax = limits.S64.check(given_max, "lhist max")
    step = limits.as_int(given_step, "lhist step")
    if step <= 0:
        raise ConfigError(f"lhist step must be positive (got {step})")
    if lmin >= lmax:
        raise ConfigError(f"lhist min must be below max (got min {lmin}, max {lmax})")
    if step > lmax - lmin:
        raise ConfigError(f"lhist step {step} is larger than max - min ({lmax - lmin})")
    n = (lmax - lmin) // step
    if n > limits.MAX_LINEAR_BUCKETS:
        raise ConfigError(f"lhist has {n} buckets ((max - min) / step); at most {limits.MAX_LINEAR_BUCKETS} "
                          "are allowed: use a larger step")
    return lmin, lmax, step


@dataclass
class Aggregate:
    """What the kernel computes for each hit of the probes it is attached to.

    kind: count, sum, min, max, avg, stats (count, sum, min, max, avg), hist
        (log2, as bpftrace's hist()) or lhist (linear: needs lhist=(min, max, step)).
    value: the argument aggregated (not for count), by index, or a bpftrace
        expression ("arg2 * 1000", "*(int32 *)arg1").
    key: None, Arg(i), StrArg(i), "pid", "tid", "comm" or "probe", or
        bpftrace expressions, comma-separated for several keys
        ("str(arg1, arg2), arg0": the map's key is then a tuple).
    divisor: the value is divided by it (units), rounding toward zero.
    where: a Where predicate, or a bpftrace predicate
        ('str(arg0) == "GET" && arg2 >= 500'); pid: only this process.
    Expressions are evaluated in the kernel by the precompiled program
    (pyusdt.expr): nothing is compiled at run time.
    """

    kind: str = "count"
    value: Union[None, int, str] = None
    key: KeySpec = None
    divisor: int = 1
    lhist: Optional[Tuple[int, int, int]] = None
    where: Union[None, Where, str] = None
    pid: Optional[int] = None

    def __post_init__(self) -> None:
        self.validate(needs_value=True)

    def validate(self, needs_value: bool) -> None:
        """Every field in the range its C field and the kernel take (the
        Tracer checks again at attach: a dataclass can be changed after)."""
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ConfigError(f"aggregation must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if needs_value and self.kind != "count" and self.value is None:
            raise ConfigError(f"{self.kind} needs a value argument")
        if isinstance(self.value, str):
            expr.parse(self.value)  # the syntax now; the arguments when a probe is known
        elif self.value is not None:
            limits.check_arg_index(self.value, "value argument")
        if self.kind == "lhist":
            if self.lhist is None:
                raise ConfigError("lhist needs (min, max, step)")
            check_lhist(self.lhist)
        limits.DIVISOR.check(self.divisor, "divisor")
        if is_key_expression(self.key):
            assert isinstance(self.key, str)
            expr.parse_list(self.key)
        elif self.key is not None and not isinstance(self.key, (Arg, StrArg, str)):
            raise ConfigTypeError(f"key must be Arg(i), StrArg(i), one of {', '.join(_KEY_NAMES)} or "
                                  f"expressions (got {self.key!r})")
        if isinstance(self.where, str):
            expr.parse(self.where)
        elif self.where is not None and not isinstance(self.where, Where):
            raise ConfigTypeError(f"where must be a Where or a predicate (got {self.where!r})")
        if self.pid is not None:
            limits.check_pid(self.pid, "pid")

    @property
    def uses_expressions(self) -> bool:
        """Whether a key, the value or the predicate is an expression: then
        the site's programs compute all three (pyusdt.trace.expressions)."""
        return is_key_expression(self.key) or isinstance(self.value, str) or isinstance(self.where, str)

    def expression_texts(self) -> tuple[Optional[str], Optional[str], Optional[str]]:
        """(predicate, keys, value) as expression text, plain forms spelled as bpftrace does."""
        where = self.where
        if isinstance(where, Where):
            where = f"arg{where.arg} {where.op} {where.value}"
        value = f"arg{self.value}" if isinstance(self.value, int) else self.value
        return where, key_text(self.key), value

    # -- the native spec ---------------------------------------------------

    def native_spec(self, role: int, agg_id: int) -> "_native.AggSpec":
        """The site data the BPF program reads (bpf/pyusdt_abi.h); `agg_id` is
        the number the Tracer gave this aggregation."""
        s = _native.AggSpec()
        s.agg_id = agg_id
        s.role = role
        s.divisor = self.divisor
        if isinstance(self.value, int) and role == _native.Role.AGG:
            s.value_arg = self.value
        if self.kind in ("hist",):
            s.hist_kind = _native.HistKind.LOG2
        elif self.kind == "lhist":
            assert self.lhist is not None  # checked with the kind
            lmin, lmax, step = self.lhist
            s.hist_kind = _native.HistKind.LINEAR
            s.lmin, s.lmax, s.step = lmin, lmax, step
            from pyusdt.aggregate.histogram import linear_nbuckets  # numpy's module: only for lhist

            s.lbuckets = linear_nbuckets(lmin, lmax, step)
        s.keep_stats = 0 if self.kind in ("hist", "lhist") else 1
        if self.uses_expressions:
            # The site's programs compute the predicate, value and key.
            s.key_kind = _native.KeyKind.TUPLE
            s.value_arg = _native.NO_ARG
            if self.pid:
                s.filter_pid = self.pid
            return s
        if isinstance(self.key, Arg):
            s.key_kind, s.key_arg = _native.KeyKind.ARG, self.key.index
        elif isinstance(self.key, StrArg):
            s.key_kind, s.key_arg = _native.KeyKind.STR, self.key.index
        elif isinstance(self.key, str):
            s.key_kind = _KEY_NAMES[self.key]
        if isinstance(self.where, Where):
            # Stored as the s64 the kernel compares; an unsigned argument is
            # compared with the same 64 bits read as unsigned.
            v = self.where.value
            s.filter_op, s.filter_arg = _CMP[self.where.op], self.where.arg
            s.filter_value = v - (1 << 64) if v >= 1 << 63 else v
        if self.pid:
            s.filter_pid = self.pid
        return s

    def arg_problems(self, probe: Probe, role: int, key_here: bool = True) -> list[str]:
        """Why `probe` cannot feed this aggregation (argument indices, widths).
        Expressions are checked when compiled for the probe instead."""
        if self.uses_expressions:
            return []
        needed: list[tuple[str, int, bool]] = []
        if role == _native.Role.AGG and isinstance(self.value, int):
            needed.append(("value", self.value, False))
        if key_here and isinstance(self.key, (Arg, StrArg)):
            needed.append(("key", self.key.index, isinstance(self.key, StrArg)))
        if isinstance(self.where, Where):
            needed.append(("filter", self.where.arg, False))
        problems = []
        for what, i, as_string in needed:
            if not 0 <= i < probe.nargs:
                problems.append(f"{what} argument {i} out of range: {probe.fullname} has "
                                f"{probe.nargs} argument(s)")
            elif as_string and probe.args[i].size != 8:
                problems.append(f"string key argument {i} of {probe.fullname} is a "
                                f"{probe.args[i].size}-byte integer, not a string pointer")
        return problems


@dataclass
class Latency:
    """Time from a start probe to a done probe, aggregated like an Aggregate.

    start, done: patterns on provider:name.
    pair_by: None pairs by thread; an int pairs by that argument of both
        probes (a request id); a (start_index, done_index) pair by those.
    key: as Aggregate's; key_from: "start" or "done", the probe whose
        arguments the key reads (pid/tid/comm/probe: the done probe's).
    unit: ns, us, ms or s.
    max_pending: size of the LRU map of outstanding starts.  The kernel's LRU
        frees entries in per-CPU batches, so it may evict a little before the
        map is full; such starts are counted exactly all the same (dropped).
    where: evaluated at the start probe: it chooses which requests are timed
        (the done of a request it rejected counts as unmatched).
    """

    start: str
    done: str
    kind: str = "hist"
    pair_by: Union[None, int, Tuple[int, int]] = None
    key: KeySpec = None
    key_from: str = "done"
    unit: str = "ns"
    lhist: Optional[Tuple[int, int, int]] = None
    where: Union[None, Where, str] = None
    pid: Optional[int] = None
    max_pending: int = 10240

    def __post_init__(self) -> None:
        if not isinstance(self.unit, str) or self.unit not in UNITS:
            raise ConfigError(f"unit must be one of {', '.join(UNITS)} (got {self.unit!r})")
        if self.key_from not in ("start", "done"):
            raise ConfigError("key_from must be 'start' or 'done'")
        limits.MAP_ENTRIES.check(self.max_pending, "max_pending")
        if not isinstance(self.start, str) or not isinstance(self.done, str):
            raise ConfigTypeError(f"start and done must be patterns (str) (got {self.start!r}, {self.done!r})")
        pairs = () if self.pair_by is None else (
            (self.pair_by,) if isinstance(self.pair_by, int) else tuple(self.pair_by)
            if isinstance(self.pair_by, (tuple, list)) else (None, None, None))
        if len(pairs) not in (0, 1, 2) or any(not isinstance(i, int) for i in pairs) or (
                not isinstance(self.pair_by, int) and self.pair_by is not None and len(pairs) != 2):
            raise ConfigError(f"pair_by must be an argument index or (start index, done index) "
                              f"(got {self.pair_by!r})")
        for i in pairs:
            limits.check_arg_index(i, "pairing argument")
        self.aggregate().validate(needs_value=False)
        if is_key_expression(self.key) and self.key_from == "start":
            raise ConfigError("a key of expressions is computed at the done probe: use key_from='done'")

    def aggregate(self) -> Aggregate:
        """The aggregation of the time differences."""
        agg = Aggregate.__new__(Aggregate)
        agg.kind, agg.value, agg.key, agg.divisor = self.kind, None, self.key, UNITS[self.unit]
        agg.lhist, agg.where, agg.pid = self.lhist, self.where, self.pid
        return agg

    def _pair_arg(self, role: int) -> Optional[int]:
        if self.pair_by is None:
            return None
        if isinstance(self.pair_by, int):
            return self.pair_by
        return self.pair_by[0 if role == _native.Role.START else 1]

    def native_spec(self, role: int, agg_id: int) -> "_native.AggSpec":
        agg = self.aggregate()
        key_here = (self.key_from == "start") == (role == _native.Role.START)
        if isinstance(self.key, str):  # pid/tid/comm/probe: taken at the done probe
            key_here = role == _native.Role.DONE
        if not key_here:
            agg.key = None
        s = agg.native_spec(role, agg_id)
        pair = self._pair_arg(role)
        if pair is not None:
            s.pair_arg = pair
        if self.aggregate().uses_expressions:  # `agg` may have left the key out: the whole spec says
            s.key_kind = _native.KeyKind.TUPLE if role == _native.Role.DONE else _native.KeyKind.NONE
            s.value_arg = _native.NO_ARG
            s.filter_op = _native.Cmp.NONE
            return s
        if role == _native.Role.DONE and not key_here and self.key is not None:
            s.key_from_start = 1
            # The done site stores rows under the key kind the start computed.
            start = self.aggregate().native_spec(_native.Role.START, agg_id)
            s.key_kind = start.key_kind
        if role == _native.Role.DONE:
            # The predicate chooses which requests are timed: it runs at the start.
            s.filter_op = _native.Cmp.NONE
        return s

    def arg_problems(self, probe: Probe, role: int) -> list[str]:
        agg = self.aggregate()
        key_here = (self.key_from == "start") == (role == _native.Role.START)
        if role == _native.Role.DONE:
            agg.where = None
        problems = agg.arg_problems(probe, _native.Role.DONE, key_here=key_here)
        pair = self._pair_arg(role)
        if pair is not None and not 0 <= pair < probe.nargs:
            problems.append(f"pairing argument {pair} out of range: {probe.fullname} has "
                            f"{probe.nargs} argument(s)")
        return problems
