"""The physical floors of a hit: bench/floors/ built, a site found, one run made.

Two bench-only BPF programs (bench/floors/floor.bpf.c), attached by a tiny
libbpf loader (bench/floors/floor.c) as a plain uprobe at a USDT site, the
command held until attached and the probe filtered to its pid, as bpftrace
-c and pyusdt do:

  empty      the uprobe hit alone (trap, dispatch, an empty program)
  ring SIZE  a ring buffer record of SIZE bytes reserved and submitted per
             hit (no wakeup) and consumed by a reader polling every 1 ms:
             the ring buffer's own cost, with none of a tracer's work
  ring-ts SIZE  the same record with the time of the hit in it
             (bpf_ktime_get_ns): the least a timestamped event costs
  strings    the same, with two string arguments read into the record, at
             the sites of several probes (one uprobe_multi link): the least
             a tracer streaming those strings does per hit
  strings-ts the same, stamped with the time of the hit

Built at bench time with clang, bpftool and gcc against Debian's libbpf-dev,
as the suite builds its workloads.  The site's file offset comes from the
file's USDT note and program headers (readelf), independent of pyusdt.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Optional

from stream import BenchError

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.join(HERE, "floors")
# pyusdt's BPF headers: the strings floor reads registers as pyusdt does.
BPF_DIR = os.path.join(os.path.dirname(HERE), "bpf")
# The ring size the floors use: pyusdt's default, so the ring floor and
# pyusdt's stream fill (or not) the same amount of memory.
RING_BYTES = 16 << 20
# The floor programs that stream a record per hit: "ring" (the ring buffer
# alone) and "ring-ts" (the same record, stamped with the time of the hit).
RING_KINDS = ("ring", "ring-ts")
RESULT_RE = re.compile(r"consumed=(\d+) dropped=(\d+)")
# One probe of `readelf -n`: provider, name, the virtual addresses of its
# site and of its semaphore (0: none).
NOTE_RE = re.compile(r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, "
                     r"Semaphore: (0x[0-9a-f]+)")
# Its argument line, right after the location's.
NOTE_ARGS_RE = re.compile(r"Provider: (\S+)\s+Name: (\S+)\s+Location: [^\n]*\n\s+Arguments: ([^\n]*)")


def _run(argv: list, what: str, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BenchError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def build(tmp: str) -> str:
    """Builds the loader (with its BPF object embedded as a skeleton) in tmp."""
    obj = os.path.join(tmp, "floor.bpf.o")
    # <linux/bpf.h> needs <asm/types.h>, which Debian keeps under the
    # multiarch include directory that clang -target bpf does not search.
    multiarch = _run(["gcc", "-print-multiarch"], "gcc -print-multiarch").stdout.strip()
    _run(["clang", "-O2", "-g", "-target", "bpf", "-I", f"/usr/include/{multiarch}", "-I", BPF_DIR, "-c",
          os.path.join(SRC_DIR, "floor.bpf.c"), "-o", obj], "clang floor.bpf.c")
    skel = _run(["bpftool", "gen", "skeleton", obj, "name", "floor_bpf"], "bpftool gen skeleton").stdout
    with open(os.path.join(tmp, "floor.skel.h"), "w") as f:
        f.write(skel)
    exe = os.path.join(tmp, "floor")
    _run(["gcc", "-O2", "-Wall", "-I", tmp, "-o", exe, os.path.join(SRC_DIR, "floor.c"), "-lbpf", "-lelf", "-lz"],
         "gcc floor.c")
    return exe


def site_offset(path: str, provider: str, name: str, semaphore: bool = False) -> int:
    """File offset of the first site of USDT probe provider:name in ELF `path`
    (with semaphore, of its semaphore; 0 for none).

    The note's Location is a virtual address; the PT_LOAD segment holding it
    maps it back to the file (address - p_vaddr + p_offset), which is what
    a uprobe is attached at, and its reference counter (the semaphore) too."""
    notes = _run(["readelf", "-n", path], "readelf -n").stdout
    addr: Optional[int] = None
    for m in NOTE_RE.finditer(notes):
        if (m.group(1), m.group(2)) == (provider, name):
            addr = int(m.group(4 if semaphore else 3), 16)
            break
    if addr is None:
        raise BenchError(f"{path}: no USDT probe {provider}:{name}")
    if semaphore and not addr:
        return 0
    for line in _run(["readelf", "-lW", path], "readelf -l").stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            off, vaddr, memsz = int(f[1], 16), int(f[2], 16), int(f[5], 16)
            if vaddr <= addr < vaddr + memsz:
                return addr - vaddr + off
    raise BenchError(f"{path}: no loadable segment holds {provider}:{name} at {addr:#x}")


def strings_cookie(path: str, provider: str, name: str) -> str:
    """The strings floor's cookie for the first site of provider:name: the
    registers its first two arguments are in, "REG+REG".  Both must be
    64-bit registers, as pointers are."""
    for m in NOTE_ARGS_RE.finditer(_run(["readelf", "-n", path], "readelf -n").stdout):
        if (m.group(1), m.group(2)) != (provider, name):
            continue
        regs = [re.fullmatch(r"8@%(r\w+)", a) for a in m.group(3).split()[:2]]
        if len(regs) < 2 or not all(regs):
            raise BenchError(f"{path}: {provider}:{name}'s first two arguments ({m.group(3)}) are not both "
                             "64-bit registers, which the strings floor reads")
        return "+".join(r.group(1) for r in regs)
    raise BenchError(f"{path}: no USDT probe {provider}:{name} with arguments")


def run(loader: str, kind: str, binary: str, offset: int, command: list,
        record_bytes: Optional[int] = None, link: str = "multi") -> dict:
    """Runs `command` under one floor program; returns its counters (ring).
    link: "multi" (a uprobe_multi link) or "perf" (a perf-event uprobe)."""
    argv = [loader, kind, link, binary, str(offset)]
    if kind in RING_KINDS:
        argv += [str(record_bytes), str(RING_BYTES)]
    return _counters(_run(argv + ["--"] + command, f"floor {kind}", timeout=900), kind)


def run_strings(loader: str, binary: str, sites: list, strings_at: int, str_len: int, command: list,
                cwd: Optional[str] = None, stamp: bool = False) -> dict:
    """Runs `command` under the strings floor at `sites`, (file offset,
    semaphore's file offset or 0, strings_cookie()) triples: records of
    strings_at bytes and then two slots of str_len, with `stamp` the time
    of the hit in them; returns its counters and what the command wrote on
    stdout."""
    argv = [loader, "strings-ts" if stamp else "strings", "multi", binary,
            ",".join(f"{o}/{sem}" for o, sem, _ in sites),
            str(strings_at + 2 * str_len), str(RING_BYTES), str(strings_at), str(str_len),
            ",".join(c for _, _, c in sites)]
    r = _run(argv + ["--"] + command, "floor strings", timeout=900, cwd=cwd)
    return {**_counters(r, "strings"), "stdout": r.stdout}


def _counters(r: subprocess.CompletedProcess, kind: str) -> dict:
    if kind == "empty":
        return {}
    m = RESULT_RE.search(r.stdout)
    if not m:
        raise BenchError(f"floor ring: no counters in {r.stdout.strip()[-300:]!r}")
    return {"consumed": int(m.group(1)), "dropped": int(m.group(2))}


# Arguments a bench:fire record carries (workload.c's three integers).
BENCH_ARGS = 3


def record_sizes() -> dict:
    """The ring floor's record sizes, from pyusdt's own event layout (its
    numpy dtype, which the native module derives from the ABI header):
    "record", a whole row (every argument slot);
    "compact", its header and only the three arguments a bench:fire hit has:
    the record pyusdt streams for it (records are sized to their arguments);
    "str_len", a string slot at pyusdt's default, which a short record with
    strings has after those three arguments."""
    try:
        from pyusdt import _native

        dt = _native.event_dtype(64, 0)
        header = dt.fields["args"][1]
        slot = dt["args"].base.itemsize
    except (ImportError, AttributeError, KeyError, TypeError) as e:
        raise BenchError(f"cannot read pyusdt's event layout (pyusdt._native.event_dtype): {e}") from None
    return {"compact": header + BENCH_ARGS * slot, "record": dt.itemsize, "str_len": _native.DEFAULT_STR_LEN}
