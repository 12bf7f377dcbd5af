"""Suite section "pystrings": a burst of Python probes with strings, as a user traces it.

Debian's python3.11 imports a dozen stdlib packages and prints how long
that took (its own clock, time.perf_counter()); its python:function__entry
and python:line probes fire about 42,000 and 269,000 times, 310,000 events
in a fraction of a second, each with two strings (file and function name).
The modes, interleaved, median of R rounds:

  none                 the program alone
  bpftrace-P-count     bpftrace P counting both probes in the kernel, for each
                       peer P (bench/peers.py): the floor of a hit, and the
                       kernel's hit counts
  floor-strings        bench/floor.py's strings floor at both probes: each hit
                       reads the two strings into a ring buffer record of
                       pyusdt's size for it (header, 3 argument slots, two
                       slots of its default string length), which a reader
                       consumes every millisecond; no timestamp, site lookup
                       or counters: the least a tracer streaming these
                       strings does per hit
  floor-strings-ts     the same records stamped with the time of the hit
                       (bpf_ktime_get_ns), as every pyusdt event is
  pyusdt               pyusdt trace -c CMD 'python:function__entry' 'python:line'
                       -s 0 -s 1, at its defaults, the text it prints read
                       through a pipe (so its reader formats every event)
  bpftrace-P-printf    (setting "printf") bpftrace printing both strings and the
                       line number of every hit, to a file (-o)

The program is the same file for every mode, PYTHON -B SCRIPT, with the code
on one line as a user would pass it to `python -c`: bpftrace's -c splits its
command on spaces without shell quoting, so `-c 'CODE'` cannot be given to
it.  Reported: the program's own time per mode; pyusdt / bpftrace count per
peer (target <= 1.3x), and against the strings floor; pyusdt's events received and lost (its summary line on
stderr), the lines it wrote, and whether received + lost equals the hits
bpftrace counted in the kernel, per probe (target: 0 lost at defaults).
"""
from __future__ import annotations

import os
import re
import subprocess
import time

import floor
import peers
from suite_common import BenchError, bar_panel, median, pyusdt_cli

NAME = "pystrings"
TITLE = "A burst of Python probes with strings"
PYTHON = "/usr/bin/python3.11"
PROBES = ("python:function__entry", "python:line")
CODE = ("import time; t=time.perf_counter(); import json, decimal, fractions, email.parser, http.client, "
        "xml.dom.minidom, argparse, logging, unittest, asyncio; print(time.perf_counter()-t)")
TARGET_VS_COUNT = 1.3
COUNTS = tuple(peers.mode(p, "count") for p in peers.PEERS)
PRINTFS = tuple(peers.mode(p, "printf") for p in peers.PEERS)
# 9 rounds in a full run: single rounds of pyusdt / count() spread from
# 1.15x to 1.93x on this 2-CPU machine.
SETTINGS = {"full": {"repeat": 9, "printf": True}, "quick": {"repeat": 3, "printf": True}}
# What the program prints: its own time in seconds, alone on a line.
SECONDS_RE = re.compile(r"^(\d+\.\d+(?:e-?\d+)?)$", re.M)
SUMMARY_RE = re.compile(r"pyusdt: (\d+) events, (\d+) lost")
# A probe's summary line names its losses only when it has some.
PROBE_LINE_RE = re.compile(r"^\s+(\S+:\S+)\s+(\d+) events\b(?:.*?\blost=(\d+))?", re.M)
LOST_RE = re.compile(r"Lost (\d+) events")


FLOOR = "floor-strings"
FLOOR_TS = "floor-strings-ts"
FLOORS = (FLOOR, FLOOR_TS)


def modes(settings: dict) -> tuple:
    return ("none",) + COUNTS + FLOORS + ("pyusdt",) + (PRINTFS if settings["printf"] else ())


def program_seconds(text: str, what: str) -> float:
    found = SECONDS_RE.findall(text)
    if not found:
        raise BenchError(f"{what}: the program printed no time: {text.strip()[-300:]!r}")
    return float(found[-1])


def run_none(cmd: list, tmp: str) -> dict:
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"none: the program failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    return {"program_s": program_seconds(r.stdout, "none"), "wall_s": wall}


def floor_sites() -> list:
    """(site, semaphore, cookie) of each probe for floor.run_strings."""
    return [(floor.site_offset(PYTHON, *p.split(":")), floor.site_offset(PYTHON, *p.split(":"), semaphore=True),
             floor.strings_cookie(PYTHON, *p.split(":"))) for p in PROBES]


def run_floor(loader: str, sites: list, sizes: dict, cmd: list, tmp: str, stamp: bool = False) -> dict:
    t0 = time.monotonic()
    got = floor.run_strings(loader, PYTHON, sites, sizes["compact"], sizes["str_len"], cmd, cwd=tmp, stamp=stamp)
    wall = time.monotonic() - t0
    return {"program_s": program_seconds(got["stdout"], FLOOR_TS if stamp else FLOOR), "wall_s": wall,
            "consumed": got["consumed"], "dropped": got["dropped"],
            "record_bytes": sizes["compact"] + 2 * sizes["str_len"]}


def run_bpftrace(peer: str, kind: str, cmd: list, tmp: str) -> dict:
    what = peers.mode(peer, kind)
    out_path = os.path.join(tmp, f"{what}.out")
    if kind == "count":
        program = " ".join(f"usdt:{PYTHON}:{p} {{ @{p.split(':')[1]} = count(); }}" for p in PROBES)
    else:
        program = " ".join(f'usdt:{PYTHON}:{p} {{ printf("%s %s %d\\n", str(arg0), str(arg1), arg2); }}'
                           for p in PROBES)
    argv, env = peers.command(peer, "-o", out_path, "-e", program, "-c", " ".join(cmd))
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=tmp)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"{what}: bpftrace failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    res = {"program_s": program_seconds(r.stdout, what), "wall_s": wall}
    with open(out_path, errors="replace") as f:
        text = f.read()
    os.unlink(out_path)
    if kind == "count":
        hits = {p: re.search(rf"^@{p.split(':')[1]}: (\d+)$", text, re.M) for p in PROBES}
        if not all(hits.values()):
            raise BenchError(f"{what}: no counts in its output: {text.strip()[-300:]!r}")
        res["hits"] = {p: int(m.group(1)) for p, m in hits.items()}
    else:
        # Every line but bpftrace's own messages is an event (file names
        # start with "/" or "<frozen ...>").
        res["lines"] = sum(1 for line in text.splitlines()
                           if line and not line.startswith(("Attaching ", "Lost ")))
        res["lost"] = sum(int(x) for x in LOST_RE.findall(text + r.stderr))
    return res


def run_pyusdt(cmd: list, tmp: str) -> dict:
    argv = pyusdt_cli() + ["trace", "-c", " ".join(cmd), *PROBES, "-s", "0", "-s", "1"]
    # Its text through a pipe, as bpftrace's stdout is read: the program
    # inherits the tracer's stdout, and one that is a file the tracer has
    # already written events to makes CPython's TextIOWrapper call its
    # encoder's setstate() at start-up, a python:function__entry the other
    # modes' program does not fire.
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=600, cwd=tmp)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise BenchError(f"pyusdt failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    text = r.stdout
    total = SUMMARY_RE.search(r.stderr)
    if not total:
        raise BenchError(f"pyusdt: no summary line on stderr: {r.stderr.strip()[-500:]!r}")
    per_probe = {m.group(1): (int(m.group(2)), int(m.group(3) or 0)) for m in PROBE_LINE_RE.finditer(r.stderr)}
    return {"program_s": program_seconds(text, "pyusdt"), "wall_s": wall,
            "received": int(total.group(1)), "lost": int(total.group(2)),
            "per_probe": {p: {"received": per_probe.get(p, (0, 0))[0], "lost": per_probe.get(p, (0, 0))[1]}
                          for p in PROBES},
            "lines": sum(1 for line in text.splitlines() if any(p in line for p in PROBES))}


def run(settings: dict, tmp: str, log) -> dict:
    peers.ensure(log)
    if not os.access(PYTHON, os.X_OK):
        raise BenchError(f"{PYTHON} is missing (Debian's python3.11 carries the python:* probes)")
    script = os.path.join(tmp, "pyburst.py")
    with open(script, "w") as f:
        f.write(CODE + "\n")
    cmd = [PYTHON, "-B", script]
    all_modes = modes(settings)
    loader, sites, sizes = floor.build(tmp), floor_sites(), floor.record_sizes()
    # Every mode runs the program in the same working directory (the
    # program's start-up depends on it: seen, 1 more python:function__entry
    # with pyusdt in tmp than with bpftrace in bench/).
    runners = {"none": lambda: run_none(cmd, tmp), "pyusdt": lambda: run_pyusdt(cmd, tmp),
               FLOOR: lambda: run_floor(loader, sites, sizes, cmd, tmp),
               FLOOR_TS: lambda: run_floor(loader, sites, sizes, cmd, tmp, stamp=True)}
    for p in peers.PEERS:
        runners[peers.mode(p, "count")] = lambda p=p: run_bpftrace(p, "count", cmd, tmp)
        runners[peers.mode(p, "printf")] = lambda p=p: run_bpftrace(p, "printf", cmd, tmp)
    runs = {m: [] for m in all_modes}
    for r in range(settings["repeat"]):
        for m in all_modes:
            res = runners[m]()
            runs[m].append(res)
            extra = ""
            if "hits" in res:
                extra = " hits " + ", ".join(f"{p} {n:,}" for p, n in res["hits"].items())
            elif m == "pyusdt":
                extra = f" received {res['received']:,} lost {res['lost']:,}, {res['lines']:,} lines written"
            elif "lines" in res:
                extra = f" lines {res['lines']:,} lost {res['lost']:,}"
            elif m in FLOORS:
                extra = f" consumed {res['consumed']:,} dropped {res['dropped']:,}"
            log(f"pystrings round {r + 1}/{settings['repeat']} {m:<20} program {res['program_s']:.3f} s, "
                f"wall {res['wall_s']:.2f} s;{extra}")
    return summarize(runs, all_modes, settings)


def summarize(runs: dict, all_modes: tuple, settings: dict) -> dict:
    med = {m: median([x["program_s"] for x in runs[m]]) for m in all_modes}
    wall = {m: median([x["wall_s"] for x in runs[m]]) for m in all_modes}
    # The kernel's hits per probe: bpftrace's in-kernel counts, the same in every run of every peer.
    kernel = {p: sorted({x["hits"][p] for c in COUNTS for x in runs[c]}) for p in PROBES}
    py = runs["pyusdt"]
    exact, off_by = [], []
    for x in py:
        # received + lost - the kernel's hits, per probe (0: every hit accounted for)
        diff = {p: x["per_probe"][p]["received"] + x["per_probe"][p]["lost"] - kernel[p][0] for p in PROBES}
        off_by.append(diff)
        exact.append(all(len(kernel[p]) == 1 and not diff[p] for p in PROBES) and x["lines"] == x["received"])
    out = {
        "repeat": settings["repeat"], "modes": list(all_modes), "python": PYTHON, "code": CODE,
        "bpftrace_versions": peers.versions(),
        "program_s": med, "wall_s": wall,
        "program_s_runs": {m: [x["program_s"] for x in runs[m]] for m in all_modes},
        "kernel_hits": kernel,
        "pyusdt": {"received": [x["received"] for x in py], "lost": [x["lost"] for x in py],
                   "lines": [x["lines"] for x in py], "per_probe": [x["per_probe"] for x in py],
                   "exact": exact, "accounted_minus_hits": off_by},
        "ratios": {**{f"pyusdt / {c}": med["pyusdt"] / med[c] for c in COUNTS},
                   **{f"{f} / {c}": med[f] / med[c] for f in FLOORS for c in COUNTS},
                   **{f"pyusdt / {f}": med["pyusdt"] / med[f] for f in FLOORS}},
        # The floors' records: consumed + dropped is every hit of both probes.
        "floors": {f: {"record_bytes": runs[f][0]["record_bytes"],
                       "consumed": [x["consumed"] for x in runs[f]], "dropped": [x["dropped"] for x in runs[f]],
                       "exact": [x["consumed"] + x["dropped"] == sum(kernel[p][0] for p in PROBES) for x in runs[f]]}
                   for f in FLOORS},
        "ratios_added": {f"pyusdt / {c}": (med["pyusdt"] - med["none"]) / (med[c] - med["none"])
                         if med[c] > med["none"] else float("nan") for c in COUNTS},
        "per_round": {c: [a["program_s"] / b["program_s"] for a, b in zip(py, runs[c])] for c in COUNTS},
    }
    for m in PRINTFS:
        if m in runs:
            out.setdefault("printf", {})[m] = {"lines": [x["lines"] for x in runs[m]],
                                               "lost": [x["lost"] for x in runs[m]]}
            out["ratios"][f"{m} / pyusdt"] = med[m] / med["pyusdt"]
    return out


def _hits_text(res: dict) -> str:
    return ", ".join(f"{p} " + "/".join(f"{n:,}" for n in ns) for p, ns in res["kernel_hits"].items())


def markdown(res: dict) -> str:
    med, wall, py = res["program_s"], res["wall_s"], res["pyusdt"]
    out = [f"`{res['python']} -B SCRIPT`, SCRIPT the one line `{res['code']}`; median of {res['repeat']} rounds "
           "(every mode once per round, in turn).  \"program\" is what the program prints (its own clock around "
           "the imports); \"wall\" is from spawning the tracer (or the program) to its exit.", "",
           "| mode | program (s) | per round | wall (s) | x none (program) |", "|---|---:|---|---:|---:|"]
    for m in res["modes"]:
        per = ", ".join(f"{x:.3f}" for x in res["program_s_runs"][m])
        out.append(f"| {m} | {med[m]:.3f} | {per} | {wall[m]:.2f} | {med[m] / med['none']:.2f} |")
    out.append("")
    for p, c in zip(peers.PEERS, COUNTS):
        r = res["ratios"][f"pyusdt / {c}"]
        out.append(f"- pyusdt / {peers.label(p, 'count')} (the in-kernel floor), program time: **{r:.2f}x** "
                   f"(target <= {TARGET_VS_COUNT}x: {'PASS' if r <= TARGET_VS_COUNT else 'FAIL'}; per round "
                   + ", ".join(f"{x:.2f}" for x in res["per_round"][c])
                   + f"); of the time added to the untraced program: {res['ratios_added'][f'pyusdt / {c}']:.2f}x")
    for f, name, what in ((FLOOR, "The strings floor", "both strings, nothing else"),
                          (FLOOR_TS, "The strings floor with a timestamp", "both strings and a timestamp")):
        fl = res["floors"][f]
        out.append(f"- {name} ({fl['record_bytes']} B records with {what}): "
                   + ", ".join(f"{res['ratios'][f'{f} / {c}']:.2f}x {peers.label(p, 'count')}"
                               for p, c in zip(peers.PEERS, COUNTS))
                   + f"; pyusdt / it: **{res['ratios'][f'pyusdt / {f}']:.2f}x**.  Consumed "
                   + ", ".join(f"{x:,}" for x in fl["consumed"]) + "; dropped "
                   + ", ".join(f"{x:,}" for x in fl["dropped"])
                   + "; every hit accounted for: " + ", ".join(str(x) for x in fl["exact"]) + ".")
    lost = py["lost"]
    out += [f"- The kernel's hits (bpftrace's counts, every run of both peers): {_hits_text(res)}.",
            "- pyusdt, per run: received " + ", ".join(f"{x:,}" for x in py["received"])
            + "; lost " + ", ".join(f"{x:,}" for x in lost)
            + "; lines written " + ", ".join(f"{x:,}" for x in py["lines"])
            + f" (target: 0 lost at defaults: {'PASS' if max(lost) == 0 else 'FAIL'}).",
            "- Exact (received + lost == the kernel's hits, per probe, and one line written per event received): "
            + ", ".join(str(x) for x in py["exact"]) + "; received + lost - hits per run: "
            + "; ".join(", ".join(f"{p} {d:+d}" for p, d in diff.items()) for diff in py["accounted_minus_hits"])
            + "."]
    for m, v in res.get("printf", {}).items():
        out.append(f"- {m}: {res['ratios'][f'{m} / pyusdt']:.2f}x pyusdt's program time; lines "
                   + ", ".join(f"{x:,}" for x in v["lines"]) + "; lost " + ", ".join(f"{x:,}" for x in v["lost"]) + ".")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    labels = [f"pyusdt\n/ bt {p} count" for p in peers.PEERS] + ["pyusdt\n/ floor"]
    values = [res["ratios"][f"pyusdt / {c}"] for c in COUNTS] + [res["ratios"][f"pyusdt / {FLOOR}"]]
    for p, m in zip(peers.PEERS, PRINTFS):
        if f"{m} / pyusdt" in res["ratios"]:
            labels.append(f"bt {p} printf\n/ pyusdt")
            values.append(res["ratios"][f"{m} / pyusdt"])
    bar_panel(ax, labels, values, "program time, ratio of medians", "Python burst with strings")


def headline(res: dict) -> list:
    med, py = res["program_s"], res["pyusdt"]
    out = [("program time (s): " + " / ".join(res["modes"]), " / ".join(f"{med[m]:.3f}" for m in res["modes"]))]
    for p, c in zip(peers.PEERS, COUNTS):
        out.append((f"pyusdt / {peers.label(p, 'count')} (program time; the count is the in-kernel floor)",
                    f"**{res['ratios'][f'pyusdt / {c}']:.2f}x**"))
    out.append((f"pyusdt / {FLOOR} (program time; reading both strings into a ring record is the floor of "
                "streaming them)", f"**{res['ratios'][f'pyusdt / {FLOOR}']:.2f}x** (the floor: "
                + ", ".join(f"{res['ratios'][f'{FLOOR} / {c}']:.2f}x {peers.label(p, 'count')}"
                            for p, c in zip(peers.PEERS, COUNTS))
                + "; with a timestamp: " + ", ".join(f"{res['ratios'][f'{FLOOR_TS} / {c}']:.2f}x" for c in COUNTS)
                + ")"))
    out.append(("pyusdt events received / lost (max per run); exact against the kernel's hits",
                f"{min(py['received']):,} / {max(py['lost']):,}; {all(py['exact'])}"))
    return out
