"""Sizing a tracer's session at start(): its ring, string slots, probe ids
and aggregation rows, for what was asked before start() and with room for
the probes of objects loaded later."""
from __future__ import annotations

import os

from pyusdt import _native
from pyusdt._lazy import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - type names only
    from typing import Optional, Sequence, Union

    from pyusdt.aggregate.specs import Aggregate, Latency
    from pyusdt.trace.requests import AttachRequest

# A tracer's defaults (Tracer's keyword arguments), here so that a CLI trace
# can size its session before the tracer is imported (session_prefetch).
# A trickle of events is seen within this long (one reader wake-up at most per interval).
DEFAULT_WAKEUP_INTERVAL_S = 0.01
DEFAULT_MAX_SITES = 4096
DEFAULT_MAX_AGG_KEYS = 10240
DEFAULT_RINGBUF_BYTES = 16 << 20
# The ring of a tracer that only aggregates: nothing is streamed, so the
# smallest ring the kernel takes (one page) instead of 16 MiB of locked memory.
AGGREGATE_ONLY_RINGBUF_BYTES = 4096
# User stacks a session that takes them keeps (ustack): buckets of the
# kernel's stack map, where a stack whose bucket another holds is not taken
# (counted as an unreadable argument).
MAX_STACKS = 16384
# Probe ids a session has room for at least.
MIN_PROBE_SLOTS = 1024


def default_wakeup_bytes(ringbuf_bytes: int) -> int:
    """The reader is woken once this much is pending, unless the tracer says."""
    return ringbuf_bytes // 64


def default_uprobe_multi() -> bool:
    """uprobe_multi links unless the environment has PYUSDT_UPROBE_MULTI=0."""
    return os.environ.get("PYUSDT_UPROBE_MULTI", "1") != "0"


def default_ring(requests: Sequence[AttachRequest]) -> tuple[int, bool]:
    """(ring bytes, streams nothing) when the caller chose no ring size: one
    page when every request aggregates, else DEFAULT_RINGBUF_BYTES."""
    streams_nothing = bool(requests) and all(r.agg is not None for r in requests)
    return (AGGREGATE_ONLY_RINGBUF_BYTES if streams_nothing else DEFAULT_RINGBUF_BYTES), streams_nothing


def field_slots(req: AttachRequest) -> int:
    """String slots a request's fields fill: what its layouts compiled to,
    or (none compiled yet: a pattern waiting for objects loaded later) one
    per field, the most it can need."""
    if req.programs:
        return max(p.string_fields for p in req.programs.values())
    assert req.fields is not None
    from pyusdt.expr import parse_list  # only for fields: the expression package is not light

    return len(parse_list(req.fields))


def session_options(requests: Sequence[AttachRequest], aggs: Sequence[Union[Aggregate, Latency]], *,
                    ringbuf_bytes: int, wakeup_bytes: int, wakeup_interval: Optional[float], str_len: int,
                    max_sites: int, max_agg_keys: int, uprobe_multi: bool) -> _native.SessionOptions:
    # What the probes found need, and what a pattern waiting for objects
    # loaded later asked for (their probes come after the session is made).
    string_slots = max([len(strings) for r in requests for _, strings in r.pending]
                       + [len(set(r.strings)) for r in requests if r.agg is None]
                       + [field_slots(r) for r in requests if r.fields is not None], default=0)
    known = {(p.open_path, p.fullname, p.layout) for r in requests for p, _ in r.pending}
    return _build_options(string_slots=string_slots, expressions=any(r.uses_expressions for r in requests),
                          stacks=any(r.takes_stacks for r in requests), known_probes=len(known), aggs=aggs,
                          ringbuf_bytes=ringbuf_bytes, wakeup_bytes=wakeup_bytes, wakeup_interval=wakeup_interval,
                          str_len=str_len, max_sites=max_sites, max_agg_keys=max_agg_keys,
                          uprobe_multi=uprobe_multi)


def plain_stream_options(strings: Sequence[int], *, ringbuf_bytes: int, str_len: int) -> _native.SessionOptions:
    """The options start() chooses for a tracer with default settings (but
    its ring and string length) that streams probes reading `strings`, with
    no expressions, stacks or aggregations, and up to MIN_PROBE_SLOTS / 2
    probes: what a CLI trace loads ahead, before its probes are found."""
    return _build_options(string_slots=len(set(strings)), expressions=False, stacks=False, known_probes=0,
                          aggs=(), ringbuf_bytes=ringbuf_bytes, wakeup_bytes=default_wakeup_bytes(ringbuf_bytes),
                          wakeup_interval=DEFAULT_WAKEUP_INTERVAL_S, str_len=str_len, max_sites=DEFAULT_MAX_SITES,
                          max_agg_keys=DEFAULT_MAX_AGG_KEYS, uprobe_multi=default_uprobe_multi())


def _build_options(*, string_slots: int, expressions: bool, stacks: bool, known_probes: int,
                   aggs: Sequence[Union[Aggregate, Latency]], ringbuf_bytes: int, wakeup_bytes: int,
                   wakeup_interval: Optional[float], str_len: int, max_sites: int, max_agg_keys: int,
                   uprobe_multi: bool) -> _native.SessionOptions:
    opts = _native.SessionOptions()
    opts.ringbuf_bytes = ringbuf_bytes
    opts.str_len = str_len
    opts.string_slots = string_slots
    opts.expressions = expressions
    opts.max_stacks = MAX_STACKS if stacks else 0
    opts.wakeup_bytes = wakeup_bytes
    opts.wakeup_interval_ns = int((wakeup_interval or 0) * 1e9)
    opts.max_sites = max_sites
    # Probe ids (one per probe and argument layout) index a per-CPU counter
    # array: sized for the probes known now, with room for as many again
    # found later (dlopen), within the ABI's limit.
    opts.max_probes = min(_native.MAX_PROBES, max(MIN_PROBE_SLOTS, 2 * known_probes))
    opts.aggregate = bool(aggs)
    opts.max_agg_keys = max_agg_keys
    # The aggregations known now get rows in the flat per-CPU array.
    opts.flat_aggs = len(aggs)
    opts.max_starts = 1
    if aggs:
        from pyusdt.aggregate.specs import Latency  # not at the top: a trace without aggregations needs none of it

        opts.max_starts = max([a.max_pending for a in aggs if isinstance(a, Latency)], default=1)
    opts.uprobe_multi = uprobe_multi
    return opts
