"""Real containers for the tests: Debian's docker.io, images made offline.

There is no registry: the base image is `docker import` of a debootstrap
root (bookworm minbase + python3, the root check-wheel uses), and images
with a test program inside are built FROM it.  Every container a test
starts is removed when the test ends, however it ends.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

from conftest import missing

REPO = Path(__file__).resolve().parent.parent
ROOTS = Path(os.environ.get("PYUSDT_ROOTS_DIR", "/var/cache/pyusdt"))
BASE_IMAGE = "pyusdt-test-base:bookworm"
# Containers the tests start carry this label, so a run cleans up what an
# interrupted one left.
LABEL = "pyusdt-test=1"


def docker(*args: str, timeout: float = 120, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.strip()}")
    return res  # type: ignore[no-any-return]


def docker_unavailable() -> str:
    if shutil.which("docker") is None:
        return "docker is not installed (apt-get install docker.io)"
    res = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0:
        return f"the docker daemon does not answer: {res.stderr.strip()[:200]}"
    return ""


def base_image() -> str:
    """The base image, imported from the bookworm root the first time."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    root = ROOTS / "bookworm-root"
    made = subprocess.run([str(REPO / "scripts" / "debian-root"), "bookworm", str(root), "python3,python3-venv"],
                          capture_output=True, text=True, timeout=1800)
    if made.returncode != 0:
        raise RuntimeError(f"making the bookworm root failed: {made.stdout[-2000:]}{made.stderr[-2000:]}")
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        docker("import", "-", BASE_IMAGE, stdin=tar.stdout, timeout=600)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    return BASE_IMAGE


def image_with(files: dict[str, Path], tag: str) -> str:
    """An image FROM the base with `files` (path in the image -> host file)
    copied in: a layer of its own, so every container of it shares those
    files' inodes (the layer below its overlay)."""
    ctx = Path(os.environ.get("TMPDIR", "/tmp")) / f"pyusdt-image-{uuid.uuid4().hex[:8]}"
    ctx.mkdir()
    try:
        lines = [f"FROM {base_image()}"]
        for i, (dest, src) in enumerate(sorted(files.items())):
            shutil.copy2(src, ctx / f"f{i}")
            lines.append(f"COPY f{i} {dest}")
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        docker("build", "-q", "-t", tag, str(ctx), timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return tag


class Container:
    """One running container: its id, name and host pid of its first process."""

    def __init__(self, image: str, command: Sequence[str], *, name: Optional[str] = None,
                 args: Sequence[str] = ()) -> None:
        self.name = name or f"pyusdt-test-{uuid.uuid4().hex[:10]}"
        out = docker("run", "-d", "--label", LABEL, "--name", self.name, *args, image, *command)
        self.id = out.stdout.strip()
        self.pid = int(docker("inspect", "-f", "{{.State.Pid}}", self.id).stdout.strip())

    def logs(self) -> str:
        return docker("logs", self.id, check=False).stdout

    def wait_for_output(self, text: str, timeout: float = 60) -> str:
        """The container's output once it holds `text` (polled: no sleep decides a result)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.logs()
            if text in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"container {self.name} never printed {text!r}; it printed:\n{self.logs()}")

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.id, *command)

    def signal(self, sig: str, pid: Optional[int] = None) -> None:
        """Sends `sig` to the container's first process (or host pid `pid`)."""
        if pid is None:
            docker("kill", "-s", sig, self.id)
        else:
            os.kill(pid, getattr(__import__("signal"), sig))

    def remove(self) -> None:
        docker("rm", "-f", self.id, check=False)


def remove_leftovers() -> None:
    """Containers an interrupted run left behind."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="session")
def docker_ready(bpf: None) -> Iterator[None]:
    """A docker daemon that answers; containers left over removed before and after."""
    why = docker_unavailable()
    if why:
        missing(why)
    remove_leftovers()
    yield
    remove_leftovers()


@pytest.fixture
def containers(docker_ready: None) -> Iterator[list[Container]]:
    """Start containers with `Container(...)` and append them here: they are removed after the test."""
    started: list[Container] = []
    yield started
    for c in started:
        c.remove()
