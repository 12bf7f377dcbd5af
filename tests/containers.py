"""Real containers for the tests: Debian's docker.io, images made offline.

There is no registry: the base image is `docker import` of a debootstrap
root (bookworm minbase + python3, the root check-wheel uses; made by
scripts/base-image, which the pyusdt image of scripts/build-image starts from
too), and images with a test program inside are built FROM it.  Every
container a test starts is removed when the test ends, however it ends.
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
# Containers the tests start carry this label, so a run cleans up what an
# interrupted one left; its value is this tree, so that test runs of other
# trees on the same daemon keep their containers.
LABEL = f"pyusdt-test={REPO}"


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
    """The base image (scripts/base-image makes it the first time)."""
    made = subprocess.run([str(REPO / "scripts" / "base-image")], capture_output=True, text=True, timeout=1800)
    if made.returncode != 0:
        raise RuntimeError(f"scripts/base-image failed: {made.stdout[-2000:]}{made.stderr[-2000:]}")
    return made.stdout.strip()


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

    def logs(self, stderr: bool = False) -> str:
        """What the container wrote to stdout (or to stderr) so far."""
        res = docker("logs", self.id, check=False)
        return res.stderr if stderr else res.stdout

    def wait_for_output(self, text: str, timeout: float = 60, stderr: bool = False) -> str:
        """The container's stdout (or stderr) once it holds `text` (polled: no
        sleep decides a result)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.logs(stderr)
            if text in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"container {self.name} never printed {text!r}; it printed:\n"
                             f"{self.logs()}{self.logs(stderr=True)}")

    def wait(self, timeout: float = 60) -> int:
        """The exit status of the container's first process, once it has exited."""
        return int(docker("wait", self.id, timeout=timeout).stdout.strip())

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.id, *command)

    def signal(self, sig: str) -> None:
        """Sends `sig` to the container's first process."""
        docker("kill", "-s", sig, self.id)

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
