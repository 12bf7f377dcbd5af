"""Turning events, probe lists and statistics into text and JSON lines."""
from __future__ import annotations

import json
import time
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Iterable, Optional, TextIO

from pyusdt.discover.probes import ArgSpec, Probe
from pyusdt.trace.events import Event
from pyusdt.trace.results import ProbeStats

if TYPE_CHECKING:  # pragma: no cover - type names only (only --printf makes a Printf)
    from pyusdt.export.printf import Printf


# json.dumps(obj, ensure_ascii=False) makes an encoder per call: one, made once.
_JSON_TEXT = json.JSONEncoder(ensure_ascii=False)


def iso_times(ns_values: Iterable[int]) -> list[str]:
    """ISO 8601 UTC times with nanoseconds ('...T12:00:00.123456789Z')."""
    out: list[str] = []
    cache: dict[int, str] = {}  # second -> its text
    for ns in ns_values:
        sec, frac = divmod(ns, 1_000_000_000)
        head = cache.get(sec)
        if head is None:
            head = cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        out.append(f"{head}.{frac:09d}Z")
    return out


def _arg_text(e: Event, name: str, i: int, value: object) -> str:
    if i in e.read_failed:
        return f"{name}=?"
    if isinstance(value, str):
        # json.dumps(value, ensure_ascii=False) without making an encoder per call
        return f"{name}={encode_basestring(value)}" + ("..." if i in e.truncated else "")
    return f"{name}={value}"


def event_text(e: Event, wall_offset_ns: Optional[int] = None) -> str:
    """`ts_ns pid/tid cpuN provider:name arg0=... ...`; with `wall_offset_ns`
    (CLOCK_REALTIME - CLOCK_MONOTONIC), the UTC time of the hit first.
    Where the trace knows who the process is, `ns_pid=N container=ID`
    follow the cpu (the short id; nothing for a process in no container)."""
    names = e.probe.value_names
    args = " ".join(_arg_text(e, names[i], i, v) for i, v in enumerate(e.args))
    wall = "" if wall_offset_ns is None else iso_times([e.ts_ns + wall_offset_ns])[0] + " "
    who = ""
    if e.identity is not None:
        who = f" ns_pid={e.identity.ns_pid if e.identity.ns_pid is not None else '?'}"
        if e.identity.container is not None:
            who += f" container={e.identity.short_container}"
    return f"{wall}{e.ts_ns} {e.pid}/{e.tid} cpu{e.cpu}{who} {e.probe.fullname} {args}".rstrip()


def printf_text(printf: Printf, e: Event, wall_offset_ns: Optional[int] = None) -> str:
    """The event's fields through a --printf format (unreadable ones as ?);
    with `wall_offset_ns`, its UTC time first."""
    values = [None if i in e.read_failed else v for i, v in enumerate(e.args)]
    wall = "" if wall_offset_ns is None else iso_times([e.ts_ns + wall_offset_ns])[0] + " "
    return wall + printf.render(values)


def event_json(e: Event, wall_offset_ns: Optional[int] = None) -> str:
    """One JSON object; with `wall_offset_ns`, a "time" field (UTC) first."""
    obj: dict[str, object] = {}
    if wall_offset_ns is not None:
        obj["time"] = iso_times([e.ts_ns + wall_offset_ns])[0]
    obj.update({
        "ts_ns": e.ts_ns,
        "pid": e.pid,
        "tid": e.tid,
        "cpu": e.cpu,
    })
    if e.identity is not None:
        obj.update({"ns_pid": e.identity.ns_pid, "container": e.identity.container, "cgroup": e.identity.cgroup})
    obj.update({
        "provider": e.probe.probe.provider,
        "probe": e.probe.probe.name,
        "args": [None if i in e.read_failed else v for i, v in enumerate(e.args)],
    })
    if e.probe.probe.described or e.probe.fields is not None:
        obj["arg_names"] = e.probe.value_names
    if e.truncated:
        obj["truncated"] = list(e.truncated)
    if e.read_failed:
        obj["read_failed"] = list(e.read_failed)
    return _JSON_TEXT.encode(obj)


def _spec_text(a: ArgSpec) -> str:
    """An argument's spec, saying so when a trace reads only part of it."""
    return f"{a.spec}(first {a.bytes_read} bytes read)" if a.partial else a.spec


def probe_line(p: Probe) -> str:
    """One probe per line; a probe whose sites have different argument specs
    (count, widths, or where the values are) shows each site's, as
    args@LOCATION=[...]."""
    sites = len(p.sites)
    sem = f" semaphore={p.semaphore:#x}" if p.semaphore else ""
    if p.unsupported:
        args = f"args=[{p.sites[0].args_text}]"
    elif p.described:
        args = "args=[" + " ".join(f"{n}:{t}={_spec_text(a)}" for (n, t), a in zip(p.described, p.args)) + "]"
    elif p.same_specs:
        args = "args=[" + " ".join(_spec_text(a) for a in p.args) + "]"
    else:
        args = " ".join(f"args@{s.pc_vaddr:#x}=[" + " ".join(_spec_text(a) for a in p.site_args(i)) + "]"
                        for i, s in enumerate(p.sites))
    note = f"  [unsupported: {p.unsupported}]" if p.unsupported else ""
    return f"{p.path} {p.fullname} sites={sites}{sem} {args}{note}"


def write_probes(probes: Iterable[Probe], out: TextIO, as_json: bool) -> None:
    for p in probes:
        out.write((json.dumps(p.to_json()) if as_json else probe_line(p)) + "\n")


def summary(stats: list[ProbeStats]) -> str:
    """The end-of-trace summary: events per probe and every kind of loss."""
    total = sum(s.events for s in stats)
    lost = sum(s.lost_ringbuf for s in stats)
    str_fail = sum(s.str_fail for s in stats)
    arg_fail = sum(s.arg_fail for s in stats)
    filtered = sum(s.filtered for s in stats)
    busy = sum(s.busy for s in stats)
    lines = [f"pyusdt: {total} events, {lost} lost (ring buffer full), "
             f"{str_fail} unreadable strings, {arg_fail} unreadable arguments"
             + (f", {filtered} filtered out (--where)" if filtered else "")
             + (f", {busy} lost (expression scratch busy)" if busy else "")]
    width = max((len(s.probe) for s in stats), default=0)
    for s in stats:
        extra = ""
        if s.lost_ringbuf or s.str_fail or s.arg_fail or s.busy:
            extra = f"  lost={s.lost_ringbuf} str_fail={s.str_fail} arg_fail={s.arg_fail}"
            extra += f" busy={s.busy}" if s.busy else ""
        if s.filtered:
            extra += f"  filtered={s.filtered}"
        lines.append(f"  {s.probe:<{width}}  {s.events:>10} events  {s.path}{extra}")
    return "\n".join(lines)
