"""The aggregating commands: count, sum, min, max, avg, stats, hist, lhist, latency.

They take the same targets as `pyusdt trace` (PATH, -p PID, -c "CMD") and
print what the kernel aggregated, as bpftrace prints the same map, at the end
and every --interval.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Optional, Union

from pyusdt import limits
from pyusdt.aggregate.results import AggregationResult
from pyusdt.aggregate.specs import (
    KINDS,
    UNITS,
    Aggregate,
    Arg,
    KeySpec,
    Latency,
    StrArg,
    Where,
    plain_key,
    plain_value,
)
from pyusdt.cli.target_args import WHERE_HELP, Subcommands, add_target_args
from pyusdt.cli.targets import (
    Target,
    close_quickly,
    show_follow_hint,
    show_unmatched,
    show_waiting,
    show_warnings,
    split_target,
)
from pyusdt.errors import ConfigError
from pyusdt.expr import parse
from pyusdt.trace.stop_signals import StopSignals
from pyusdt.trace.tracer import Tracer

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.export.plot import Heatmap

_WHERE = re.compile(r"^\s*arg(\d+)\s*(==|!=|<=|>=|<|>)\s*(-?(?:0x[0-9a-fA-F]+|\d+))\s*$")
_KEY = re.compile(r"^(arg|str)(\d+)$")
_HELP = {
    "count": "count hits per probe (or per --by key)",
    "sum": "sum an argument",
    "min": "minimum of an argument",
    "max": "maximum of an argument",
    "avg": "average of an argument",
    "stats": "count, average and total of an argument",
    "hist": "log2 histogram of an argument, as bpftrace's hist()",
    "lhist": "linear histogram of an argument, as bpftrace's lhist()",
}


def parse_key(text: Optional[str]) -> KeySpec:
    """--by: pid, tid, comm, probe, none, argN (integer), strN (string), or
    bpftrace expressions 'EXPR, EXPR, ...' (several keys).  One plain key
    (argN, str(argN), pid, tid, comm, probe) takes the plain route."""
    if text is None or text == "none":
        return None
    m = _KEY.match(text.strip())
    if m:
        return (StrArg if m.group(1) == "str" else Arg)(int(m.group(2)))
    return plain_key(text)


def parse_value(text: Optional[str]) -> Union[None, int, str]:
    """-v: N (argument N, as before), argN, or a bpftrace expression."""
    if text is None:
        return None
    if re.fullmatch(r"\s*-?\d+\s*", text):  # an argument index, as before expressions
        return int(text)
    return plain_value(text)


def parse_where(text: Optional[str]) -> Union[None, Where, str]:
    """--where: a bpftrace predicate.  'argN OP VALUE' (OP one of == != < <=
    > >=) takes the plain route; anything else is an expression."""
    if text is None:
        return None
    m = _WHERE.match(text)
    if not m:
        parse(text)  # its syntax now, with the column at fault
        return text
    number = m.group(3)
    digits = number.lstrip("-")
    if digits.startswith("0x"):
        value = int(number, 16)
    elif len(digits) > 1 and digits.startswith("0"):
        raise ConfigError(f"--where: {number!r} has a leading zero (write it in decimal or 0x hex)")
    else:
        value = int(number, 10)
    return Where(int(m.group(1)), m.group(2), value)


def parse_triple(text: str, what: str) -> tuple[int, int, int]:
    try:
        a, b, c = (int(x, 0) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} must be MIN,MAX,STEP (got {text!r})") from None
    return a, b, c


def _add_common(p: argparse.ArgumentParser) -> None:
    add_target_args(p, with_command=True)
    p.add_argument("-f", "--follow-forks", action="store_true",
                   help="with -p/-c, also aggregate in the processes the target forks")
    p.add_argument("--where", metavar="PRED", help=WHERE_HELP)
    p.add_argument("--filter-pid", type=int, metavar="PID", help="only hits in this process")
    p.add_argument("-i", "--interval", type=float, help="print every this many seconds too")
    p.add_argument("--per-interval", action="store_true",
                   help="with --interval, print what each interval added (min/max stay cumulative)")
    p.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    p.add_argument("--format", choices=["text", "json", "bpftrace-json", "folded"], default="text",
                   help="text as bpftrace prints maps, a JSON object per print, the line "
                        "bpftrace -f json prints for the map, or folded lines for flame graphs "
                        "(--by ustack: frames outermost first, ';' between, then the value)")
    p.add_argument("--top", type=int, metavar="N",
                   help="print only the N keys with the largest values, as bpftrace's print(@, N)")
    p.add_argument("--max-keys", type=int, default=10240, help="rows per aggregation map")


def add_commands(sub: Subcommands) -> None:
    """Registers the aggregating subcommands on the top-level parser."""
    for kind in KINDS:
        p = sub.add_parser(kind, help=_HELP[kind])
        _add_common(p)
        if kind != "count":
            p.add_argument("-v", "--value", required=True, metavar="EXPR",
                           help="what is aggregated: N (argument N, 0-based) or a bpftrace expression, "
                                "e.g. 'arg2 / 1000' or '*(int32 *)arg1'")
        p.add_argument("--by", metavar="KEY",
                       help="key: pid, tid, comm, probe, none, argN, strN, or bpftrace expressions "
                            "'EXPR, EXPR, ...' (several keys print as @[a, b])"
                            + (" (default probe)" if kind == "count" else ""))
        p.add_argument("--divisor", type=int, default=1, help="divide values by this (units)")
        if kind == "lhist":
            p.add_argument("--min", type=int, required=True)
            p.add_argument("--max", type=int, required=True)
            p.add_argument("--step", type=int, required=True)
        if kind in ("hist", "lhist"):
            p.add_argument("--plot", metavar="FILE.png", help="also draw the final histogram(s) to FILE")
        p.set_defaults(func=cmd_aggregate, kind=kind)

    p = sub.add_parser("latency", help="time from a start probe to a done probe")
    _add_common(p)
    p.add_argument("--start", required=True, metavar="PATTERN", help="the start probe")
    p.add_argument("--done", required=True, metavar="PATTERN", help="the done probe")
    p.add_argument("--pair-by", metavar="N | S,D",
                   help="pair by this argument (a request id) instead of by thread; "
                        "S,D when it is argument S of the start and D of the done")
    p.add_argument("--by", metavar="KEY",
                   help="key: pid, tid, comm, probe, none, argN, strN, or bpftrace expressions "
                        "(computed at the done probe)")
    p.add_argument("--key-from", choices=["start", "done"], default="done",
                   help="the probe whose arguments --by reads")
    p.add_argument("--unit", choices=list(UNITS), default="us")
    p.add_argument("--kind", choices=["hist", "lhist", "stats", "avg", "min", "max", "count", "sum"],
                   default="hist")
    p.add_argument("--lhist", metavar="MIN,MAX,STEP", help="linear buckets (implies --kind lhist)")
    p.add_argument("--max-pending", type=int, default=10240,
                   help="outstanding starts kept (the oldest are evicted beyond, and counted)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the final histogram(s) to FILE "
                   "(--kind hist or lhist)")
    p.add_argument("--heatmap", metavar="FILE.png",
                   help="also draw a heatmap of the latencies over time to FILE (--kind hist or lhist; "
                        "one column per --interval, default 1 s)")
    p.set_defaults(func=cmd_latency)


def _spec_from_args(args: argparse.Namespace) -> Aggregate:
    lhist = (args.min, args.max, args.step) if args.kind == "lhist" else None
    key = parse_key(args.by if args.by is not None else ("probe" if args.kind == "count" else None))
    return Aggregate(args.kind, value=parse_value(getattr(args, "value", None)), key=key, divisor=args.divisor,
                     lhist=lhist, where=parse_where(args.where), pid=args.filter_pid)


def _check_pictures(args: argparse.Namespace, kind: str) -> None:
    """--plot/--heatmap: checked (matplotlib, file type, directory) before attaching."""
    for option in ("plot", "heatmap"):
        path = getattr(args, option, None)
        if path is None:
            continue
        if kind not in ("hist", "lhist"):
            raise ConfigError(f"--{option} draws histograms: use it with --kind hist or lhist")
        from pyusdt.export.plot import check_output

        check_output(path)


def _check_numbers(args: argparse.Namespace) -> None:
    """Every number the aggregating commands take, named as typed, before
    anything is attached (the limits are pyusdt.limits', as the API's)."""
    if args.filter_pid is not None:
        limits.check_pid(args.filter_pid, "--filter-pid")
    if args.interval is not None:
        limits.check_seconds(args.interval, "--interval")
    if args.duration is not None:
        limits.check_seconds(args.duration, "--duration")
    limits.MAP_ENTRIES.check(args.max_keys, "--max-keys")
    value = parse_value(getattr(args, "value", None))
    if isinstance(value, int):
        limits.check_arg_index(value, "value argument")
    if getattr(args, "divisor", None) is not None:
        limits.DIVISOR.check(args.divisor, "--divisor")
    if getattr(args, "max_pending", None) is not None:
        limits.MAP_ENTRIES.check(args.max_pending, "--max-pending")
    if args.top is not None:
        limits.MAP_ENTRIES.check(args.top, "--top")


def cmd_aggregate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path, pattern = split_target(args, parser)
    _check_numbers(args)
    spec = _spec_from_args(args)
    _check_pictures(args, args.kind)
    tracer = Tracer(follow_children=args.follow_forks, max_agg_keys=args.max_keys)
    with tracer:
        Target(args, parser, path).attach(tracer, pattern or "*", aggregate=spec)
        return _run(tracer, spec, args)


def cmd_latency(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path, pattern = split_target(args, parser)
    if pattern is not None:
        parser.error("latency takes --start and --done, not a PATTERN")
    _check_numbers(args)
    pair: Union[None, int, tuple[int, int]] = None
    if args.pair_by is not None:
        try:
            parts = [int(x) for x in args.pair_by.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise ConfigError(f"--pair-by must be N or S,D (got {args.pair_by!r})")
        pair = parts[0] if len(parts) == 1 else (parts[0], parts[1])
    kind = "lhist" if args.lhist else args.kind
    spec = Latency(args.start, args.done, kind=kind, pair_by=pair, key=parse_key(args.by),
                   key_from=args.key_from, unit=args.unit,
                   lhist=parse_triple(args.lhist, "--lhist") if args.lhist else None,
                   where=parse_where(args.where), pid=args.filter_pid, max_pending=args.max_pending)
    _check_pictures(args, kind)
    tracer = Tracer(follow_children=args.follow_forks, max_agg_keys=args.max_keys)
    with tracer:
        Target(args, parser, path).attach_latency(tracer, spec)
        return _run(tracer, spec, args)


def _counters_line(result: AggregationResult) -> str:
    c = result.counters
    if isinstance(result.spec, Latency):
        return (f"pyusdt: {c.matched} requests timed, {c.filtered} filtered out, {c.map_full} lost "
                f"(map full), {c.read_fail} unreadable arguments; {c.starts} starts, "
                f"{c.unmatched} dones without start, {c.pending} pending, {c.dropped} dropped")
    return (f"pyusdt: {c.hits} aggregated, {c.filtered} filtered out, {c.map_full} lost (map full), "
            f"{c.read_fail} unreadable arguments")


def _emit(result: AggregationResult, args: argparse.Namespace, final: bool) -> None:
    if args.format == "json":
        sys.stdout.write(json.dumps({"time_ns": time.monotonic_ns(), "final": final,
                                     **result.to_json(args.top)}) + "\n")
    elif args.format == "bpftrace-json":
        sys.stdout.write(json.dumps(result.to_bpftrace_json("@", args.top)) + "\n")
    elif args.format == "folded":
        sys.stdout.write(result.folded(args.top))
    else:
        if not final:
            sys.stdout.write(time.strftime("%H:%M:%S\n"))
        sys.stdout.write(result.render("@", args.top))
    sys.stdout.flush()
    hidden = len(result.keys) - args.top if args.top is not None else 0
    if hidden > 0:  # said on stderr, so that stdout stays the map as bpftrace prints it
        print(f"pyusdt: {hidden} more key(s) not printed (--top {args.top})", file=sys.stderr)


def _draw(final: AggregationResult, heat: Optional[Heatmap], args: argparse.Namespace) -> None:
    """--plot and --heatmap, from the cumulative final result."""
    if not getattr(args, "plot", None) and heat is None:
        return
    from pyusdt.export.plot import heatmap, histogram

    if getattr(args, "plot", None):
        histogram(final, args.plot)
        print(f"pyusdt: histogram drawn to {args.plot}", file=sys.stderr)
    if heat is not None:
        heat.add(final)
        heatmap(heat, args.heatmap)
        print(f"pyusdt: heatmap of {len(heat.columns)} interval(s) drawn to {args.heatmap}", file=sys.stderr)


def _run(tracer: Tracer, spec: Union[Aggregate, Latency], args: argparse.Namespace) -> int:
    show_warnings(tracer)
    show_waiting(tracer)
    tracer.start()
    show_warnings(tracer)
    print(f"pyusdt: aggregating {tracer.probe_count} probe(s) at {tracer.attached_sites} site(s); "
          "Ctrl-C to stop", file=sys.stderr)
    start = time.monotonic()
    deadline = None if args.duration is None else start + args.duration
    heat = None
    if getattr(args, "heatmap", None):
        from pyusdt.export.plot import Heatmap

        heat = Heatmap(args.interval or 1.0, start=start)
    next_print = None if args.interval is None else start + args.interval
    previous = None
    try:
        with StopSignals() as stop:  # a stop signal is looked at between steps
            while not stop.requested and not tracer.done and (deadline is None or time.monotonic() < deadline):
                tracer.poll(timeout=0.1)
                if heat is not None and heat.due():
                    heat.add(tracer.aggregation(spec))
                if next_print is not None and time.monotonic() >= next_print:
                    now = tracer.aggregation(spec)
                    _emit(now.minus(previous) if args.per_interval and previous else now, args, final=False)
                    previous = now
                    next_print += args.interval
    except KeyboardInterrupt:
        pass  # a second signal: print what there is now

    show_warnings(tracer)
    final = tracer.aggregation(spec)  # the maps read once: output, counters and pictures agree
    _emit(final.minus(previous) if args.per_interval and previous is not None else final, args, final=True)
    print(_counters_line(final), file=sys.stderr)
    _draw(final, heat, args)
    if args.pid is not None and tracer.done:
        # A normal end, as bpftrace's: the output is complete (exit 0).
        print(f"pyusdt: process {args.pid} exited during the trace", file=sys.stderr)
    show_follow_hint(tracer, args)
    never = show_unmatched(tracer)
    close_quickly(tracer)
    return never
