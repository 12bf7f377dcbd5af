"""The pyusdt image under test, built from this tree as scripts/build-image
builds it for users.

Building is the slow part (the wheel compiles C++, the image installs it), so
both are kept by content: the wheel in build/deploy/wheel-KEY, KEY a hash of
the files the wheel is built from, and the image tagged pyusdt-test:KEY, KEY a
hash of the wheel, the recipe and the base image.  A session builds them at
most once, and a later run of an unchanged tree builds nothing.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from containers import REPO, base_image, docker

# What the wheel is made of (the package, its native sources, the build
# recipe and the pinned third-party sources) and what it is not (bytecode,
# native modules built or linked into the tree).
WHEEL_SOURCES = ("pyproject.toml", "CMakeLists.txt", "README.md", "bpf", "csrc", "pyusdt",
                 "scripts/fetch-third-party")
NOT_SOURCE_DIRS = {"__pycache__"}
NOT_SOURCE_SUFFIXES = {".pyc", ".so"}
IMAGE_RECIPE = ("deploy/Dockerfile", "scripts/build-image", "scripts/base-image")
IMAGE_REPOSITORY = "pyusdt-test"
WHEELS = REPO / "build" / "deploy"


def _files_key(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _wheel_sources() -> list[Path]:
    found = []
    for name in WHEEL_SOURCES:
        top = REPO / name
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if (path.is_file() and path.suffix not in NOT_SOURCE_SUFFIXES
                    and NOT_SOURCE_DIRS.isdisjoint(path.relative_to(REPO).parts)):
                found.append(path)
    return found


def tree_wheel() -> Path:
    """A wheel of this tree for the running Python (the image's: cp311),
    built by pip as a user would build one, or the one built before from the
    same sources."""
    key = _files_key(_wheel_sources())
    home = WHEELS / f"wheel-{key}"
    built = sorted(home.glob("pyusdt-*.whl"))
    if len(built) == 1:
        return built[0]
    WHEELS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WHEELS) as tmp:
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                              str(REPO), "-w", tmp], cwd=REPO, capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            pytest.fail(f"building a wheel of {REPO} failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
        (wheel,) = Path(tmp).glob("pyusdt-*.whl")
        for old in WHEELS.glob("wheel-*"):
            shutil.rmtree(old)
        home.mkdir()
        return Path(shutil.move(str(wheel), home / wheel.name))


def tree_image() -> str:
    """The pyusdt image of this tree (scripts/build-image on tree_wheel()),
    tagged by what it is made of; older images of the tests removed."""
    wheel = tree_wheel()
    base_id = docker("image", "inspect", "-f", "{{.Id}}", base_image()).stdout.strip()
    h = hashlib.sha256(base_id.encode())
    for path in (wheel, *(REPO / p for p in IMAGE_RECIPE)):
        h.update(path.read_bytes())
    image = f"{IMAGE_REPOSITORY}:{h.hexdigest()[:16]}"
    if docker("image", "inspect", image, check=False).returncode == 0:
        return image
    res = subprocess.run([str(REPO / "scripts" / "build-image"), str(wheel), image],
                         capture_output=True, text=True, timeout=1800)
    if res.returncode != 0 or res.stdout.strip() != image:
        pytest.fail(f"scripts/build-image {wheel} {image} failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
    old = docker("image", "ls", "-q", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY).stdout.split()
    stale = [o for o in old if o != image]
    if stale:
        docker("rmi", *stale, check=False)
    return image
