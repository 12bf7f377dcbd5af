"""Reading a session's counters into Python objects: per probe, what
happened to its hits (ProbeStats).  Aggregations are read by
pyusdt.trace.aggregations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyusdt import _native
from pyusdt.trace.events import TracedProbe


@dataclass
class ProbeStats:
    """What happened to one probe's hits, from the kernel's counters and ours."""

    probe: str
    path: str
    # The kernel's counters are filled in by their names in bpf/pyusdt_abi.h
    # (PYUSDT_PROBE_STATS): a counter added there must be added here.
    events: int  # records delivered to Python
    hits: int  # times the probe fired in a traced process
    lost_ringbuf: int  # records dropped because the ring buffer was full
    str_fail: int  # string arguments that could not be read (record kept, flagged)
    arg_fail: int  # memory arguments that could not be read (record kept, flagged)
    filtered: int = 0  # hits a --where predicate rejected (no record, not a loss)
    busy: int = 0  # hits not evaluated: the CPU's expression scratch was in use (lost)


def read_stats(session: _native.Session, probes: Sequence[TracedProbe], events: Sequence[int]) -> list[ProbeStats]:
    """One ProbeStats per probe: the kernel's per-CPU counters summed (named
    as bpf/pyusdt_abi.h names them), and `events`, the records delivered per
    probe id.  The ids of one probe's argument layouts are added up into one
    line."""
    raw = session.stats_rows()
    names = ("events", *_native.PROBE_STATS_NAMES)
    totals: dict[tuple[str, str], list[int]] = {}  # (path, provider:name) -> counts, as `names`
    nothing = [0] * len(_native.PROBE_STATS_NAMES)
    for tp in probes:
        kernel = raw[tp.probe_id] if tp.probe_id < len(raw) else nothing
        ev = int(events[tp.probe_id]) if tp.probe_id < len(events) else 0
        counts = [ev, *kernel]
        key = (tp.probe.path, tp.fullname)
        totals[key] = [a + b for a, b in zip(totals.get(key, [0] * len(counts)), counts)]
    return [ProbeStats(name, path, **dict(zip(names, counts))) for (path, name), counts in totals.items()]
