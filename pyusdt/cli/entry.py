"""The `pyusdt` console script.  A trace's BPF session starts loading in a
thread here, before the rest of the CLI (argparse, typing, the tracer) is
imported: the imports and the load then overlap from the start."""
from __future__ import annotations

import sys


def main() -> int:
    from pyusdt.cli.trace_ahead import load_ahead_from_argv

    load_ahead_from_argv(sys.argv[1:])
    from pyusdt.cli.main import main as run

    return run()
