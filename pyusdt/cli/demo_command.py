"""`pyusdt demo`: trace the bundled probe-carrying program and show what was seen."""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import TextIO

from pyusdt.cli.target_args import Subcommands
from pyusdt.export.text import event_text, summary
from pyusdt.trace.tracer import Tracer

# installed by CMakeLists.txt next to the package root
DEMO_TARGET = os.path.join(os.path.dirname(os.path.dirname(__file__)), "bin", "pyusdt-demo-target")
TICKS = 20
INTERVAL_MS = 100
# What demo_target.c fires, so the demo checks every value it read.
LABELS = ("alpha", "beta", "gamma", "delta")


def expected_args(probe: str, i: int) -> tuple[object, ...]:
    if probe == "demo:tick":
        return (i, i * i - 10, LABELS[i % 4])
    return (i, INTERVAL_MS * 1_000_000)


def run_demo(out: TextIO) -> int:
    """Starts the demo target held, attaches to demo:tick (label read as a string)
    and demo:work__done, lets it run about two seconds, prints events and totals."""
    argv = [DEMO_TARGET, str(TICKS), str(INTERVAL_MS)]
    out.write(f"pyusdt demo: tracing {' '.join(argv)}\n")
    with Tracer() as t:
        held = t.attach_command(argv, "demo:tick", strings=[2])
        t.attach_command(held, "demo:work__done")
        t.start()
        seen: Counter[str] = Counter()
        wrong: list[str] = []
        for batch in t.batches(timeout=0.1, duration=30):
            for e in batch:
                name = e.probe.fullname
                want = expected_args(name, seen[name])
                if e.args != want or e.read_failed:
                    wrong.append(f"{name} #{seen[name]}: read {e.args}, fired {want}")
                seen[name] += 1
                out.write(event_text(e) + "\n")
        stats = t.stats()
    out.write(summary(stats) + "\n")
    ok = seen["demo:tick"] == TICKS and seen["demo:work__done"] == TICKS and not wrong
    if ok:
        out.write("pyusdt demo: saw every probe hit\n")
    elif wrong:
        out.write(f"pyusdt demo: {len(wrong)} hit(s) read wrong, the first: {wrong[0]}\n")
    else:
        out.write(f"pyusdt demo: expected {TICKS} of each, saw {dict(seen)}\n")
    return 0 if ok else 1


def add_command(sub: Subcommands) -> None:
    p_demo = sub.add_parser("demo", help="trace a small bundled program and show what was seen")
    p_demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return run_demo(sys.stdout)
