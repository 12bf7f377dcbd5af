"""The `pyusdt` command: the parser, and the one-line errors and exit codes
every subcommand shares (each subcommand is a module: list_command,
trace_command, aggregate_command, demo_command, serve_command).

Every error a user can cause ends as one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from types import FrameType
from typing import NoReturn, Optional, Sequence, TextIO, Union

from pyusdt import __version__
from pyusdt.cli.target_args import Terminated
from pyusdt.cli.trace_ahead import command_in, load_ahead_from_argv
from pyusdt.errors import MalformedNotesWarning, PyusdtError

# The subcommands with a module of their own; every other name is one of
# aggregate_command's (count, hist, latency, ...).  Only the module of the
# subcommand asked for is imported: the serve and aggregation modules
# import numpy, the HTTP server and more, which `pyusdt trace` needs none
# of before its first event.
_OWN_MODULE = {"list": "list_command", "trace": "trace_command", "demo": "demo_command",
               "serve": "serve_command"}
_AGGREGATE_MODULE = "aggregate_command"


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated()


def one_line(text: str) -> str:
    """An error stays one line even when it quotes a file name or pattern
    holding a newline (legal in both)."""
    return text.replace("\n", "\\n").replace("\r", "\\r")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors worded as every other error: one line
    starting "pyusdt: " (argparse prints the usage and a second line), exit 2."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{sub}: " if sub else ""
        self.exit(2, f"pyusdt: {where}{one_line(message)} (see pyusdt {sub + ' ' if sub else ''}--help)\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse's own asks shutil for the width, at every add_argument
        # too, and shutil imports zlib, bz2 and lzma: ~2.5 ms of each
        # start-up, for a width only --help and usage lines use.
        # (Every argparse formatter takes width=; typeshed's protocol names prog only.)
        return self.formatter_class(prog=self.prog, width=_terminal_columns() - 2)  # type: ignore[call-arg]


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil: $COLUMNS,
    else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


def make_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; with `command`, of that one in full
    and the others by name only (enough to parse `command`'s arguments and
    to list the choices when it is no subcommand at all)."""
    parser = Parser(prog="pyusdt", description="USDT tracing with eBPF")
    parser.add_argument("--version", action="version", version=f"pyusdt {__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    wanted = None if command is None else _OWN_MODULE.get(command, _AGGREGATE_MODULE)
    for module in [*_OWN_MODULE.values(), _AGGREGATE_MODULE]:
        if wanted is None or module == wanted:
            commands = importlib.import_module(f"pyusdt.cli.{module}")
            (commands.add_commands if module == _AGGREGATE_MODULE else commands.add_command)(sub)
    for name in _OWN_MODULE:
        if name not in sub.choices:
            sub.add_parser(name)  # never parsed: another subcommand was asked for
    for p in sub.choices.values():
        p.set_defaults(cmd_parser=p)  # its usage errors name the subcommand
    return parser


def _show_warning(message: Union[Warning, str], category: type[Warning], filename: str, lineno: int,
                  file: Optional[TextIO] = None, line: Optional[str] = None) -> None:
    print(f"pyusdt: warning: {message}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # File names that are not UTF-8 arrive as surrogates (os.fsdecode): they
    # are written back as the same bytes, in listings and in error lines.
    for out in (sys.stdout, sys.stderr):
        if hasattr(out, "reconfigure"):
            out.reconfigure(errors="surrogateescape")
    words = sys.argv[1:] if argv is None else list(argv)
    command = command_in(words)
    # A trace's session loads in a thread while the parser is built (tens of
    # ms each); the console script (pyusdt.cli.entry) started it already.
    load_ahead_from_argv(words)
    try:
        parser = make_parser(command)
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser, which knows its options
            args.cmd_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except BaseException:  # a usage error or --help: the session loaded ahead is nobody's
        if command == "trace":
            from pyusdt.trace.session_prefetch import discard

            discard()
        raise
    signal.signal(signal.SIGTERM, _on_sigterm)
    # SIGINT is how a trace is stopped, also when a shell without job control
    # started us in the background with SIGINT ignored (Python then leaves it
    # ignored); bpftrace installs its handler regardless too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # pyusdt's warnings (malformed notes skipped...) as one line each, once.
    warnings.showwarning = _show_warning
    warnings.simplefilter("default", MalformedNotesWarning)
    try:
        status: int = args.func(args, args.cmd_parser)
        return status
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
