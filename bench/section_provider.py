"""Suite section "provider": what probe.fire() costs a Python program.

Runs bench/provider.py (see its docstring and bench/README.md) in its own
process, which loads two providers and the floor extension into itself, and
reads back its JSON: untraced fire against a no-op method call, and traced
(counted) fire against the same uprobe hit from a C loop, measured in
interleaved chunks with a hand-written extension as the floor.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from suite_common import BenchError, bar_panel

NAME = "provider"
TITLE = "Providers: probe.fire() from Python"
HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"full": {"repeat": 5, "n_fast": 2_000_000, "n_traced": 200_000, "cycles": 120},
            "quick": {"repeat": 1, "n_fast": 200_000, "n_traced": 20_000, "cycles": 20}}


def run(settings: dict, tmp: str, log) -> dict:
    out = os.path.join(tmp, "provider.json")
    argv = [sys.executable, os.path.join(HERE, "provider.py"), "--repeat", str(settings["repeat"]),
            "--n-fast", str(settings["n_fast"]), "--n-traced", str(settings["n_traced"]),
            "--cycles", str(settings["cycles"]), "--json", out]
    p = subprocess.run(argv, capture_output=True, text=True, cwd=tmp)
    if p.returncode != 0:
        raise BenchError(f"provider.py exited with {p.returncode}: {(p.stderr or p.stdout)[-600:]}")
    with open(out) as f:
        res = json.load(f)
    for line in p.stdout.splitlines():
        if line.startswith("interleaved ") or line.lstrip().startswith("["):
            log(f"provider: {line.strip()}")
    if not all(t["pass"] for k, t in res["targets"].items() if k.startswith("every traced run")):
        raise BenchError("provider.py: a traced run did not count exactly what was fired")
    return res


def _net(res: dict, mode: str) -> float:
    return res["modes"][mode]["net_median"]


def markdown(res: dict) -> str:
    cfg = res["config"]
    inter = res["interleaved"]
    out = [f"Per call, in the benchmark's Python process; untraced loops n={cfg['n_fast']}, traced "
           f"n={cfg['n_traced']}, median of {cfg['repeat']} rounds; the traced target from "
           f"{cfg['cycles']} interleaved cycles of {cfg['chunk']} calls (fire, floor, C, counted at once).", "",
           "| | net ns | ratio |", "|---|---:|---:|",
           f"| no-op method `obj.noop(1, 2, 3)` | {_net(res, 'noop method'):.1f} | 1.00 |"]
    for mode in ("enabled", "fire off nop5", "fire off nop1"):
        out.append(f"| `{mode}` | {_net(res, mode):.1f} | {_net(res, mode) / _net(res, 'noop method'):.2f}x noop |")
    out += ["", "| traced, counted | fire ns | floor ns | C hit ns | fire / C | floor / C | fire / floor |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for site, m in inter.items():
        out.append(f"| {site} | {m['fire ns']:.0f} | {m['ext ns']:.0f} | {m['C ns']:.0f} | **{m['fire/C']:.3f}** | "
                   f"{m['ext/C']:.3f} | {m['fire/ext']:.3f} |")
    out += ["", "Targets: " + "; ".join(
        f"{k}: {'PASS' if t['pass'] else 'FAIL'}" + (f" ({t['value']:.3f}x)" if t["value"] is not None else "")
        for k, t in res["targets"].items()) + ".",
        "- The floor is a hand-written CPython extension calling a sys/sdt.h probe (bench/provider_ext.c): "
        "what any Python provider pays, with no pyusdt code in the path."]
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    inter = res["interleaved"]
    labels = ["pyusdt fire off\n/ noop method"] + [f"pyusdt fire {s}\n/ C hit" for s in inter]
    values = [_net(res, "fire off nop5") / _net(res, "noop method")] + [m["fire/C"] for m in inter.values()]
    bar_panel(ax, labels, values, "ratio (targets: 2, 1.2)", "Providers: probe.fire() cost")


def headline(res: dict) -> list:
    inter = res["interleaved"]
    rows = [("untraced fire / no-op method call (nop5)",
             f"**{_net(res, 'fire off nop5') / _net(res, 'noop method'):.2f}x** (target <= 2)")]
    for site, m in inter.items():
        rows.append((f"traced fire / C hit ({site}, interleaved)",
                     f"**{m['fire/C']:.3f}x** (target <= 1.2; floor {m['ext/C']:.3f}x)"))
    return rows
