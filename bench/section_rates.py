"""Suite section "rates": the highest sustained event rate each tracer takes without loss.

bench/paced.c fires bench:fire(i, i*3, i & 0xffff) at R events/s in total
from T threads (1 ms ticks: the events due in a tick fired back to back,
then a sleep to the next tick) for a few seconds, or as fast as they can
with R = 0.  One trial = one run of it under one tracer, started by the
tracer (held until attached):

  pyusdt             Tracer.attach_command + batches(), every event into numpy
  bpftrace-P-printf  printf("%d %d %d\\n", arg0, arg1, arg2) to a file (-o)
  bpftrace-P-count   @ = count(): aggregated in the kernel, nothing to lose

for each bpftrace peer P (bench/peers.py: 0.17 and 0.23).

A trial is clean when the tracer lost nothing (pyusdt: lost counter 0 and
events received == fired, argument sums equal to the workload's; bpftrace
printf: no "Lost N events" message and N lines == fired) and the workload
kept its schedule (achieved rate >= 98% of R).

The search runs for each producer thread count in the settings: one
thread (the usual case: the reader has a CPU of its own on this 2-CPU
machine) and as many threads as CPUs (the producers compete with the reader
for CPU, which is where a streaming tracer can fall behind).

Search, per streaming tracer (see search()): unpaced trials (R = 0) first,
1 + C of them: if all are clean, the tracer never lost at the highest rate
the workload reaches under it and that rate (their median) is reported
("workload-bound").  Otherwise R doubles from a start rate while clean,
then bisects between the last clean and the first failed rate for a few
steps; the answer is re-run C times (confirmations) and a failure there
makes it the new upper bound, the search going on below.  So the reported
rate was clean in 1 + C trials.  The searches (pyusdt's and each peer's
printf) alternate trial by trial, so drift in the machine hits all alike.
bpftrace count cannot lose: its figure is the unpaced workload's own rate
under it (median of a few runs), reported as workload-bound.
"""
from __future__ import annotations

import os
import re
import subprocess

import peers
import stream
from suite_common import BenchError, bar_panel, compile_c, median

NAME = "rates"
TITLE = "Highest sustained rate with zero loss"
HERE = os.path.dirname(os.path.abspath(__file__))
PACED_SRC = os.path.join(HERE, "paced.c")
PROBE = stream.PROBE
KEEP_UP = 0.98  # a trial kept its schedule when it achieved >= 98% of the rate asked
RESULT_RE = re.compile(r"fired=(\d+) elapsed_ns=(\d+) rate=([0-9.]+) max_behind_ns=(\d+) "
                       r"rate_asked=\S+ sum0=(\d+) sum1=(\d+) sum2=(\d+)")
SETTINGS = {
    "full": {"seconds": 3.0, "threads": [1, os.cpu_count() or 2], "start_rate": 25_000, "bisect_steps": 4,
             "confirm": 2, "count_repeat": 3, "ringbuf_bytes": None},
    "quick": {"seconds": 1.0, "threads": [1, os.cpu_count() or 2], "start_rate": 50_000, "bisect_steps": 2,
              "confirm": 0, "count_repeat": 1, "ringbuf_bytes": None},
}
PRINTFS = tuple(peers.mode(p, "printf") for p in peers.PEERS)
COUNTS = tuple(peers.mode(p, "count") for p in peers.PEERS)
STREAMERS = ("pyusdt",) + PRINTFS


def _read_result(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise BenchError(f"{what}: the paced workload left no result") from None
    m = RESULT_RE.search(text)
    if not m:
        raise BenchError(f"{what}: unreadable paced result {text!r}")
    return {"fired": int(m.group(1)), "elapsed_s": int(m.group(2)) / 1e9, "achieved": float(m.group(3)),
            "max_behind_ms": int(m.group(4)) / 1e6, "sums": [int(m.group(i)) for i in (5, 6, 7)]}


def _verdict(res: dict, rate: float) -> dict:
    kept_up = rate == 0 or res["achieved"] >= KEEP_UP * rate
    lossless = res["lost"] == 0 and res["received"] == res["fired"] and res.get("exact", True)
    res["kept_up"] = kept_up
    res["lossless"] = lossless
    res["clean"] = kept_up and lossless
    res["why"] = ("" if res["clean"] else
                  "; ".join(w for w in (
                      "" if lossless else f"lost {res['lost']}, received {res['received']} of {res['fired']}",
                      "" if kept_up else f"behind: {res['achieved']:.0f}/s of {rate:.0f}/s") if w))
    res["rate_asked"] = rate
    return res


class Paced:
    """The paced workload binary with a trial's duration and thread count."""

    def __init__(self, exe: str, seconds: float, threads: int, ringbuf_bytes=None) -> None:
        self.exe, self.seconds, self.threads = exe, seconds, threads
        self.ringbuf_bytes = ringbuf_bytes  # pyusdt's ring (None: its default); for investigation

    def argv(self, rate: float, result_path: str) -> list:
        return [self.exe, f"{rate:.0f}", f"{self.seconds:g}", str(self.threads), result_path]


def trial_pyusdt(w: Paced, rate: float, tmp: str) -> dict:
    from pyusdt import Tracer

    res_path = os.path.join(tmp, "paced-pyusdt.result")
    if os.path.exists(res_path):
        os.unlink(res_path)
    t = Tracer(**({"ringbuf_bytes": w.ringbuf_bytes} if w.ringbuf_bytes else {}))
    try:
        held = t.attach_command(w.argv(rate, res_path), PROBE)
        t.start()
        rows = 0
        sums = [0, 0, 0]
        for batch in t.batches(timeout=0.1):
            a = batch.array["args"]
            s = a[:, :3].sum(axis=0)
            for i in range(3):
                sums[i] += int(s[i])
            rows += len(a)
        lost = t.lost
        hits = sum(s.hits for s in t.stats() if s.probe == PROBE)
        held.wait()
    finally:
        t.close()
    res = _read_result(res_path, "pyusdt")
    res.update(received=rows, lost=lost, hits=hits,
               exact=hits == res["fired"] and (lost != 0 or sums == res["sums"]))
    return _verdict(res, rate)


def _bpftrace(w: Paced, rate: float, tmp: str, program: str, what: str, peer: str) -> tuple:
    out_path = os.path.join(tmp, f"paced-{what}.out")
    res_path = os.path.join(tmp, f"paced-{what}.result")
    for p in (out_path, res_path):
        if os.path.exists(p):
            os.unlink(p)
    cmd, env = peers.command(peer, "-o", out_path, "-e", program, "-c", " ".join(w.argv(rate, res_path)))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if r.returncode != 0:
        raise BenchError(f"{what}: bpftrace failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return _read_result(res_path, what), out_path, r.stdout + r.stderr


def trial_bpftrace_printf(w: Paced, rate: float, tmp: str, peer: str) -> dict:
    program = f'usdt:{w.exe}:{PROBE} {{ printf("%d %d %d\\n", arg0, arg1, arg2); }}'
    res, out_path, console = _bpftrace(w, rate, tmp, program, peers.mode(peer, "printf"), peer)
    lines = lost = 0
    with open(out_path, "rb") as f:
        for line in f:
            if line[:1].isdigit():
                lines += 1
            else:
                m = re.search(rb"Lost (\d+) events", line)
                if m:
                    lost += int(m.group(1))
    os.unlink(out_path)
    # bpftrace reports lost events in its output; look at the console too.
    lost += sum(int(x) for x in re.findall(r"Lost (\d+) events", console))
    res.update(received=lines, lost=lost)
    return _verdict(res, rate)


def trial_bpftrace_count(w: Paced, rate: float, tmp: str, peer: str) -> dict:
    program = f"usdt:{w.exe}:{PROBE} {{ @ = count(); }}"
    res, out_path, _ = _bpftrace(w, rate, tmp, program, peers.mode(peer, "count"), peer)
    with open(out_path) as f:
        m = re.search(r"^@: (\d+)$", f.read(), re.M)
    os.unlink(out_path)
    if not m:
        raise BenchError(f"{peers.mode(peer, 'count')}: no '@: N' in its output")
    res.update(received=int(m.group(1)), lost=0)
    return _verdict(res, rate)


def _round_rate(r: float) -> int:
    return max(1000, int(round(r / 1000.0)) * 1000)


MAX_CONFIRM_ROUNDS = 3  # re-searches after a failed confirmation, at most


def search(start_rate: int, bisect_steps: int, confirm: int):
    """Generator: yields the rate of the next trial (0 = unpaced) and receives
    its result; returns (zero-loss rate, bound, lowest failed rate).

    A rate counts as the answer only once it has been clean 1 + `confirm`
    times: unpaced trials are run 1 + confirm times up front (all clean:
    workload-bound, the median achieved rate is the answer); a paced answer
    is re-run `confirm` times, and a failure there makes it the new upper
    bound and the search goes on below it."""
    unpaced = []
    for _ in range(1 + confirm):
        unpaced.append((yield 0))
    if all(r["clean"] for r in unpaced):
        return median([r["achieved"] for r in unpaced]), "workload", None
    bad = min(r["achieved"] for r in unpaced if not r["clean"])
    clean_at = set()
    good = 0
    rate = start_rate
    while rate < bad:
        res = yield rate
        if not res["clean"]:
            bad = rate
            break
        clean_at.add(rate)
        good = rate
        rate *= 2
    steps = bisect_steps
    for _ in range(MAX_CONFIRM_ROUNDS):
        for _ in range(steps):
            mid = _round_rate((good + bad) / 2)
            if mid <= good or mid >= bad:
                break
            res = yield mid
            if res["clean"]:
                clean_at.add(mid)
                good = mid
            else:
                bad = mid
        if good == 0:
            break
        for _ in range(confirm):
            if not (yield good)["clean"]:
                clean_at.discard(good)
                bad = good
                good = max((r for r in clean_at if r < bad), default=0)
                break
        else:
            return good, "loss", bad
        steps = 2
    return good, "loss", bad


TRIALS = dict({"pyusdt": trial_pyusdt},
              **{peers.mode(p, "printf"): lambda w, r, t, p=p: trial_bpftrace_printf(w, r, t, p) for p in peers.PEERS},
              **{peers.mode(p, "count"): lambda w, r, t, p=p: trial_bpftrace_count(w, r, t, p) for p in peers.PEERS})


def run(settings: dict, tmp: str, log) -> dict:
    peers.ensure(log)
    exe = compile_c(PACED_SRC, f"{tmp}/paced", "-pthread")
    result = {"seconds": settings["seconds"], "keep_up": KEEP_UP, "by_threads": {}}
    for threads in settings["threads"]:
        w = Paced(exe, settings["seconds"], threads, settings.get("ringbuf_bytes"))
        result["by_threads"][str(threads)] = run_threads(w, settings, tmp, log)
    return result


def run_threads(w: Paced, settings: dict, tmp: str, log) -> dict:
    history = {m: [] for m in TRIALS}

    def do(mode: str, rate: float) -> dict:
        res = TRIALS[mode](w, rate, tmp)
        history[mode].append(res)
        what = "unpaced" if rate == 0 else f"{rate:>9,.0f}/s"
        log(f"rates {w.threads} thread(s) {mode:<15} {what:>11}: achieved {res['achieved']:>9,.0f}/s "
            f"received {res['received']:,}/{res['fired']:,} lost {res['lost']:,} "
            + ("clean" if res["clean"] else f"NOT CLEAN ({res['why']})"))
        return res

    # The streaming searches advance one trial at a time, in turn, with a
    # bpftrace count() run of each peer in between while some are due.
    searches = {m: search(settings["start_rate"], settings["bisect_steps"], settings["confirm"])
                for m in STREAMERS}
    pending = {m: next(g) for m, g in searches.items()}
    outcome = {}
    count_runs = {c: [] for c in COUNTS}
    while pending:
        for m in list(pending):
            try:
                pending[m] = searches[m].send(do(m, pending[m]))
            except StopIteration as done:
                outcome[m] = done.value
                del pending[m]
        for c in COUNTS:
            if len(count_runs[c]) < settings["count_repeat"]:
                count_runs[c].append(do(c, 0))
    for c in COUNTS:
        while len(count_runs[c]) < settings["count_repeat"]:
            count_runs[c].append(do(c, 0))

    keys = ("rate_asked", "achieved", "fired", "received", "lost", "kept_up", "clean", "max_behind_ms")
    tracers = {}
    for m in STREAMERS:
        rate, bound, bad = outcome[m]
        unpaced = [r for r in history[m] if r["rate_asked"] == 0]
        at_answer = [r for r in history[m] if r["rate_asked"] == (0 if bound == "workload" else rate)]
        tracers[m] = {
            "zero_loss_rate": rate, "bound": bound, "first_failed_rate": bad,
            "unpaced_rate": median([r["achieved"] for r in unpaced]),
            "unpaced_lost": max(r["lost"] for r in unpaced),
            "unpaced_clean": f"{sum(r['clean'] for r in unpaced)}/{len(unpaced)}",
            "clean_at_answer": f"{sum(r['clean'] for r in at_answer)}/{len(at_answer)}",
            "trials": [{k: r[k] for k in keys} for r in history[m]],
        }
    for c, cr in count_runs.items():
        rate = median([r["achieved"] for r in cr])
        tracers[c] = {
            "zero_loss_rate": rate, "bound": "workload", "first_failed_rate": None,
            "unpaced_rate": rate, "unpaced_lost": 0, "unpaced_clean": f"{len(cr)}/{len(cr)}",
            "clean_at_answer": f"{len(cr)}/{len(cr)}",
            "exact": all(r["received"] == r["fired"] for r in cr),
            "trials": [{k: r[k] for k in keys} for r in cr],
        }
    # The ceiling: the workload's top rate under the cheapest count().
    top = max(tracers[c]["zero_loss_rate"] for c in COUNTS)
    ratios = {f"{m} / workload max": tracers[m]["zero_loss_rate"] / top for m in STREAMERS}
    for m in PRINTFS:
        rate = tracers[m]["zero_loss_rate"]
        ratios[f"pyusdt / {m}"] = tracers["pyusdt"]["zero_loss_rate"] / rate if rate else float("inf")
    return {"threads": w.threads, "tracers": tracers, "ratios": ratios}


def _describe(t: dict) -> str:
    if t["bound"] == "workload":
        return "never lost: workload-bound (median of its unpaced rates under this tracer)"
    if not t["zero_loss_rate"]:
        return f"lost even at the lowest rate tried ({t['first_failed_rate']:,.0f}/s)"
    return f"lost or slipped at {t['first_failed_rate']:,.0f}/s"


def _trial_text(tr: dict) -> str:
    asked = "max" if tr["rate_asked"] == 0 else f"{tr['rate_asked'] / 1000:.0f}k"
    text = f"{asked}->{tr['achieved'] / 1000:.0f}k"
    if not tr["clean"]:
        missing = tr["fired"] - tr["received"] - tr["lost"]
        why = []
        if tr["lost"]:
            why.append(f"lost {tr['lost']:,}")
        if missing:
            why.append(f"{missing:,} missing unreported")
        if not tr["kept_up"]:
            why.append("slipped")
        text += f" ({', '.join(why)})"
    return text


def markdown(res: dict) -> str:
    out = [f"Paced workload (bench/paced.c), {res['seconds']:g} s per trial; clean = nothing lost and "
           f"achieved >= {res['keep_up']:.0%} of the asked rate.  bpftrace count() aggregates in the "
           "kernel and cannot lose: its rows are the workload's own top rate under it, the ceiling for "
           "every tracer (the floor of the cost per fire).", "",
           "| producer threads | tracer | highest clean rate (events/s) | clean trials at it | how it ended | "
           "unpaced rate under it (median) | unpaced trials clean | lost when unpaced (max) | trials |",
           "|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    for threads, sub in res["by_threads"].items():
        for m in COUNTS + PRINTFS + ("pyusdt",):
            t = sub["tracers"][m]
            desc = ("cannot lose (in-kernel count)" + ("" if t.get("exact", True) else " **count not exact**")
                    if m in COUNTS else _describe(t))
            out.append(f"| {threads} | {m} | {t['zero_loss_rate']:,.0f} | {t['clean_at_answer']} | {desc} | "
                       f"{t['unpaced_rate']:,.0f} | {t['unpaced_clean']} | {t['unpaced_lost']:,} | "
                       f"{len(t['trials'])} |")
    out.append("")
    for threads, sub in res["by_threads"].items():
        r = sub["ratios"]
        out.append(f"- {threads} thread(s): pyusdt / bpftrace printf (highest clean rate): "
                   + ", ".join(f"{peers.label(p)} **{r[f'pyusdt / {m}']:.2f}x**" for p, m in zip(peers.PEERS, PRINTFS))
                   + "; against the workload's top rate under count() (the faster peer's): "
                   + ", ".join(f"{m} {r[f'{m} / workload max']:.2f}" for m in STREAMERS))
    out += ["", "Trials, in order (rate asked -> achieved; max = unpaced):", ""]
    for threads, sub in res["by_threads"].items():
        for m in STREAMERS:
            steps = ", ".join(_trial_text(tr) for tr in sub["tracers"][m]["trials"])
            out.append(f"- {threads} thread(s), {m}: {steps}")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    labels, values = [], []
    for threads, sub in res["by_threads"].items():
        for p, m in zip(peers.PEERS, PRINTFS):
            labels.append(f"pyusdt\n/ bt {p} printf\n{threads} thr")
            values.append(sub["ratios"][f"pyusdt / {m}"])
    bar_panel(ax, labels, values, "highest zero-loss rate, ratio", "Zero-loss sustained rate", log=True)


def headline(res: dict) -> list:
    out = []
    for threads, sub in res["by_threads"].items():
        t = sub["tracers"]

        def fmt(m, t=t):
            x = t[m]
            return f"{x['zero_loss_rate']:,.0f}/s" + (" (workload-bound)" if x["bound"] == "workload" else "")
        shown = ("pyusdt",) + PRINTFS + COUNTS
        out.append((f"{threads} producer thread(s): highest zero-loss rate "
                    + " / ".join(shown) + " (count cannot lose)", " / ".join(fmt(m) for m in shown)))
        for p, m in zip(peers.PEERS, PRINTFS):
            out.append((f"{threads} producer thread(s): pyusdt / {peers.label(p, 'printf')} (zero-loss rate)",
                        f"**{sub['ratios'][f'pyusdt / {m}']:.2f}x**"))
    return out
