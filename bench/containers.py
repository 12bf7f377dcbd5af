#!/usr/bin/env python3
"""What a container target costs per hit: the cgroup filter against the
kernel's own pid filter, on one process in a docker container.

    python bench/containers.py [--n N] [--repeat R] [--json PATH]

bench/workload.c (gcc -O2, bind-mounted into a container of the bookworm
base image scripts/base-image makes) waits for SIGUSR1, then fires
bench:fire N times and writes its loop time per fire.  Modes, round-robin,
the median of R repeats each:

  none       the workload alone
  pid        Aggregate("count") by attach_pid(host pid): the kernel runs the
             program only in that process (the uprobe's own pid filter)
  container  by attach_container: the program runs in every process that
             maps the file and admits the hit by its cgroup (walked up from
             the process's own, BPF hash lookups)
  object     by attach_object("workload"): every process, no filter
  bpftrace-cgroup  the reference: bpftrace on the container's file
             (usdt:/proc/PID/root/...) with the predicate
             /cgroup == cgroupid("...")/ { @ = count(); }

Every traced run is checked exactly: the count is N.  Reported: ns per
fire, and the ratios container/bpftrace-cgroup (the target: <= 1.1x),
container/pid and container/object (what the filter costs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import peers
from suite_common import BenchError, compile_c, median

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODES = ("none", "pid", "container", "object", "bpftrace-cgroup")
TARGET_RATIO = 1.1


def workload_ns_per_fire(exe_dir: str) -> float:
    """The loop time per fire the workload wrote ("ns_per_fire=123.4 n=... total_ns=...")."""
    with open(os.path.join(exe_dir, "out")) as f:
        return float(f.read().split()[0].split("=")[1])


def base_image() -> str:
    out = subprocess.run([os.path.join(REPO, "scripts", "base-image")], capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"scripts/base-image failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def run_once(mode: str, image: str, exe_dir: str, n: int) -> float:
    from pyusdt import Tracer
    from pyusdt.aggregate import Aggregate

    name = f"pyusdt-bench-{os.getpid()}-{mode}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-v", f"{exe_dir}:/w", image,
                    "/w/workload", str(n), "/w/out", "wait"], check=True, capture_output=True)
    try:
        while "ready" not in subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout:
            time.sleep(0.02)
        pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], capture_output=True,
                                 text=True, check=True).stdout)
        if mode == "bpftrace-cgroup":
            return run_bpftrace(name, pid, exe_dir, n)
        count = Aggregate("count")
        with Tracer() as t:
            if mode == "pid":
                t.attach_pid(pid, "bench:fire", aggregate=count)
            elif mode == "container":
                t.attach_container(name, "bench:fire", aggregate=count)
            elif mode == "object":
                t.attach_object("workload", "bench:fire", aggregate=count)
            if mode != "none":
                t.start()
            subprocess.run(["docker", "kill", "-s", "USR1", name], check=True, capture_output=True)
            subprocess.run(["docker", "wait", name], capture_output=True)
            if mode != "none" and t.aggregation(count).value() != n:
                raise BenchError(f"{mode}: counted {t.aggregation(count).value()} of {n} hits")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return workload_ns_per_fire(exe_dir)


def run_bpftrace(name: str, pid: int, exe_dir: str, n: int) -> float:
    from pyusdt.discover.cgroups import process_cgroup, v2_mount

    cgroup = f"{v2_mount()}{process_cgroup(pid)}"
    program = (f'BEGIN {{ printf("ready\\n"); }} usdt:/proc/{pid}/root/w/workload:bench:fire '
               f'/cgroup == cgroupid("{cgroup}")/ {{ @ = count(); }}')
    bt = subprocess.Popen(["bpftrace", "-e", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=peers.env())
    try:
        assert bt.stdout is not None
        for line in bt.stdout:
            if line.strip() == "ready":
                break
        else:
            raise BenchError(f"bpftrace did not start: {bt.stderr.read() if bt.stderr else ''}")
        subprocess.run(["docker", "kill", "-s", "USR1", name], check=True, capture_output=True)
        subprocess.run(["docker", "wait", name], capture_output=True)
    finally:
        bt.send_signal(2)
        out, _ = bt.communicate(timeout=60)
    if f"@: {n}" not in out:
        raise BenchError(f"bpftrace-cgroup: counted {out.strip()!r}, not {n}")
    return workload_ns_per_fire(exe_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="write the results here")
    opts = ap.parse_args()
    image = base_image()
    with tempfile.TemporaryDirectory() as exe_dir:
        os.chmod(exe_dir, 0o755)
        compile_c(os.path.join(HERE, "workload.c"), os.path.join(exe_dir, "workload"))
        runs: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(opts.repeat):
            for mode in MODES:
                runs[mode].append(run_once(mode, image, exe_dir, opts.n))
    ns = {m: median(v) for m, v in runs.items()}
    ratio = ns["container"] / ns["bpftrace-cgroup"]
    for m in MODES:
        print(f"{m:<10} {ns[m]:8.1f} ns/fire  (runs: {', '.join(f'{x:.1f}' for x in runs[m])})")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"container/bpftrace-cgroup {ratio:.3f}x (target <= {TARGET_RATIO}x: {verdict}); "
          f"container/pid {ns['container'] / ns['pid']:.3f}x; container/object {ns['container'] / ns['object']:.3f}x")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"n": opts.n, "runs": runs, "ns_per_fire": ns, "container_over_bpftrace": ratio}, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"containers: {e}", file=sys.stderr)
        sys.exit(1)
