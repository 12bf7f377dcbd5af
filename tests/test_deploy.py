"""The pyusdt image as the DaemonSet runs it (deploy/): real containers.

The image is this tree's wheel installed by scripts/build-image into the bare
bookworm base; it runs with exactly the flags of deploy/docker-run-flags, the
shape of deploy/daemonset.yaml's pod (capabilities, the host's pid namespace,
the host's /sys read-only).  The traced program runs in a container of its
own: tests/programs/container_worker.c, which fires N hits of
ctr:tick(k, getpid(), 1000 + k) per SIGUSR1, getpid() being its pid in its
own pid namespace.  From inside the pyusdt container:
  - `pyusdt trace -p HOSTPID` sees exactly those hits, under the host pid;
  - `pyusdt list -p HOSTPID` lists ctr:tick as `pyusdt list` of the file
    on the host does;
  - and when the containers are gone, or the pyusdt one is stopped as the
    kubelet stops a pod (SIGTERM), no BPF program or link of it is left.
The image itself runs `pyusdt` and holds nothing to build or install with.
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pyusdt import __version__, probes_at_path

from containers import LABEL, Container, docker, image_with
from deploy_flags import file_flags
from deploy_image import tree_image
from proc_helpers import fdinfos, wait_until

# Hits per SIGUSR1 of the worker.
BURST = 5
WORKER = "/usr/local/bin/container_worker"
DAEMONSET = Path(__file__).resolve().parent.parent / "deploy" / "daemonset.yaml"
# Each flag of deploy/docker-run-flags and the lines of deploy/daemonset.yaml
# that give the pod the same (--cgroupns=host has no field: the /sys mount
# gives the host's cgroup tree).
POD_LINES = {
    "--cap-drop=ALL": ["privileged: false", 'drop: ["ALL"]'],
    "--cap-add=SYS_ADMIN": ['add: ["SYS_ADMIN", "SYS_PTRACE"]'],
    "--cap-add=SYS_PTRACE": ['add: ["SYS_ADMIN", "SYS_PTRACE"]'],
    "--pid=host": ["hostPID: true"],
    "--cgroupns=host": [],
    "--volume=/sys:/sys:ro": ["- name: sys", "mountPath: /sys", "readOnly: true", "path: /sys"],
}
# What a lean image has none of: compilers, headers, pip.
BUILD_TOOLS = ("gcc", "cc", "c++", "clang", "ld", "as", "bpftool", "pip", "pip3", "/usr/include/stdio.h",
               "/usr/include/linux")
# What `pyusdt trace` prints on stderr once every probe is attached.
ATTACHED = "pyusdt: tracing 1 probe(s) at 1 site(s)"


@pytest.fixture(scope="module")
def image(docker_ready: None) -> str:
    return tree_image()


@pytest.fixture(scope="module")
def worker_binary(build):
    return build("container_worker.c", "container_worker")


@pytest.fixture(scope="module")
def worker_image(docker_ready: None, worker_binary) -> str:
    return image_with({WORKER: worker_binary}, "pyusdt-deploy-worker:latest")


class Worker:
    """container_worker in a container of its own: host pid and the pid it
    sees itself as."""

    def __init__(self, image: str, containers: list[Container]) -> None:
        self.container = Container(image, [WORKER, str(BURST)])
        containers.append(self.container)
        (ready,) = self.container.wait_for_output("ready ").splitlines()
        self.ns_pid = int(ready.split()[1])
        self.pid = self.container.pid

    def burst(self, total: int) -> None:
        """One SIGUSR1, waited for until the worker says it fired them all."""
        self.container.signal("SIGUSR1")
        self.container.wait_for_output(f"fired {total}")


@pytest.fixture
def worker(worker_image: str, containers: list[Container]) -> Worker:
    return Worker(worker_image, containers)


def pyusdt_container(image: str, containers: list[Container], *args: str) -> Container:
    """`pyusdt ARGS` in the image, run as the DaemonSet runs it."""
    c = Container(image, list(args), args=file_flags())
    containers.append(c)
    return c


def bpf_ids(pid: int) -> tuple[set[int], set[int]]:
    """(program ids, link ids) of the BPF objects process `pid` holds."""
    infos = fdinfos(pid)
    return ({int(i["prog_id"]) for i in infos if "prog_id" in i and "link_type" not in i},
            {int(i["link_id"]) for i in infos if "link_id" in i})


def bpftool_ids(kind: str) -> set[int]:
    res = subprocess.run(["bpftool", "-j", kind, "list"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return {obj["id"] for obj in json.loads(res.stdout or "[]")}


def assert_gone(progs: set[int], links: set[int]) -> None:
    """None of them left (the kernel frees them a moment after the last fd closes)."""
    assert progs and links
    wait_until(lambda: not (progs & bpftool_ids("prog")) and not (links & bpftool_ids("link")),
               timeout=10, what=f"BPF programs {sorted(progs)} and links {sorted(links)} to go")


def expected_events(worker: Worker, bursts: int) -> list[tuple]:
    """(pid, tid, provider, probe, args) of every hit: the host pid, which the
    kernel reports; the worker's own pid in its namespace as arg1."""
    return [(worker.pid, worker.pid, "ctr", "tick", [k, worker.ns_pid, 1000 + k])
            for _ in range(bursts) for k in range(BURST)]


def events_of(out: str) -> list[tuple]:
    lines = [json.loads(line) for line in out.splitlines()]
    return [(e["pid"], e["tid"], e["provider"], e["probe"], e["args"]) for e in lines]


def summary(events: int) -> list[str]:
    """The summary `pyusdt trace` ends with: nothing lost, every event of the
    worker's file, which it names by the path the worker sees."""
    return [f"pyusdt: {events} events, 0 lost (ring buffer full), 0 unreadable strings, 0 unreadable arguments",
            f"  ctr:tick  {events:>10} events  {WORKER}"]


def test_trace_another_container(image: str, worker: Worker, containers: list[Container]) -> None:
    """Every hit of a process in another container, exactly; the trace ends
    when that container goes, and leaves nothing attached."""
    tracer = pyusdt_container(image, containers, "trace", "-p", str(worker.pid), "ctr:tick", "--format", "json")
    tracer.wait_for_output(ATTACHED, stderr=True)
    progs, links = bpf_ids(tracer.pid)
    assert progs and links, f"pyusdt holds no BPF link while tracing: {fdinfos(tracer.pid)}"
    worker.burst(BURST)
    worker.burst(2 * BURST)
    worker.container.remove()
    status = tracer.wait()
    err = tracer.logs(stderr=True)
    assert status == 0, err
    assert events_of(tracer.logs()) == expected_events(worker, 2), err
    lines = err.splitlines()
    assert lines[1:3] == summary(2 * BURST), err
    assert f"pyusdt: process {worker.pid} exited during the trace" in lines, err
    tracer.remove()
    assert_gone(progs, links)


def test_stopped_like_a_pod(image: str, worker: Worker, containers: list[Container]) -> None:
    """`docker stop` (SIGTERM, as the kubelet ends a pod) while the traced
    process still runs: the events so far are written, pyusdt exits 0 and
    detaches."""
    tracer = pyusdt_container(image, containers, "trace", "-p", str(worker.pid), "ctr:tick", "--format", "json")
    tracer.wait_for_output(ATTACHED, stderr=True)
    progs, links = bpf_ids(tracer.pid)
    worker.burst(BURST)
    docker("stop", "-t", "30", tracer.id, timeout=60)
    status = tracer.wait()
    err = tracer.logs(stderr=True)
    assert status == 0, err
    assert events_of(tracer.logs()) == expected_events(worker, 1), err
    assert err.splitlines()[1:3] == summary(BURST), err
    tracer.remove()
    assert_gone(progs, links)
    worker.burst(2 * BURST)  # the traced process goes on, untouched


def test_list_another_container(image: str, worker: Worker, worker_binary) -> None:
    """`pyusdt list -p` of a process in another container gives its probe as
    `pyusdt list` of the same file does on the host, under the path the
    process itself sees."""
    res = docker("run", "--rm", "--label", LABEL, *file_flags(), image, "list", "-p", str(worker.pid), "--json")
    (on_host,) = probes_at_path(str(worker_binary))
    expected = {**on_host.to_json(), "path": WORKER}
    assert [json.loads(line) for line in res.stdout.splitlines()] == [expected], res.stderr


def test_image_runs_pyusdt_only(image: str) -> None:
    """The entrypoint is this tree's pyusdt; no compiler, header or pip is in the image."""
    assert docker("run", "--rm", "--network", "none", image, "--version").stdout == f"pyusdt {__version__}\n"
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c",
                   'for t in "$@"; do [ -e "$t" ] && echo "$t"; command -v "$t" || true; done', "sh", *BUILD_TOOLS)
    assert found.stdout == ""


def test_daemonset_has_the_flags_shape() -> None:
    """deploy/docker-run-flags and deploy/daemonset.yaml say the same: every
    flag has its lines in the pod, and the pod serves on the metrics port."""
    assert sorted(file_flags()) == sorted(POD_LINES)
    lines = [line.strip() for line in DAEMONSET.read_text().splitlines()]
    wanted = [line for flag_lines in POD_LINES.values() for line in flag_lines] + [
        'args: ["serve", "/etc/pyusdt/config.json", "--listen", "0.0.0.0:9435"]',
        "- name: metrics", "containerPort: 9435",
        'prometheus.io/scrape: "true"', 'prometheus.io/port: "9435"']
    assert [line for line in wanted if line not in lines] == []


# The pod's container args and where its ConfigMap is mounted (daemonset.yaml).
SERVE_ARGS = ("serve", "/etc/pyusdt/config.json", "--listen", "0.0.0.0:9435")
CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "serve-example.json"
METRICS_PORT = 9435
MODULES = 12  # modules the Python workload imports, each once
# A Python 3.11 in a container of its own (imports by __import__, which
# the probe is in; importlib.import_module does not pass through it):
# SIGUSR1 imports the next
# "sentinel" module (until one is counted, the exporter has attached),
# SIGUSR2 imports MODULES modules no other process has, once each.
PY_WORKLOAD = r"""
import os, signal, sys
d = "/tmp/mods"
os.makedirs(d)
sys.path.insert(0, d)
names = [f"pyusdt_sentinel_{i}" for i in range(1000)] + [f"pyusdt_deploy_{i}" for i in range(int(sys.argv[1]))]
for name in names:
    open(os.path.join(d, name + ".py"), "w").close()
sentinels = iter(range(1000))
def sentinel(*_):
    __import__(f"pyusdt_sentinel_{next(sentinels)}")
def modules(*_):
    for i in range(int(sys.argv[1])):
        __import__(f"pyusdt_deploy_{i}")
    print("imported", flush=True)
signal.signal(signal.SIGUSR1, sentinel)
signal.signal(signal.SIGUSR2, modules)
print("ready", flush=True)
while True:
    signal.pause()
"""


def scrape(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:{METRICS_PORT}/metrics", timeout=30) as r:
        return r.read().decode()


def test_daemonset_serves_a_container_it_did_not_know(image: str, worker_image: str,
                                                      containers: list[Container]) -> None:
    """The pod as deploy/ defines it (its flags, its config file, its args),
    scraped on its metrics port: a python3.11 in a container started after
    it imports MODULES modules, and each is counted exactly once."""
    pod = Container(image, list(SERVE_ARGS), args=[*file_flags(), f"--volume={CONFIG}:/etc/pyusdt/config.json:ro"])
    containers.append(pod)
    ip = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", pod.id).stdout.strip()
    py = Container(worker_image, ["python3.11", "-c", PY_WORKLOAD, str(MODULES)])
    containers.append(py)
    py.wait_for_output("ready")

    def attached() -> bool:
        py.signal("SIGUSR1")
        time.sleep(0.1)  # one sentinel a scrape, at most: there are 1000
        try:
            return 'module="pyusdt_sentinel_' in scrape(ip)
        except OSError:
            return False  # not listening yet
    wait_until(attached, timeout=60, what="the exporter to count the workload's imports")
    py.signal("SIGUSR2")
    py.wait_for_output("imported")
    want = [f'pyusdt_python_imports_total{{module="pyusdt_deploy_{i}"}} 1' for i in range(MODULES)]
    wait_until(lambda: set(want) <= set(scrape(ip).splitlines()), timeout=30,
               what="every module counted once")
    lines = scrape(ip).splitlines()
    assert sorted(line for line in lines if 'module="pyusdt_deploy_' in line) == sorted(want)
    assert 'pyusdt_target_attached{metric="python_imports",target="object:python3.11"} 1' in lines
    progs, links = bpf_ids(pod.pid)
    docker("stop", "-t", "30", pod.id, timeout=60)
    assert pod.wait() == 0, pod.logs(stderr=True)
    assert_gone(progs, links)
