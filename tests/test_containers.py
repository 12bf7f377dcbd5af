"""Tracing into real docker containers: -p HOSTPID, --container, --cgroup,
--object, and containers and processes that start after the trace.

The workers are tests/programs/container_worker.c, copied into an image
of its own (so every container of that image maps one file, the layer
below its overlay) or into a second image (another file, as a container
built elsewhere has).  Each SIGUSR1 fires N hits ctr:tick(k, getpid(),
1000 + k): the second argument is the pid the worker itself sees, which
the trace's ns_pid must equal.  Python 3.11 inside a container is traced
through its own copy of the interpreter.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import time

import pytest

from pyusdt import Tracer, to_pandas
from pyusdt.aggregate import Aggregate
from pyusdt.discover.cgroups import cgroup_at, member_pids, process_cgroup, v2_mount
from pyusdt.errors import NoSuchCgroupError, NoSuchContainerError
from pyusdt.export.files import EventWriter

from conftest import PYUSDT, pyusdt_cli
from containers import Container, docker, image_with
from proc_helpers import wait_until

# The cgroup filter on perf-event links too (kernels before 6.6).
pytestmark = pytest.mark.older_kernel_routes

TICK = "ctr:tick"
WORKER = "/usr/local/bin/container_worker"


@pytest.fixture(scope="module")
def worker_image(docker_ready, build) -> str:
    return image_with({WORKER: build("container_worker.c", "container_worker")}, "pyusdt-test-worker:a")


@pytest.fixture(scope="module")
def other_worker_image(docker_ready, build) -> str:
    """The same program in another image: another file, another inode."""
    binary = build("container_worker.c", "container_worker")
    return image_with({WORKER: binary, "/etc/pyusdt-test-other": binary}, "pyusdt-test-worker:b")


def start_worker(containers, image: str, n: int, **kw) -> Container:
    c = Container(image, ["container_worker", str(n)], **kw)
    containers.append(c)
    c.wait_for_output("ready")
    return c


def fire(c: Container, total: int) -> None:
    """SIGUSR1 to the worker; returns once it has fired `total` hits in all."""
    c.signal("SIGUSR1")
    c.wait_for_output(f"fired {total}\n")


def batches_of(tracer: Tracer, want: int, deadline_s: float = 20) -> list:
    """Batches until `want` events have arrived, then whatever else is already there."""
    got: list = []
    end = time.monotonic() + deadline_s
    while sum(map(len, got)) < want and time.monotonic() < end:
        got.append(tracer.poll(0.1))
    tracer.stop()
    got.extend(tracer.drain())
    return [b for b in got if len(b)]


def events_of(tracer: Tracer, want: int, deadline_s: float = 20) -> list:
    return [e for b in batches_of(tracer, want, deadline_s) for e in b]


def wait_attached(tracer: Tracer, sites: int, deadline_s: float = 20) -> None:
    """Polls (the rescan runs in poll) until `sites` sites are attached."""
    end = time.monotonic() + deadline_s
    while tracer.attached_sites < sites and time.monotonic() < end:
        assert not len(tracer.poll(0.05))
    assert tracer.attached_sites == sites


def test_pid_in_container_names_its_namespace_pid(bpf, containers, worker_image):
    c = start_worker(containers, worker_image, 3)
    with Tracer() as t:
        t.attach_pid(c.pid, TICK)
        t.start()
        assert t.identifies_processes
        fire(c, 3)
        events = events_of(t, 3)
    assert [(e.pid, e.args) for e in events] == [(c.pid, (k, 1, 1000 + k)) for k in range(3)]
    assert {(e.identity.ns_pid, e.identity.container) for e in events} == {(1, c.id)}


def test_container_by_name_counts_only_its_processes(bpf, containers, worker_image):
    """Two containers of one image map one file: attached once (one site),
    and each container's target sees only its own hits."""
    mine = start_worker(containers, worker_image, 3)
    other = start_worker(containers, worker_image, 2)
    with Tracer() as t:
        probes = t.attach_container(mine.name, TICK)
        assert [p.fullname for p in probes] == [TICK]
        t.start()
        assert t.attached_sites == 1
        fire(other, 2)
        fire(mine, 3)
        events = events_of(t, 3)
        stats = t.stats()
    assert [(e.pid, e.args) for e in events] == [(mine.pid, (k, 1, 1000 + k)) for k in range(3)]
    assert [(s.hits, s.events, s.lost_ringbuf) for s in stats] == [(3, 3, 0)]


def test_two_cgroup_targets_in_one_tracer_each_count_their_own(bpf, containers, worker_image):
    a = start_worker(containers, worker_image, 3)
    b = start_worker(containers, worker_image, 5)
    count_a, count_b = Aggregate("count"), Aggregate("count")
    with Tracer() as t:
        t.attach_container(a.id[:12], TICK, aggregate=count_a)
        t.attach_cgroup(_cgroup_path(b), TICK, aggregate=count_b)
        t.start()
        fire(a, 3)
        fire(b, 5)
        fire(b, 10)
        assert (t.aggregation(count_a).value(), t.aggregation(count_b).value()) == (3, 10)


def test_processes_started_later_in_the_container(bpf, containers, worker_image):
    """A process exec'd into the container after the trace began is a
    member too: the BPF filter admits it by its cgroup."""
    c = start_worker(containers, worker_image, 1)
    with Tracer() as t:
        t.attach_container(c.name, TICK)
        t.start()
        late = subprocess.Popen(["docker", "exec", c.id, "container_worker", "4"], stdout=subprocess.PIPE,
                                text=True)
        try:
            assert late.stdout is not None
            ready = late.stdout.readline().split()
            assert ready[0] == "ready"
            late_ns_pid = int(ready[1])
            host_pid = next(p for p in _members(c) if p != c.pid)
            os.kill(host_pid, 10)  # SIGUSR1
            assert late.stdout.readline() == "fired 4\n"
            events = events_of(t, 4)
        finally:
            late.kill()
            late.wait()
    assert [(e.pid, e.args) for e in events] == [(host_pid, (k, late_ns_pid, 1000 + k)) for k in range(4)]
    assert {e.identity.ns_pid for e in events} == {late_ns_pid}


def _members(c: Container) -> list[int]:
    return member_pids(cgroup_at(_cgroup_path(c)))


def _cgroup_path(c: Container) -> str:
    """The container's cgroup as the kernel names it (/docker/ID with
    docker's cgroupfs driver, /system.slice/docker-ID.scope with systemd's)."""
    path = process_cgroup(c.pid)
    assert path is not None and c.id in path
    return path


def test_object_everywhere_finds_containers_started_later(bpf, containers, worker_image,
                                                          other_worker_image, tmp_path):
    """--object: one program in every container, a container of another
    image (another file) started after the trace included; the table has
    the ns_pid and container columns."""
    first = start_worker(containers, worker_image, 2)
    with Tracer() as t:
        t.attach_object("container_worker", TICK)
        t.start()
        before = t.attached_sites
        later = start_worker(containers, other_worker_image, 3)
        wait_attached(t, before + 1)
        fire(first, 2)
        fire(later, 3)
        batches = batches_of(t, 5)
    got = sorted((e.identity.container, e.identity.ns_pid, e.args) for b in batches for e in b)
    want = sorted([(first.id, 1, (k, 1, 1000 + k)) for k in range(2)] +
                  [(later.id, 1, (k, 1, 1000 + k)) for k in range(3)])
    assert got == want
    frame = pytest.importorskip("pandas") and to_pandas(batches)
    assert list(frame.columns[:9]) == ["time", "ts_ns", "probe", "pid", "tid", "cpu", "ns_pid", "container",
                                       "cgroup"]
    assert sorted(zip(frame["container"], frame["ns_pid"], frame["cgroup"], frame["arg2"])) == sorted(
        [(first.id, 1, _cgroup_path(first), 1000 + k) for k in range(2)] +
        [(later.id, 1, _cgroup_path(later), 1000 + k) for k in range(3)])
    writer = EventWriter(tmp_path / "events.csv")
    for batch in batches:
        writer.write(batch)
    writer.close()
    rows = list(csv.reader((tmp_path / "events.csv").open()))
    assert rows[0][6:9] == ["ns_pid", "container", "cgroup"]
    assert sorted(tuple(r[6:9]) for r in rows[1:]) == sorted(
        [("1", first.id, _cgroup_path(first))] * 2 + [("1", later.id, _cgroup_path(later))] * 3)


def test_cli_container_and_cgroup_targets(bpf, containers, worker_image):
    c = start_worker(containers, worker_image, 3)
    listed = pyusdt_cli("list", "--container", c.id[:10], "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(p["provider"], p["name"]) for p in map(json.loads, listed.stdout.splitlines())] == [("ctr", "tick")]
    under_mount = v2_mount() + _cgroup_path(c)  # the path under the mount point is taken too
    proc = subprocess.Popen([PYUSDT, "trace", "--cgroup", under_mount, TICK,
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(proc, "pyusdt: tracing 1 probe(s)")
        fire(c, 3)
        fire(c, 6)
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["pid"], r["ns_pid"], r["container"], r["cgroup"], r["args"]) for r in rows] == \
        [(c.pid, 1, c.id, _cgroup_path(c), [k, 1, 1000 + k]) for k in (0, 1, 2, 0, 1, 2)]


def _wait_for_line(proc: subprocess.Popen, text: str) -> None:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"pyusdt never said {text!r}: {''.join(seen)}")


# gc__start (arg0: the generation) fires for each collection; automatic
# ones are off, so every one is the script's.  (function__entry fires in
# 3.11 only while a trace or profile function is set.)
PY_SCRIPT = r"""
import gc, signal, sys
gc.disable()
def fire(*_):
    for _ in range(int(sys.argv[1])):
        gc.collect(1)
    print("fired", flush=True)
signal.signal(signal.SIGUSR1, fire)
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_python_in_a_container(bpf, containers, worker_image):
    """Debian's python3.11 of the container's own root (not the host's
    file), its probes behind semaphores, counted by generation."""
    c = Container(worker_image, ["python3.11", "-c", PY_SCRIPT, "7"])
    containers.append(c)
    c.wait_for_output("ready")
    by_gen = Aggregate("count", key="arg0", where="arg0 == 1")
    with Tracer() as t:
        probes = t.attach_container(c.name, "python:gc__start", aggregate=by_gen)
        assert {p.path for p in probes} == {"/usr/bin/python3.11"}
        assert all(p.open_path.startswith(f"/proc/{c.pid}/map_files/") for p in probes)
        t.start()
        c.signal("SIGUSR1")
        c.wait_for_output("fired")
        c.signal("SIGUSR1")
        c.wait_for_output("fired\nfired")
        result = t.aggregation(by_gen)
    assert {k: result.value(k) for k in result.keys} == {1: 14}


def test_bad_container_and_cgroup_targets(bpf, docker_ready):
    with pytest.raises(NoSuchContainerError, match="no running container with id or name no-such-container"):
        Tracer().attach_container("no-such-container", TICK)
    with pytest.raises(NoSuchCgroupError, match="no such cgroup: /no/such/cgroup"):
        Tracer().attach_cgroup("/no/such/cgroup", TICK)
    res = pyusdt_cli("trace", "--container", "no-such-container", TICK)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr.startswith("pyusdt: no running container with id or name no-such-container")
    assert len(res.stderr.splitlines()) == 1
    res = pyusdt_cli("trace", "-p", "1", "--container", "x", TICK)
    assert res.returncode == 2 and "give one target: -p and --container together" in res.stderr


def test_serve_container_and_object_targets(bpf, containers, worker_image, tmp_path):
    """pyusdt serve with a container target (that container only) and an
    object target (the program in every container): exact counters."""
    from test_serve import Serve, write_config

    mine = start_worker(containers, worker_image, 3)
    other = start_worker(containers, worker_image, 2)
    config = write_config(tmp_path / "serve.json", [
        {"name": "ticks", "kind": "count", "probe": TICK, "targets": [{"container": mine.name}]},
        {"name": "tick_values", "kind": "sum", "probe": TICK, "value": "arg2",
         "targets": [{"object": "container_worker"}]},
    ], retry_interval=0.2)
    serve = Serve(config)
    try:
        serve.wait_for(lambda s: all(s.get(("pyusdt_target_attached", (("metric", m), ("target", t)))) == 1
                                     for m, t in (("ticks", f"container:{mine.name}"),
                                                  ("tick_values", "object:container_worker"))),
                       "both targets attached")
        fire(mine, 3)
        fire(other, 2)
        samples = serve.wait_for(lambda s: s.get(("pyusdt_tick_values_total", ())) == 5004, "the sum")
        assert samples[("pyusdt_ticks_total", ())] == 3
        # A restart: a new process in a new cgroup, under the same name.
        docker("restart", "-t", "1", mine.id)
        mine.wait_for_output("fired 3\nready 1\n")
        wait_until(lambda: any(f"container:{mine.name}: attached" in line for line in serve.err), timeout=30,
                   what="serve to attach the restarted container")
        mine.signal("SIGUSR1")
        mine.wait_for_output("fired 3\nready 1\nfired 3\n")  # the new process's first burst
        samples = serve.wait_for(lambda s: s.get(("pyusdt_ticks_total", ())) == 6, "the restarted container's hits")
        assert samples[("pyusdt_tick_values_total", ())] == 5004 + 3003
        assert samples[("pyusdt_target_attached", (("metric", "ticks"), ("target", f"container:{mine.name}")))] == 1
    finally:
        assert serve.stop() == 0
