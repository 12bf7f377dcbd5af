"""The range of every number pyusdt takes, each defined once.

A number is checked where it enters: the API (Tracer, Aggregate, Latency,
Where, poll...) and the command line (which checks its options first, so the
message names the option typed).  Out of range, or not a number at all, is a
ConfigError naming the parameter, the bound broken and the value given; never
the TypeError pybind11 would raise when a value does not fit its C field, nor
an endless loop or wait on a value no clock reaches (nan, inf).  Where the
bound is the kernel's or the BPF ABI's, it comes from _native.
"""
from __future__ import annotations

import math
import operator
from numbers import Real
from typing import NamedTuple

from pyusdt import _native
from pyusdt.errors import ConfigError, ConfigTypeError

# The kernel's PID_MAX_LIMIT on 64-bit: no pid is larger (pid_max can only be lowered below it).
PID_MAX_LIMIT = 1 << 22
U64_MAX = (1 << 64) - 1
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
# Linear histogram buckets: each key's histogram is held densely (counts,
# bounds, labels), so this bounds what one `lhist` costs in Python.
MAX_LINEAR_BUCKETS = 100_000
# epoll_wait takes an int of milliseconds.
MAX_TIMEOUT_S = ((1 << 31) - 1) / 1000
# Anything longer is a mistake (~292 years); the kernel's u64 of nanoseconds holds it.
MAX_SECONDS = S64_MAX / 1e9


def as_int(value: object, name: str) -> int:
    """`value` as an int (int, bool, numpy integers: anything with __index__)."""
    try:
        return operator.index(value)  # type: ignore[arg-type]  # any object: TypeError is the check
    except TypeError:
        raise ConfigTypeError(f"{name} must be an integer (got {value!r})") from None


class IntLimit(NamedTuple):
    """An inclusive range of integers.  (A NamedTuple, not a dataclass: this
    module is imported before the CLI parses its arguments, and dataclasses
    costs 10 ms of start-up to import.)"""

    lo: int
    hi: int

    def check(self, value: object, name: str) -> int:
        v = as_int(value, name)
        if v < self.lo:
            raise ConfigError(f"{name} must be at least {self.lo} (got {v})")
        if v > self.hi:
            raise ConfigError(f"{name} must be at most {self.hi} (got {v})")
        return v


STR_LEN = IntLimit(1, _native.MAX_STR_LEN)
# The kernel takes a ring of at least one page, a power of two (rounded up).
RINGBUF_BYTES = IntLimit(4096, _native.MAX_RINGBUF_BYTES)
WAKEUP_BYTES = IntLimit(0, _native.MAX_RINGBUF_BYTES)
MAX_SITES = IntLimit(1, _native.MAX_SITES)
# Rows of an aggregation map, and pending latency starts (both hash maps).
MAP_ENTRIES = IntLimit(1, _native.MAX_MAP_ENTRIES)
DIVISOR = IntLimit(1, U64_MAX)
S64 = IntLimit(S64_MIN, S64_MAX)
MAX_EVENTS = IntLimit(1, 1 << 32)


def check_pid(value: object, name: str = "pid") -> int:
    """A process id to filter on: 1 .. PID_MAX_LIMIT."""
    return IntLimit(1, PID_MAX_LIMIT).check(value, name)


def check_arg_index(value: object, what: str) -> int:
    """An argument index, 0 .. MAX_ARGS-1 (sys/sdt.h's limit), worded as the
    probe-level check words it ("value argument 12 out of range: ...")."""
    i = as_int(value, what)
    if not 0 <= i < _native.MAX_ARGS:
        raise ConfigError(f"{what} {i} out of range: arguments are numbered 0 to {_native.MAX_ARGS - 1}")
    return i


def check_seconds(value: object, name: str, *, zero_ok: bool = False, most: float = MAX_SECONDS) -> float:
    """A time in seconds: a finite number, positive (or zero when `zero_ok`),
    at most `most`.  nan and inf are refused: no clock ever reaches them."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigTypeError(f"{name} must be a number of seconds (got {value!r})")
    v = float(value)
    if math.isnan(v) or v < 0 or (v == 0 and not zero_ok):
        raise ConfigError(f"{name} must be {'zero or ' if zero_ok else ''}positive and finite (got {value})")
    if v > most:
        raise ConfigError(f"{name} must be at most {most:g} seconds (got {value})")
    return v
