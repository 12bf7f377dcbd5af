"""Suite section "postgres": what query-latency tracing costs a real server.

A throwaway PostgreSQL 15 cluster (bench/pg_server.py) is loaded with
`pgbench -i -s SCALE`; each run is `pgbench -n -S -M simple -c C -j J -T S`
(select-only, one query per transaction), and the modes are:

  none      no tracer
  pyusdt    pyusdt latency POSTGRES --start postgresql:query__start --done postgresql:query__done
  bpftrace-P  usdt:POSTGRES:postgresql:query__start { @start[tid] = nsecs; }
              usdt:POSTGRES:postgresql:query__done /@start[tid]/ {
                  @us = hist((nsecs - @start[tid]) / 1000); delete(@start[tid]); }
              for each bpftrace peer P (bench/peers.py: 0.17 and 0.23)

Both tracers attach to the binary's path (every process running it, the
postmaster's backends included), time in microseconds, pair start and done
by thread, and aggregate a log2 histogram in the kernel.  Both probes sit
behind semaphores: a tracer counts as attached once it has raised both
semaphores in the postmaster's memory (read from /proc/PID/mem; the same
test for both tools), and pgbench starts 0.5 s after that.  The tracer is
stopped with SIGINT when pgbench is done.

A baseline that measures: before the rounds, one untimed pgbench run of
the same length warms the server (shared buffers, the OS page cache, the
CPU's caches and frequency), so that no mode's first run pays for that.
Each tracer's figure is the median of its per-round ratios to the untraced
run of the same round (paired: drift between rounds cancels), reported with
their range and with the untraced runs' own spread.  Tracing cannot make
the server faster: a ratio above 1 by more than the untraced spread is
flagged as a measurement that failed, not printed as a result.

Reported: pgbench's tps (excluding connection time) per mode, median of R
rounds (the order of the modes rotates each round), and each tracer's
throughput as a ratio to no tracer; and the queries each tracer timed
against the transactions pgbench completed (select-only: one query per
transaction, plus pgbench's own start-up query; queries still in flight
when -T ends are timed but not counted by pgbench).  Other PostgreSQL
servers running the same binary on the machine are traced too (a path
attach is system-wide): their number is reported, since their queries
would add to the counts.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import time

import aggregate
import peers
from pg_server import POSTGRES, pg_server
from suite_common import BenchError, LineWatcher, bar_panel, interrupt, median, pyusdt_cli

NAME = "postgres"
TITLE = "PostgreSQL 15 under pgbench"
BPFTRACES = tuple(peers.mode(p) for p in peers.PEERS)
TRACERS = ("pyusdt",) + BPFTRACES
MODES = ("none",) + TRACERS
START, DONE = "postgresql:query__start", "postgresql:query__done"
SETTINGS = {
    "full": {"seconds": 10, "clients": 4, "jobs": 2, "scale": 10, "repeat": 5},
    "quick": {"seconds": 3, "clients": 4, "jobs": 2, "scale": 2, "repeat": 2},
}
SETTLE_S = 0.5


class Semaphores:
    """The two probes' semaphores in one process's memory."""

    def __init__(self, pid: int) -> None:
        from pyusdt.discover.probes import probes_at_path

        self.pid = pid
        wanted = {START: None, DONE: None}
        for p in probes_at_path(str(POSTGRES)):
            if p.fullname in wanted and p.sites:
                wanted[p.fullname] = p.sites[0].semaphore_offset
        if not all(wanted.values()):
            raise BenchError(f"{POSTGRES} has no semaphores for {START}/{DONE}")
        self.addrs = [self._address(off) for off in wanted.values()]

    def _address(self, file_offset: int) -> int:
        real = os.path.realpath(POSTGRES)
        with open(f"/proc/{self.pid}/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6 or os.path.realpath(parts[5]) != real:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                off = int(parts[2], 16)
                if off <= file_offset < off + (hi - lo):
                    return lo + file_offset - off
        raise BenchError(f"the semaphore at file offset {file_offset:#x} is not mapped in {self.pid}")

    def values(self) -> list:
        with open(f"/proc/{self.pid}/mem", "rb") as f:
            out = []
            for a in self.addrs:
                f.seek(a)
                out.append(struct.unpack("<H", f.read(2))[0])
            return out


def other_postgres_processes(postmaster: int) -> int:
    """Processes running the postgres binary that are not this cluster's."""
    real = os.path.realpath(POSTGRES)
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == postmaster:
            continue
        try:
            if os.path.realpath(f"/proc/{entry}/exe") != real:
                continue
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid != postmaster:
            n += 1
    return n


def cluster_cpu_s(postmaster: int) -> float:
    """CPU seconds of the postmaster, the children it reaped (backends that
    ended) and its children still running."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> list:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    f = stat(postmaster)
    total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                c = stat(int(entry))
            except OSError:
                continue
            if int(c[1]) == postmaster:
                total += int(c[11]) + int(c[12])
    return total / tick


def parse_pgbench(text: str) -> dict:
    tx = re.search(r"number of transactions actually processed: (\d+)", text)
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    if not tx or not tps:
        raise BenchError(f"unreadable pgbench output: {text[-500:]!r}")
    return {"transactions": int(tx.group(1)), "tps": float(tps.group(1))}


def tracer_argv(mode: str) -> tuple:
    if mode == "pyusdt":
        return pyusdt_cli() + ["latency", str(POSTGRES), "--start", START, "--done", DONE], None
    program = (f"usdt:{POSTGRES}:{START} {{ @start[tid] = nsecs; }} "
               f"usdt:{POSTGRES}:{DONE} /@start[tid]/ {{ @us = hist((nsecs - @start[tid]) / 1000); "
               "delete(@start[tid]); } END { clear(@start); }")
    return peers.command(peers.PEERS[BPFTRACES.index(mode)], "-e", program)


def one_run(mode: str, server, sems: Semaphores, settings: dict, tmp: str) -> dict:
    bench_args = ["-n", "-S", "-M", "simple", "-c", str(settings["clients"]), "-j", str(settings["jobs"]),
                  "-T", str(settings["seconds"])]
    if mode == "none":
        return parse_pgbench(server.pgbench(*bench_args))
    baseline = sems.values()
    argv, env = tracer_argv(mode)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp)
    out, err = LineWatcher(proc.stdout), LineWatcher(proc.stderr)
    try:
        while not all(v > b for v, b in zip(sems.values(), baseline)):
            if proc.poll() is not None:
                raise BenchError(f"{mode} exited ({proc.returncode}) before attaching: {err.text()[-500:]}")
            if time.monotonic() - t0 > 120:
                raise BenchError(f"{mode} did not raise the probes' semaphores within 120 s")
            time.sleep(0.01)
        attach_s = time.monotonic() - t0
        time.sleep(SETTLE_S)
        res = parse_pgbench(server.pgbench(*bench_args))
    finally:
        rc, sigints = interrupt(proc)
    out.join(10)
    err.join(10)
    if rc != 0:
        raise BenchError(f"{mode} exited with {rc}: {err.text()[-500:]}")
    res["attach_s"] = attach_s
    res["sigints"] = sigints
    if mode == "pyusdt":
        m = re.search(r"pyusdt: (\d+) requests timed, (\d+) filtered out, (\d+) lost \(map full\), "
                      r"(\d+) unreadable arguments; (\d+) starts, (\d+) dones without start, (\d+) pending, "
                      r"(\d+) dropped", err.text())
        if not m:
            raise BenchError(f"pyusdt: no counters line: {err.text()[-500:]}")
        res["timed"] = int(m.group(1))
        res["counters"] = dict(zip(("timed", "filtered", "map_full", "read_fail", "starts", "unmatched",
                                    "pending", "dropped"), (int(x) for x in m.groups())))
        res["hist_total"] = sum(aggregate.parse_bpftrace_hist(out.text()).values())
    else:
        res["timed"] = sum(aggregate.parse_bpftrace_hist(out.text()).values())
        res["hist_total"] = res["timed"]
    return res


def run(settings: dict, tmp: str, log) -> dict:
    peers.ensure(log)
    with pg_server() as server:
        cpu0 = cluster_cpu_s(server.postmaster_pid)
        log(f"postgres: cluster up (postmaster {server.postmaster_pid}); pgbench -i -s {settings['scale']}")
        server.pgbench("-i", "-q", "-s", str(settings["scale"]))
        sems = Semaphores(server.postmaster_pid)
        others_before = other_postgres_processes(server.postmaster_pid)
        warm = one_run("none", server, sems, settings, tmp)
        log(f"postgres warm-up (not counted): {warm['tps']:9.1f} tps")
        runs = {m: [] for m in MODES}
        for r in range(settings["repeat"]):
            order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
            for m in order:
                res = one_run(m, server, sems, settings, tmp)
                runs[m].append(res)
                extra = ""
                if m != "none":
                    extra = (f", timed {res['timed']:,} queries ({res['timed'] - res['transactions']:+,} vs "
                             f"transactions), attached after {res['attach_s']:.2f} s")
                log(f"postgres round {r + 1}/{settings['repeat']} {m:<8} {res['tps']:9.1f} tps, "
                    f"{res['transactions']:,} transactions{extra}")
        others_after = other_postgres_processes(server.postmaster_pid)
        server_cpu = cluster_cpu_s(server.postmaster_pid) - cpu0
    tps = {m: median([x["tps"] for x in runs[m]]) for m in MODES}
    excess = {m: [x["timed"] - x["transactions"] for x in runs[m]] for m in TRACERS}
    per_round = {m: [x["tps"] / n["tps"] for x, n in zip(runs[m], runs["none"])] for m in TRACERS}
    ratios = {f"{m} / none": median(v) for m, v in per_round.items()}
    none_tps = [x["tps"] for x in runs["none"]]
    # The untraced runs' own spread, relative to their median: how far apart
    # two measurements of the same thing land on this machine.
    spread = (max(none_tps) - min(none_tps)) / tps["none"] if tps["none"] else 0.0
    return {
        "settings": settings, "tps": tps, "runs": runs, "warmup_tps": warm["tps"],
        "ratios": ratios,
        "per_round_ratio": per_round,
        "none_spread": spread,
        "invalid": {m: r - 1.0 > spread for m, r in ratios.items()},
        "timed_minus_transactions": excess,
        "attach_s": {m: median([x["attach_s"] for x in runs[m]]) for m in TRACERS},
        "other_postgres_processes": [others_before, others_after],
        "pyusdt_counters": [x["counters"] for x in runs["pyusdt"]],
        "missed_sigint": {m: sum(x["sigints"] > 1 for x in runs[m]) for m in TRACERS},
        "bpftrace_versions": peers.versions(),
        # The server is not a child the suite waits for: its CPU time would
        # otherwise count as other load on the machine (see report.py).
        "extra_own_cpu_s": server_cpu,
    }


def markdown(res: dict) -> str:
    s = res["settings"]
    tps, r = res["tps"], res["ratios"]
    out = [f"`pgbench -n -S -M simple -c {s['clients']} -j {s['jobs']} -T {s['seconds']}` on a scale-{s['scale']} "
           f"database after one untimed warm-up run ({res.get('warmup_tps', 0):.0f} tps), median of "
           f"{s['repeat']} rounds (mode order rotating); a tracer's ratio is the median of its per-round "
           "ratios to the untraced run of the same round.", "",
           "| mode | tps (median) | per round | x none | queries timed - transactions (per round) |",
           "|---|---:|---|---:|---|"]
    for m in MODES:
        per = ", ".join(f"{x['tps']:.0f}" for x in res["runs"][m])
        ratio = "" if m == "none" else f"**{r[f'{m} / none']:.3f}**"
        exc = "" if m == "none" else ", ".join(f"{x:+d}" for x in res["timed_minus_transactions"][m])
        out.append(f"| {m} | {tps[m]:.0f} | {per} | {ratio} | {exc} |")
    c = res["pyusdt_counters"]
    spread = res.get("none_spread", 0.0)
    out += ["",
            "- Throughput with tracing, as a ratio to no tracer: "
            + ", ".join(f"{m} {_ratio(res, m)}" for m in TRACERS) + " (per-round ratios: "
            + "; ".join(f"{m} " + ", ".join(f"{x:.3f}" for x in res["per_round_ratio"][m]) for m in TRACERS)
            + f"); the untraced runs spread over {100 * spread:.1f}% of their median.",
            f"- Queries timed against pgbench's completed transactions: the difference is pgbench's own "
            f"start-up query plus queries in flight when -T ended (up to one per client), and any queries "
            f"of other servers of the same binary ({res['other_postgres_processes'][0]} other postgres "
            f"processes at the start, {res['other_postgres_processes'][1]} at the end).",
            f"- pyusdt's counters (summed over rounds): map_full {sum(x['map_full'] for x in c)}, dones "
            f"without start {sum(x['unmatched'] for x in c)}, starts dropped {sum(x['dropped'] for x in c)}, "
            f"unreadable {sum(x['read_fail'] for x in c)}.",
            "- Time from spawn until both semaphores were raised (attached): "
            + ", ".join(f"{m} {res['attach_s'][m]:.2f} s" for m in TRACERS) + "."]
    for m, bad in res.get("invalid", {}).items():
        if bad:
            out.append(f"- **{m.split(' ')[0]}: not a result.** Tracing measured faster than no tracing by more "
                       f"than the untraced runs' own spread ({100 * spread:.1f}%): the baseline did not hold "
                       "still; run longer (`--set postgres.seconds=N`), on a quieter machine.")
    for m, n in res.get("missed_sigint", {}).items():
        if n:
            out.append(f"- {m} ignored the first SIGINT after pgbench in {n} of {s['repeat']} runs and was "
                       "stopped by another one 10 s later (throughput is not affected: pgbench had ended).")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    r = res["ratios"]
    bar_panel(ax, [m.replace("bpftrace-", "bpftrace ") + "\n/ no tracer" for m in TRACERS],
              [r[f"{m} / none"] for m in TRACERS],
              "pgbench tps, ratio of medians", "PostgreSQL: throughput while tracing", fmt="{:.3f}")


def _ratio(res: dict, mode: str) -> str:
    """A tracer's ratio to no tracer, or why it is not one."""
    r = res["ratios"][f"{mode} / none"]
    per = res["per_round_ratio"][mode]
    if res.get("invalid", {}).get(f"{mode} / none"):
        return f"{r:.3f} (invalid: faster than untraced beyond the noise)"
    return f"**{r:.3f}** ({min(per):.3f}..{max(per):.3f})"


def headline(res: dict) -> list:
    tps = res["tps"]
    return [("pgbench tps: " + " / ".join(MODES),
             " / ".join(f"{tps[m]:.0f}" for m in MODES)
             + f" (untraced spread {100 * res.get('none_spread', 0.0):.1f}%)"),
            ("tps with tracing / without: " + ", ".join(TRACERS), ", ".join(_ratio(res, m) for m in TRACERS))]
