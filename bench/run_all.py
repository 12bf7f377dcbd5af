#!/usr/bin/env python3
"""pyusdt benchmark suite: every section, one command, results in bench/RESULTS.md.

    sudo /path/to/venv/bin/python bench/run_all.py [--quick] [--only SECTIONS] [--out DIR]

Sections (see bench/README.md for what each measures and how):

  stream     ns per fire: no tracer, bpftrace count(), bpftrace printf, pyusdt streaming
  rates      highest sustained event rate with zero loss, per tracer
  aggregate  in-kernel count and hist: pyusdt against bpftrace
  scale      600 probes at once: time until attached, memory, exact counts, detach time
  startup    time from starting the tracer to the first event printed, and where pyusdt's goes
  pystrings  python3.11 importing a dozen packages, both python probes traced with their strings
  provider   probe.fire() from Python: untraced against a no-op call, traced against the C hit
  postgres   pgbench throughput with no tracer, pyusdt latency, bpftrace latency

The default (full) run writes RESULTS.md, results.png and results.json into
bench/; --quick (a smoke run, smaller and fewer repeats) and --only write into
/tmp/pyusdt-bench unless --out says otherwise, so that a trial run never
overwrites the committed results.  --merge keeps the other sections of an
earlier results.json in the output directory (to re-run one section).

Needs root, gcc, systemtap-sdt-dev, bpftrace, PostgreSQL 15 (postgres
section), matplotlib (the plot; without it the report is written without
one).  Run it with the Python that has pyusdt installed, from any directory.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

SECTIONS = ("stream", "rates", "aggregate", "scale", "startup", "pystrings", "provider", "postgres")
DEV_OUT = "/tmp/pyusdt-bench"


def section_module(name: str):
    return importlib.import_module(f"section_{name}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_section(name: str, mode: str, overrides: dict) -> dict:
    from suite_common import NoiseMeter, loadavg

    mod = section_module(name)
    settings = dict(mod.SETTINGS[mode])
    settings.update((k, v) for k, v in overrides.items() if k in settings)
    entry = {"title": mod.TITLE, "mode": mode, "settings": settings, "load_before": loadavg(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log(f"== {name}: {mod.TITLE} {settings}")
    noise = NoiseMeter()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"pyusdt-bench-{name}-") as tmp:
        os.chmod(tmp, 0o755)  # the postgres section's server user must reach it
        try:
            entry["result"] = mod.run(settings, tmp, log)
        except Exception as e:  # one section failing must not lose the others
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()
            log(f"{name} FAILED: {entry['error']}")
    entry["elapsed_s"] = time.monotonic() - t0
    entry["background"] = noise.stop()
    entry["load_after"] = loadavg()
    from report import foreign_pct
    log(f"== {name} done in {entry['elapsed_s']:.0f} s, load {entry['load_before'][0]:.2f} -> "
        f"{entry['load_after'][0]:.2f}, other load {foreign_pct(entry):.0f}% of a CPU")
    return entry


def write_report(out_dir: str) -> int:
    """RESULTS.md and results.png from out_dir/results.json."""
    import report

    json_path = os.path.join(out_dir, "results.json")
    try:
        with open(json_path) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        print(f"run_all.py: cannot read {json_path}: {e}", file=sys.stderr)
        return 1
    png = report.write_plot(results, os.path.join(out_dir, "results.png"))
    md_path = os.path.join(out_dir, "RESULTS.md")
    with open(md_path, "w") as f:
        f.write(report.markdown(results, png_name=os.path.basename(png) if png else None))
    log(f"wrote {md_path}" + (f", {png}" if png else " (no plot: matplotlib missing)") + f" from {json_path}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (~2 min): smaller sizes, fewer repeats")
    ap.add_argument("--only", metavar="SECTIONS",
                    help="comma-separated subset of: " + ", ".join(SECTIONS))
    ap.add_argument("--out", metavar="DIR", help=f"where to write the report (default: bench/ for a full "
                                                 f"run of every section, {DEV_OUT} otherwise)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the sections not run from the results.json already in the output directory")
    ap.add_argument("--repeat", type=int, help="override every section's number of rounds")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: rewrite RESULTS.md and results.png from the results.json in the "
                         "output directory")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one setting of a section (a Python literal), e.g. rates.seconds=5; "
                         "repeatable; see each section's SETTINGS")
    opts = ap.parse_args(argv)
    names = list(SECTIONS)
    if opts.only:
        names = [s.strip() for s in opts.only.split(",") if s.strip()]
        bad = [s for s in names if s not in SECTIONS]
        if bad:
            ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    if opts.repeat is not None and opts.repeat < 1:
        ap.error("--repeat must be at least 1")
    if opts.report_only:
        return write_report(opts.out or HERE)
    if os.geteuid() != 0:
        print("run_all.py: needs root (BPF, uprobes, a PostgreSQL server user)", file=sys.stderr)
        return 2
    try:
        import pyusdt._native  # noqa: F401  (the installed package, built)
    except ImportError as e:
        print(f"run_all.py: pyusdt is not installed for {sys.executable}: {e}", file=sys.stderr)
        return 2
    out_dir = opts.out or (HERE if not opts.quick and not opts.only else DEV_OUT)
    os.makedirs(out_dir, exist_ok=True)
    mode = "quick" if opts.quick else "full"
    overrides = {name: ({"repeat": opts.repeat} if opts.repeat else {}) for name in SECTIONS}
    for item in opts.set:
        key, eq, value = item.partition("=")
        section, dot, setting = key.partition(".")
        if not eq or not dot or section not in SECTIONS:
            ap.error(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(SECTIONS)}")
        if setting not in section_module(section).SETTINGS["full"]:
            ap.error(f"--set {item!r}: {section} has no setting {setting!r}")
        try:
            overrides[section][setting] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[section][setting] = value

    import peers
    from machine import machine_info
    from suite_common import ensure_tracefs, loadavg

    ensure_tracefs()
    try:
        peers.ensure(log)  # both bpftrace peers, before any section is timed
    except Exception as e:
        log(f"bpftrace peers not available: {e}")
    results = {"sections": {}}
    json_path = os.path.join(out_dir, "results.json")
    if opts.merge and os.path.exists(json_path):
        with open(json_path) as f:
            results = json.load(f)
    command = " ".join(["python", "bench/run_all.py"] + (argv if argv is not None else sys.argv[1:]))
    run_info = {"command": command, "mode": mode, "sections_run": names, "machine": machine_info(),
                "load_before": loadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    log(f"pyusdt bench suite, {mode} mode, sections {', '.join(names)}; load {run_info['load_before']}")
    t0 = time.monotonic()
    for name in names:
        results["sections"][name] = run_section(name, mode, overrides[name])
        results["sections"][name]["command"] = command
    run_info["elapsed_s"] = time.monotonic() - t0
    run_info["load_after"] = loadavg()
    results["run"] = run_info

    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    log(f"suite done in {run_info['elapsed_s']:.0f} s; load {run_info['load_before']} -> {run_info['load_after']}")
    write_report(out_dir)
    failed = [n for n in names if "error" in results["sections"][n]]
    if failed:
        log(f"FAILED sections: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
