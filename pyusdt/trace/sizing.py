"""Sizing a tracer's session at start(): its ring, string slots, probe ids
and aggregation rows, for what was asked before start() and with room for
the probes of objects loaded later."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from pyusdt import _native
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.expr import parse_list
from pyusdt.trace.requests import AttachRequest

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
    return len(parse_list(req.fields))


def session_options(requests: Sequence[AttachRequest], aggs: Sequence[Union[Aggregate, Latency]], *,
                    ringbuf_bytes: int, wakeup_bytes: int, wakeup_interval: Optional[float], str_len: int,
                    max_sites: int, max_agg_keys: int, uprobe_multi: bool) -> _native.SessionOptions:
    opts = _native.SessionOptions()
    opts.ringbuf_bytes = ringbuf_bytes
    opts.str_len = str_len
    # What the probes found need, and what a pattern waiting for objects
    # loaded later asked for (their probes come after the session is made).
    opts.string_slots = max([len(strings) for r in requests for _, strings in r.pending]
                            + [len(set(r.strings)) for r in requests if r.agg is None]
                            + [field_slots(r) for r in requests if r.fields is not None], default=0)
    opts.expressions = any(r.uses_expressions for r in requests)
    opts.max_stacks = MAX_STACKS if any(r.takes_stacks for r in requests) else 0
    opts.wakeup_bytes = wakeup_bytes
    opts.wakeup_interval_ns = int((wakeup_interval or 0) * 1e9)
    opts.max_sites = max_sites
    # Probe ids (one per probe and argument layout) index a per-CPU counter
    # array: sized for the probes known now, with room for as many again
    # found later (dlopen), within the ABI's limit.
    known = {(p.open_path, p.fullname, p.layout) for r in requests for p, _ in r.pending}
    opts.max_probes = min(_native.MAX_PROBES, max(MIN_PROBE_SLOTS, 2 * len(known)))
    opts.aggregate = bool(aggs)
    opts.max_agg_keys = max_agg_keys
    # The aggregations known now get rows in the flat per-CPU array.
    opts.flat_aggs = len(aggs)
    opts.max_starts = max([a.max_pending for a in aggs if isinstance(a, Latency)], default=1)
    opts.uprobe_multi = uprobe_multi
    return opts
