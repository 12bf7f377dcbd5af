"""Running `pyusdt trace` (its arguments are trace_command's): every hit of
the matching probes, printed as text or JSON lines, or written to a file
(Parquet, Arrow, CSV, JSON lines)."""
from __future__ import annotations

import argparse
import io
import os
import sys
from typing import TYPE_CHECKING, Callable, Optional

from pyusdt import expr, limits
from pyusdt.cli.probe_specs import ProbeSpec, parse_spec
from pyusdt.cli.targets import (
    Target,
    close_quickly,
    show_follow_hint,
    show_unmatched,
    show_waiting,
    show_warnings,
    split_specs,
)
from pyusdt.export.text import event_json, event_text, printf_text, summary
from pyusdt.trace.events import EventBatch
from pyusdt.trace.loop import stream
from pyusdt.trace.stop_signals import StopSignals
from pyusdt.trace.tracer import Tracer
from pyusdt.trace.wall_clock import wall_clock_offset_ns

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.export.files import EventWriter
    from pyusdt.export.printf import Printf
    from pyusdt.trace.loss_report import LossReport


# Events formatted per write: text goes at ~50k events/s, so a batch this
# size leaves room to look at stop requests and losses several times a second.
TEXT_BATCH_EVENTS = 8192


def build_tracer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tracer:
    path, patterns = split_specs(args, parser)
    specs = [parse_spec(p) for p in patterns] or [ProbeSpec("*")]
    if args.printf is not None and any(not s.plain for s in specs):
        parser.error("--printf formats --fields: give the fields with --fields, not in a probe spec")
    tracer = Tracer(str_len=args.str_len, ringbuf_bytes=args.ringbuf_size,
                    follow_children=args.follow_forks)
    try:
        target = Target(args, parser, path)
        for spec in specs:
            # A spec's own predicate and fields; the command line's where it has none
            # (-s only where no fields are given: cmd_trace refuses both).
            fields = spec.fields if spec.fields is not None else args.fields
            target.attach(tracer, spec.pattern, strings=[] if fields is not None else args.string or [],
                          where=spec.where if spec.where is not None else args.where, fields=fields)
    except BaseException:
        tracer.close()
        raise
    return tracer


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # Every number before anything is opened, attached or started.
    limits.STR_LEN.check(args.str_len, "--str-len")
    limits.RINGBUF_BYTES.check(args.ringbuf_size, "--ringbuf-size")
    if args.duration is not None:
        limits.check_seconds(args.duration, "--duration")
    for i in args.string or []:
        limits.check_arg_index(i, "string argument")
    if args.fields is not None and args.string:
        parser.error("-s is for arguments: with --fields, read a string with str(argN) among the fields")
    printf = None
    if args.printf is not None:
        if args.fields is None:
            parser.error("--printf formats the --fields: give both")
        if args.format is not None or args.output is not None:
            parser.error("--printf is a text format of its own: leave out --format and --output")
        from pyusdt.export.printf import Printf  # only --printf: not imported at every start-up

        printf = Printf(args.printf, len(expr.parse_list(args.fields)))
    args.printf_format = printf
    writer = None
    if args.output is not None:
        if args.format is not None:
            parser.error("--format is for stdout: with --output the file's extension gives the format")
        if args.wall_time:
            parser.error("--wall-time is for stdout: a file has a time column")
        from pyusdt.export.files import EventWriter

        writer = EventWriter(args.output)  # every output error before anything is attached
    try:
        return _trace(args, parser, writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _trace(args: argparse.Namespace, parser: argparse.ArgumentParser, writer: Optional[EventWriter]) -> int:
    tracer = build_tracer(args, parser)
    with tracer:
        show_warnings(tracer)
        show_waiting(tracer)

        def announce() -> None:
            show_warnings(tracer)  # attaching happens in start()
            print(f"pyusdt: tracing {tracer.probe_count} probe(s) at {tracer.attached_sites} site(s); "
                  "Ctrl-C to stop", file=sys.stderr)

        def on_loss(r: LossReport) -> None:
            print(f"pyusdt: warning: {r.new} event(s) lost in the last {r.seconds:.1f} s ({r.total} in all): "
                  f"the ring buffer ({(tracer.ringbuf_bytes or 0) >> 10} KiB) is full; a bigger --ringbuf-size, "
                  "or aggregating in the kernel (pyusdt count, hist, ...), keeps up", file=sys.stderr)

        forced = False
        try:
            if writer is not None:
                from pyusdt.export.files import record

                record(tracer, writer, args.duration, on_start=announce, on_loss=on_loss)
            else:
                with StopSignals() as stop:
                    tracer.start()
                    announce()
                    _trace_to_stdout(tracer, args, stop, on_loss)
        except KeyboardInterrupt:
            # A second Ctrl-C: stop draining, but still say what was lost.
            forced = True
        # The results first, then detach (close): with perf-event links
        # detaching takes a moment per site.
        show_warnings(tracer)
        stats = tracer.stats()
        print(summary(stats), file=sys.stderr)
        if forced:
            unread = sum(max(0, s.hits - s.events - s.lost_ringbuf - s.filtered - s.busy) for s in stats)
            print(f"pyusdt: stopped by a second signal: {unread} event(s) left unread in the ring buffer",
                  file=sys.stderr)
        if writer is not None:
            from pyusdt.export.files import dropped_warnings

            for w in dropped_warnings(writer):
                print(f"pyusdt: warning: {w}", file=sys.stderr)
            print(f"pyusdt: {writer.events_written} events written to {writer.path}", file=sys.stderr)
        if args.pid is not None and tracer.done:
            # A normal end, as bpftrace's: the output is complete (exit 0).
            print(f"pyusdt: process {args.pid} exited during the trace", file=sys.stderr)
        show_follow_hint(tracer, args)
        never = show_unmatched(tracer)
        close_quickly(tracer)
    return 130 if forced else never


def _stdout_writer() -> Callable[[str], None]:
    """A function writing text to stdout whole.  os.write on the descriptor,
    not sys.stdout: a signal arriving while a write blocks on a full pipe
    made Python's buffered writer drop part of the batch (seen: 3,878 of
    128,019 lines); the loop resumes a partial write.  A stdout without a
    descriptor (redirected inside Python) is written as it is."""
    out = sys.stdout
    try:
        fd = out.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        def write_whole(text: str) -> None:
            out.write(text)
            out.flush()
        return write_whole
    out.flush()
    encoding = out.encoding or "utf-8"

    def write(text: str) -> None:
        data = memoryview(text.encode(encoding, errors="replace"))
        while data:
            data = data[os.write(fd, data):]
    return write


def _trace_to_stdout(tracer: Tracer, args: argparse.Namespace, stop: StopSignals,
                     on_loss: Callable[[LossReport], None]) -> None:
    fmt = event_json if args.format in ("json", "jsonl") else event_text
    # The kernel stamps CLOCK_MONOTONIC; the offset to UTC is measured once,
    # as the tables and files measure it (pyusdt.trace.columns).
    wall = wall_clock_offset_ns() if args.wall_time else None
    write_text = _stdout_writer()
    printf: Optional[Printf] = args.printf_format

    def write(batch: EventBatch) -> None:
        if not len(batch):
            return
        if printf is not None:
            write_text("".join(printf_text(printf, e, wall) for e in batch))
        else:
            write_text("".join(fmt(e, wall) + "\n" for e in batch))

    try:
        stream(tracer, write, stop, duration=args.duration, max_events=TEXT_BATCH_EVENTS, on_loss=on_loss,
               give_way=True)
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, detach as always.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
