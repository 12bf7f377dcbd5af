"""CO-RE against pyusdt's minimal kernel BTF (csrc/session/core_btf.h):
every program relocates exactly as against the kernel's whole BTF, the
minimal BTF is kept per kernel in a private cache directory, and a cache
file that is bad, or that another user could have written, never decides
what the program reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TAGS = Path(__file__).resolve().parents[1] / "scripts" / "kernel-checks" / "targets" / "kc_program_tags.py"
EVERY_PROGRAM = ["string_slots=2", "aggregate=1", "expressions=1"]


def program_tags(cache: Path | None, mode: str = "minimal", opts: list[str] = EVERY_PROGRAM,
                 env: dict[str, str] | None = None) -> list[str]:
    """The loaded programs' tags, from a process of its own (the minimal
    BTF is made once per process), in `env` (default: this one's) with
    PYUSDT_CORE_BTF=mode and, given a `cache`, PYUSDT_CACHE_DIR=cache."""
    env = {**(os.environ if env is None else env), "PYUSDT_CORE_BTF": mode}
    if cache is not None:
        env["PYUSDT_CACHE_DIR"] = str(cache)
    r = subprocess.run([sys.executable, str(TAGS), *opts], capture_output=True, text=True, timeout=120,
                       env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("core-*.btf"))


@pytest.fixture
def kernel_tags(bpf) -> dict[str, list[str]]:
    return {"every": program_tags(None, "kernel"), "plain": program_tags(None, "kernel", [])}


def test_minimal_btf_relocates_every_program_as_the_kernels_btf(kernel_tags, tmp_path):
    cache = tmp_path / "cache"
    cold = program_tags(cache)
    assert len(kernel_tags["every"]) == 4  # stream, aggregate, and their sleepable twins
    assert cold == kernel_tags["every"]
    (made,) = cache_files(cache)
    assert made.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    # The cached file, read by a later process: the same instructions.
    assert program_tags(cache) == kernel_tags["every"]
    assert program_tags(cache, opts=[]) == kernel_tags["plain"]
    assert cache_files(cache) == [made]
    # Named by the kernel's build ID: the notes the kernel exports carry it.
    assert made.name.startswith("core-") and len(made.name.split("-")[1]) == 40


def test_a_cache_file_that_does_not_load_is_removed_and_the_kernels_btf_used(kernel_tags, tmp_path):
    cache = tmp_path / "cache"
    program_tags(cache)
    (made,) = cache_files(cache)
    made.write_bytes(b"not BTF at all")
    made.chmod(0o600)
    assert program_tags(cache) == kernel_tags["every"]
    assert cache_files(cache) == []  # read, refused by libbpf, and removed
    program_tags(cache)
    assert [p.name for p in cache_files(cache)] == [made.name]  # made again by the next process


def test_a_cache_file_others_can_write_is_not_read(kernel_tags, tmp_path):
    cache = tmp_path / "cache"
    program_tags(cache)
    (made,) = cache_files(cache)
    good = made.read_bytes()
    made.write_bytes(b"planted")
    made.chmod(0o666)
    assert program_tags(cache) == kernel_tags["every"]
    # Not read: made again from the kernel's BTF and put in its place, private.
    assert made.read_bytes() == good
    assert made.stat().st_mode & 0o777 == 0o600


def test_a_cache_directory_others_can_write_is_not_used(kernel_tags, tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    assert program_tags(cache) == kernel_tags["every"]
    assert cache_files(cache) == []  # kept in memory for that process only


def test_the_cache_goes_under_xdg_cache_home(kernel_tags, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYUSDT_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert program_tags(None, env=env) == kernel_tags["every"]
    assert len(cache_files(tmp_path / "xdg" / "pyusdt")) == 1


@pytest.mark.parametrize("own_home", [True, False])
def test_the_cache_goes_under_home_only_if_it_is_the_users(kernel_tags, tmp_path, own_home):
    home = tmp_path / "home"
    home.mkdir()
    if not own_home:
        os.chown(home, 65534, 65534)  # nobody's: a root process must not make files there
    env = {k: v for k, v in os.environ.items() if k not in ("PYUSDT_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    assert program_tags(None, env=env) == kernel_tags["every"]
    assert len(cache_files(home / ".cache" / "pyusdt")) == (1 if own_home else 0)
    assert (home / ".cache").exists() == own_home


def test_the_cache_keeps_only_the_files_last_used(kernel_tags, tmp_path):
    """A file is made per (kernel build, pyusdt build): without pruning,
    upgrades would add files forever.  Eight are kept, the last used."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    earlier = []
    for i in range(10):  # other kernels' and builds' files, the first the least recently used
        f = cache / f"core-{'0' * 40}-{i:016x}.btf"
        f.write_bytes(b"another kernel's")
        f.chmod(0o600)
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
        earlier.append(f)
    mine = cache / "notes.txt"
    mine.write_text("not pyusdt's")
    assert program_tags(cache) == kernel_tags["every"]
    left = cache_files(cache)
    (made,) = set(left) - set(earlier)
    assert len(left) == 8
    assert sorted(set(left) & set(earlier)) == earlier[-7:]
    assert mine.read_text() == "not pyusdt's"
    # A process reading its file makes nothing and removes nothing.
    assert program_tags(cache) == kernel_tags["every"]
    assert cache_files(cache) == left
