"""The session a `pyusdt trace` command line will ask for, loaded before the
parser, or even argparse and typing, is imported: the BPF load (BTF, the
verifier, the maps: ~45 ms) is what a plain trace's first event waits for,
and it needs nothing but the options, read here from the words themselves.
This module imports only what that load needs (pyusdt.cli.entry calls it
first thing).  trace_command keeps or replaces the load once it has parsed
the arguments."""
from __future__ import annotations

from pyusdt import _native
from pyusdt._lazy import TYPE_CHECKING
from pyusdt.trace.session_prefetch import prefetch
from pyusdt.trace.sizing import DEFAULT_RINGBUF_BYTES, plain_stream_options

if TYPE_CHECKING:  # pragma: no cover - type names only
    from typing import Sequence

# The options that change the session a trace loads (its string slots, ring,
# string length, or expressions): a command line without them loads the
# default plain session.  trace_command's parser takes these very names.
STRING_OPTION = ("-s", "--string")
STR_LEN_OPTION = "--str-len"
RINGBUF_OPTION = "--ringbuf-size"
EXPRESSION_OPTIONS = ("--where", "--fields", "--printf")
SESSION_OPTIONS = (*STRING_OPTION, STR_LEN_OPTION, RINGBUF_OPTION, *EXPRESSION_OPTIONS)
COMMAND_OPTIONS = ("-c", "--command")  # its value is a command line, spaces and all


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (its first word that is not
    an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def load_ahead_from_argv(argv: Sequence[str]) -> None:
    """Starts loading the default plain session when `argv` (the command
    line after the program name) is a `trace` with none of the
    SESSION_OPTIONS, no help, and no spec with a predicate or fields.  A
    guess: once the arguments are parsed, the trace keeps this load if it
    asks for the same options and replaces it otherwise."""
    words = list(argv)
    if command_in(words) != "trace":
        return
    words = words[words.index("trace") + 1:]
    for i, word in enumerate(words):
        if word in ("-h", "--help") or word.startswith(SESSION_OPTIONS):
            return
        if (" " in word or "{" in word) and (i == 0 or words[i - 1] not in COMMAND_OPTIONS):
            return
    prefetch(plain_stream_options([], ringbuf_bytes=DEFAULT_RINGBUF_BYTES, str_len=_native.DEFAULT_STR_LEN))
