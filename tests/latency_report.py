"""What tests/programs/agg_latency.c reports, and the histograms the kernel
can have made of it.

The workload writes the clock just before and just after every probe it
fires.  The kernel's timestamp of a hit lies between the two, so a start
paired with a done took between done.before - start.after and done.after -
start.before.  Pairing the reported probes as the kernel pairs them gives
every expected bucket, whatever the sleeps took on a loaded machine: one
histogram, or (when a bucket boundary falls inside a pair's microseconds of
uncertainty) the few it can be.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from pyusdt.aggregate.histogram import Histogram, linear_bucket, log2_bucket


@dataclass(frozen=True)
class Fired:
    """One probe the workload fired, with the clock just before and after."""

    kind: str  # "START" or "DONE"
    id: int
    cls: int
    tid: int
    before: int
    after: int


Pair = tuple[Fired, Fired]


def read_report(path: Path) -> tuple[int, list[Fired]]:
    """(pid, every probe fired, in the order they fired)."""
    pid, fired = 0, []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f[0] == "PID":
            pid = int(f[1])
        else:
            fired.append(Fired(f[0], *(int(x) for x in f[1:])))
    return pid, sorted(fired, key=lambda e: e.before)


def pairs_of(fired: list[Fired], key: Callable[[Fired], int] = lambda e: e.tid,
             where: Callable[[Fired], bool] = lambda e: True) -> list[Pair]:
    """(start, done) as the kernel pairs them: by `key` (the thread, or a
    request id), a start replacing an earlier start with the same key, a
    done taking its key's start; a start `where` rejects is not recorded."""
    open_starts: dict[int, Fired] = {}
    out = []
    for e in fired:
        if e.kind == "START":
            if where(e):
                open_starts[key(e)] = e
        elif key(e) in open_starts:
            out.append((open_starts.pop(key(e)), e))
    return out


def bounds(pairs: list[Pair], unit: int) -> list[tuple[int, int]]:
    """The range of what the kernel can have measured for each pair, in `unit`."""
    return [((d.before - s.after) // unit, (d.after - s.before) // unit) for s, d in pairs]


def possible_hists(pairs: list[Pair], unit: int, kind: str = "log2", lmin: Optional[int] = None,
                   lmax: Optional[int] = None, step: Optional[int] = None) -> list[Histogram]:
    """Every histogram the kernel can have made of these pairs."""
    def bucket(v: int) -> int:
        return log2_bucket(v) if kind == "log2" else linear_bucket(v, lmin, lmax, step)  # type: ignore[arg-type]

    choices = [range(bucket(lo), bucket(hi) + 1) for lo, hi in bounds(pairs, unit)]
    return [Histogram(Counter(pick), kind, lmin, lmax, step) for pick in itertools.product(*choices)]


def assert_hist(h: Histogram, pairs: list[Pair], unit: int, kind: str = "log2", lmin: Optional[int] = None,
                lmax: Optional[int] = None, step: Optional[int] = None) -> None:
    possible = possible_hists(pairs, unit, kind, lmin, lmax, step)
    assert h in possible, (h.counts.nonzero(), [p.counts.nonzero() for p in possible], bounds(pairs, unit))
