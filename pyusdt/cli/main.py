"""The `pyusdt` command: list, trace, demo.

Every error a user can cause ends as one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import warnings
from typing import Optional, Sequence

from pyusdt import _native
from pyusdt import limits
from pyusdt.trace.requests import probes_of_process
from pyusdt.discover.probes import probes_at_path
from pyusdt.discover.patterns import require_match
from pyusdt.errors import MalformedNotesWarning, PyusdtError
from pyusdt.export.text import event_json, event_text, summary, write_probes
from pyusdt.cli.aggregate import add_aggregate_commands
from pyusdt.cli.targets import Target, Terminated, add_target_args, close_quickly, show_unmatched, show_waiting, show_warnings, split_target
from pyusdt.trace.loss_report import LossReport
from pyusdt.trace.stop_signals import StopSignals
from pyusdt.trace.loop import stream
from pyusdt.trace.tracer import DEFAULT_RINGBUF_BYTES, Tracer


# Events formatted per write: text goes at ~50k events/s, so a batch this
# size leaves room to look at stop requests and losses several times a second.
TEXT_BATCH_EVENTS = 8192


def _on_sigterm(signum, frame):
    raise Terminated()


def one_line(text: str) -> str:
    """An error stays one line even when it quotes a file name or pattern
    holding a newline (legal in both)."""
    return text.replace("\n", "\\n").replace("\r", "\\r")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors worded as every other error: one line
    starting "pyusdt: " (argparse prints the usage and a second line), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{sub}: " if sub else ""
        self.exit(2, f"pyusdt: {where}{one_line(message)} (see pyusdt {sub + ' ' if sub else ''}--help)\n")


def cmd_list(args, parser) -> int:
    path, pattern = split_target(args, parser)
    if args.pid is not None:
        probes = probes_of_process(args.pid, pattern)
    else:
        probes = require_match(probes_at_path(path), pattern, path)
    write_probes(probes, sys.stdout, args.json)
    return 0


def build_tracer(args, parser) -> Tracer:
    path, pattern = split_target(args, parser)
    tracer = Tracer(str_len=args.str_len, ringbuf_bytes=args.ringbuf_size,
                    follow_children=args.follow_forks)
    try:
        Target(args, parser, path).attach(tracer, pattern or "*", strings=args.string or [])
    except BaseException:
        tracer.close()
        raise
    return tracer


def cmd_trace(args, parser) -> int:
    # Every number before anything is opened, attached or started.
    limits.STR_LEN.check(args.str_len, "--str-len")
    limits.RINGBUF_BYTES.check(args.ringbuf_size, "--ringbuf-size")
    if args.duration is not None:
        limits.check_seconds(args.duration, "--duration")
    for i in args.string or []:
        limits.check_arg_index(i, "string argument")
    writer = None
    if args.output is not None:
        if args.format is not None:
            parser.error("--format is for stdout: with --output the file's extension gives the format")
        from pyusdt.export.files import EventWriter

        writer = EventWriter(args.output)  # every output error before anything is attached
    try:
        return _trace(args, parser, writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _trace(args, parser, writer) -> int:
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
                  f"the ring buffer ({tracer.ringbuf_bytes >> 10} KiB) is full; a bigger --ringbuf-size, "
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
            unread = sum(max(0, s.hits - s.events - s.lost_ringbuf) for s in stats)
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
        never = show_unmatched(tracer)
        close_quickly(tracer)
    return 130 if forced else never


def _stdout_writer():
    """A function writing text to stdout whole.  os.write on the descriptor,
    not sys.stdout: a signal arriving while a write blocks on a full pipe
    made Python's buffered writer drop part of the batch (seen: 3,878 of
    128,019 lines); the loop resumes a partial write.  A stdout without a
    descriptor (redirected inside Python) is written as it is."""
    out = sys.stdout
    try:
        fd = out.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return lambda text: (out.write(text), out.flush())
    out.flush()
    encoding = out.encoding or "utf-8"

    def write(text: str) -> None:
        data = memoryview(text.encode(encoding, errors="replace"))
        while data:
            data = data[os.write(fd, data):]
    return write


def _trace_to_stdout(tracer: Tracer, args, stop: StopSignals, on_loss) -> None:
    fmt = event_json if args.format == "jsonl" else event_text
    write_text = _stdout_writer()

    def write(batch) -> None:
        if len(batch):
            write_text("".join(fmt(e) + "\n" for e in batch))

    try:
        stream(tracer, write, stop, duration=args.duration, max_events=TEXT_BATCH_EVENTS, on_loss=on_loss)
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, detach as always.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def cmd_demo(args, parser) -> int:
    from pyusdt.cli.demo import run_demo

    return run_demo(sys.stdout)


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pyusdt", description="USDT tracing with eBPF")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p_list = sub.add_parser("list", help="list the USDT probes of a file or process")
    add_target_args(p_list, with_command=False)
    p_list.add_argument("--json", action="store_true", help="one JSON object per probe")
    p_list.set_defaults(func=cmd_list)

    p_trace = sub.add_parser("trace", help="print every hit of matching probes")
    add_target_args(p_trace, with_command=True)
    p_trace.add_argument("-s", "--string", type=int, action="append", metavar="N",
                         help="read argument N (0-based) as a string; repeatable")
    p_trace.add_argument("--str-len", type=int, default=_native.DEFAULT_STR_LEN,
                         help=f"bytes read per string, NUL included (default {_native.DEFAULT_STR_LEN})")
    p_trace.add_argument("--format", choices=["text", "jsonl"],
                         help="stdout format (default text)")
    p_trace.add_argument("-o", "--output", metavar="FILE",
                         help="write events to FILE instead: .parquet, .arrow (Arrow IPC file), .csv or "
                              ".jsonl, one row per event (columns: see pyusdt.export.table)")
    p_trace.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    p_trace.add_argument("--ringbuf-size", type=int, default=DEFAULT_RINGBUF_BYTES,
                         help="ring buffer bytes (power of two)")
    p_trace.add_argument("-f", "--follow-forks", action="store_true",
                         help="with -p/-c, also trace the processes the target forks (attaches to "
                              "every process mapping the objects and filters in BPF)")
    p_trace.set_defaults(func=cmd_trace)

    add_aggregate_commands(sub)

    p_demo = sub.add_parser("demo", help="trace a small bundled program and show what was seen")
    p_demo.set_defaults(func=cmd_demo)
    for p in sub.choices.values():
        p.set_defaults(cmd_parser=p)  # its usage errors name the subcommand
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"pyusdt: warning: {message}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # File names that are not UTF-8 arrive as surrogates (os.fsdecode): they
    # are written back as the same bytes, in listings and in error lines.
    for out in (sys.stdout, sys.stderr):
        if hasattr(out, "reconfigure"):
            out.reconfigure(errors="surrogateescape")
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand's parser, which knows its options
        args.cmd_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    # SIGINT is how a trace is stopped, also when a shell without job control
    # started us in the background with SIGINT ignored (Python then leaves it
    # ignored); bpftrace installs its handler regardless too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # pyusdt's warnings (malformed notes skipped...) as one line each, once.
    warnings.showwarning = _show_warning
    warnings.simplefilter("default", MalformedNotesWarning)
    try:
        return args.func(args, args.cmd_parser)
    except PyusdtError as e:
        print(f"pyusdt: {one_line(str(e))}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated):
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - a bug: still one line, the traceback on demand
        if os.environ.get("PYUSDT_DEBUG") == "1":
            raise
        print(f"pyusdt: internal error: {type(e).__name__}: {one_line(str(e))} "
              "(a bug: PYUSDT_DEBUG=1 shows where; please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
