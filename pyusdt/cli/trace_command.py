"""`pyusdt trace`: its arguments, and the session loaded ahead while the run
(pyusdt.cli.trace_run) is imported and finds its probes."""
from __future__ import annotations

import argparse

from pyusdt import _native, limits
from pyusdt.cli.target_args import WHERE_HELP, Subcommands, add_target_args
from pyusdt.cli.trace_ahead import EXPRESSION_OPTIONS, RINGBUF_OPTION, STR_LEN_OPTION, STRING_OPTION
from pyusdt.errors import ConfigError
from pyusdt.trace.session_prefetch import discard as discard_prefetched
from pyusdt.trace.session_prefetch import prefetch
from pyusdt.trace.sizing import DEFAULT_RINGBUF_BYTES, plain_stream_options


def add_command(sub: Subcommands) -> None:
    p_trace = sub.add_parser("trace", help="print every hit of matching probes",
                             description="Probe specs: PATTERN [/PREDICATE/] [{ FIELDS }], one per argument "
                                         "after PATH (or with -p/-c), each with its own predicate and "
                                         "fields, e.g. 'hotspot:method__entry { str(arg1, arg2) }' "
                                         "'hotspot:gc__done /arg0 > 0/'.")
    add_target_args(p_trace, with_command=True)
    p_trace.add_argument(*STRING_OPTION, type=int, action="append", metavar="N",
                         help="read argument N (0-based) as a string; repeatable")
    p_trace.add_argument(EXPRESSION_OPTIONS[0], metavar="PRED", help=WHERE_HELP)
    p_trace.add_argument(EXPRESSION_OPTIONS[1], metavar="'EXPR, ...'",
                         help="print these bpftrace expressions instead of the arguments, e.g. "
                              "'str(arg1, arg2), *(int32 *)arg0' (evaluated in the kernel)")
    p_trace.add_argument(EXPRESSION_OPTIONS[2], metavar="FORMAT",
                         help="with --fields: print each event as bpftrace's printf(FORMAT, fields...) "
                              "does, e.g. '%%s took %%d us\\n'")
    p_trace.add_argument(STR_LEN_OPTION, type=int, default=_native.DEFAULT_STR_LEN,
                         help=f"bytes read per string, NUL included (default {_native.DEFAULT_STR_LEN})")
    # "json", as the aggregating commands spell it (one object per line);
    # "jsonl" is still taken.
    p_trace.add_argument("--format", choices=["text", "json", "jsonl"],
                         help="stdout format: text (the default) or json, a JSON object per event")
    p_trace.add_argument("-T", "--wall-time", action="store_true",
                         help="start each line with the hit's wall-clock time, UTC (json: a \"time\" field)")
    p_trace.add_argument("-o", "--output", metavar="FILE",
                         help="write events to FILE instead: .parquet, .arrow (Arrow IPC file), .csv or "
                              ".jsonl, one row per event (columns: see pyusdt.trace.columns)")
    p_trace.add_argument("-d", "--duration", type=float, help="stop after this many seconds")
    p_trace.add_argument(RINGBUF_OPTION, type=int, default=DEFAULT_RINGBUF_BYTES,
                         help="ring buffer bytes (power of two)")
    p_trace.add_argument("-f", "--follow-forks", action="store_true",
                         help="with -p/-c, also trace the processes the target forks (attaches to "
                              "every process mapping the objects and filters in BPF)")
    p_trace.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _load_ahead(args)
    try:
        from pyusdt.cli import trace_run  # most of the start-up's imports, while the session loads

        return trace_run.run(args, parser)
    finally:
        discard_prefetched()  # a trace that ended before start() took it


def _load_ahead(args: argparse.Namespace) -> None:
    """Starts loading the session a plain trace (no --fields, --where or
    predicates in the specs) will ask for.  A spec with a predicate or
    fields has a space or a brace; then, or with numbers start() would
    refuse, nothing is loaded ahead (start() loads as ever)."""
    if args.fields is not None or args.where is not None or args.printf is not None:
        return
    if any(" " in t or "{" in t for t in args.target):
        return
    try:
        limits.STR_LEN.check(args.str_len, "--str-len")
        limits.RINGBUF_BYTES.check(args.ringbuf_size, "--ringbuf-size")
        for i in args.string or []:
            limits.check_arg_index(i, "string argument")
    except ConfigError:
        return  # said by the run, in its turn
    prefetch(plain_stream_options(args.string or [], ringbuf_bytes=args.ringbuf_size,
                                                   str_len=args.str_len))
