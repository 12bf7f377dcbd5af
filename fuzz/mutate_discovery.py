#!/usr/bin/env python3
"""Mutation fuzzing of discovery as Python sees it.

    mutate_discovery.py [--time SECONDS | --runs N] [--seed S] [--out DIR] SEED_DIR...

Each round takes a real ELF file (a seed), damages it (bit flips, boundary
values in header and note fields, truncation, bytes in argument strings),
writes it to OUT/current.elf and reads it the ways pyusdt does: the
native reader, pyusdt.discover.probes_at_path, and everything `pyusdt list`
and `list --json` do with the probes found.

A round passes when it ends in probes (with MalformedNotesWarning or without)
or in a pyusdt error.  Any other exception or warning fails the run; the
input is saved in OUT/failures/ with its traceback.  A native crash kills
the process: OUT/current.elf is then the input that did it.
"""
from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
import traceback
import warnings
from pathlib import Path

from pyusdt import _native
from pyusdt.discover.probes import probes_at_path
from pyusdt.errors import MalformedNotesWarning, PyusdtError
from pyusdt.export.text import probe_line

INTERESTING_8 = [0, 1, 0x7F, 0x80, 0xFF]
INTERESTING_32 = [0, 1, 3, 8, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
INTERESTING_64 = [0, 1, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFF0]
ARG_BYTES = b"@%$()+-,:0123456789abcdefghilmnoprsxz \xc3\xff\x00"


def note_offsets(data: bytes) -> list[int]:
    """Where each "stapsdt" note owner name starts: the note header is just
    before, the probe addresses and names just after."""
    out, pos = [], data.find(b"stapsdt\0")
    while pos != -1 and len(out) < 64:
        out.append(pos)
        pos = data.find(b"stapsdt\0", pos + 1)
    return out


def header_field_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the ELF header and section header fields."""
    fields = [(16, 2), (18, 2), (24, 8), (32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2), (62, 2)]
    if len(data) >= 64:
        shoff, = struct.unpack_from("<Q", data, 40)
        shnum, = struct.unpack_from("<H", data, 60)
        for i in range(min(shnum, 64)):
            base = shoff + i * 64
            fields += [(base + off, w) for off, w in ((0, 4), (4, 4), (16, 8), (24, 8), (32, 8), (40, 4))]
    return [(o, w) for o, w in fields if o + w <= len(data)]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    notes = note_offsets(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and buf:  # flip bits anywhere
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # a header field to a boundary value
            fields = header_field_offsets(bytes(buf))
            if fields:
                off, width = rng.choice(fields)
                pool = {2: [0, 1, 0xFFFF, 0x7FFF], 4: INTERESTING_32, 8: INTERESTING_64}[width]
                value = rng.choice(pool + [len(buf), rng.getrandbits(8 * width)]) & ((1 << 8 * width) - 1)
                buf[off:off + width] = value.to_bytes(width, "little")
        elif op == 2 and notes:  # a note's header sizes or type
            start = rng.choice(notes) - 12
            if start >= 0:
                field = rng.randrange(3)
                value = rng.choice(INTERESTING_32 + [rng.randrange(64)])
                buf[start + 4 * field:start + 4 * field + 4] = value.to_bytes(4, "little")
        elif op == 3 and notes:  # a probe's pc, base or semaphore address
            start = rng.choice(notes) + 8 + 8 * rng.randrange(3)
            if start + 8 <= len(buf):
                value = rng.choice(INTERESTING_64 + [rng.getrandbits(64)])
                buf[start:start + 8] = value.to_bytes(8, "little")
        elif op == 4 and notes:  # bytes of the provider, name or argument strings
            base = rng.choice(notes) + 32
            for _ in range(rng.randint(1, 6)):
                i = base + rng.randrange(64)
                if i < len(buf):
                    buf[i] = rng.choice(ARG_BYTES)
        elif op == 5 and buf:  # truncate
            del buf[rng.randrange(len(buf)):]
        elif op == 6 and buf:  # a byte to a boundary value
            buf[rng.randrange(len(buf))] = rng.choice(INTERESTING_8)
    return bytes(buf)


def read_like_pyusdt(path: str) -> None:
    """Everything `pyusdt list` and `list --json` do with a file."""
    _native.read_sites(path)
    for p in probes_at_path(path):
        json.dumps(p.to_json())
        probe_line(p)
        _ = [(a.spec, a.kind, a.size, a.signed) for a in p.args]
        _ = (p.locations, p.semaphore, p.arg_names, p.unsupported, p.string_args)


def one_round(path: str) -> str:
    """'' when the round passed, else what went wrong."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            read_like_pyusdt(path)
        stray = [w for w in caught if not issubclass(w.category, MalformedNotesWarning)]
        if stray:
            return "unexpected warning: " + warnings.formatwarning(
                stray[0].message, stray[0].category, stray[0].filename, stray[0].lineno)
    except PyusdtError:
        pass
    except Exception:  # the bug this run looks for
        return traceback.format_exc()
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=float, default=0, help="stop after this many seconds")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many rounds")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    ap.add_argument("--out", default="build/fuzz/discovery", help="where current.elf and failures/ go")
    ap.add_argument("seed_dirs", nargs="+")
    args = ap.parse_args()
    if not args.time and not args.runs:
        ap.error("give --time or --runs")

    seeds = [p.read_bytes() for d in args.seed_dirs for p in sorted(Path(d).iterdir())
             if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
    if not seeds:
        print("mutate_discovery: no ELF seeds", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else time.time_ns() % 2**32
    rng = random.Random(seed)
    out = Path(args.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    current = out / "current.elf"

    start, rounds, failures = time.monotonic(), 0, 0
    while (not args.runs or rounds < args.runs) and (not args.time or time.monotonic() - start < args.time):
        data = mutate(rng.choice(seeds), rng)
        current.write_bytes(data)
        problem = one_round(str(current))
        rounds += 1
        if problem:
            failures += 1
            name = out / "failures" / f"seed{seed}-round{rounds}"
            name.with_suffix(".elf").write_bytes(data)
            name.with_suffix(".txt").write_text(problem)
            print(f"mutate_discovery: FAIL round {rounds}: {name}.elf\n{problem}", file=sys.stderr)
    current.unlink(missing_ok=True)
    elapsed = time.monotonic() - start
    print(f"mutate_discovery: {rounds} rounds in {elapsed:.1f} s (seed {seed}), {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
