"""Bad input to the CLI: one line on stderr starting with "pyusdt:", a
non-zero exit, never a traceback.  Probes whose argument specs pyusdt
cannot read are refused by name while the others are still traced."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from pyusdt import Tracer
from pyusdt.errors import UnsupportedArgumentError

from conftest import PYUSDT, missing

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def assert_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """The run failed with exactly one 'pyusdt: ...' line naming every fragment."""
    assert res.returncode != 0, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("pyusdt: "), line
    for f in fragments:
        assert f in line, (f, line)
    assert res.stdout == ""
    return line


@pytest.fixture(scope="module")
def widths(build):
    return build("args_widths.c", "args_widths")


@pytest.fixture(scope="module")
def badspec(build):
    return build("args_badspec.c", "args_badspec")


def missing_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + 1  # above pid_max: never a process


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_no_such_pid(cli, sub):
    pid = missing_pid()
    assert_error(cli(sub, "-p", str(pid)), "no such process", str(pid))


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_path_missing(cli, sub, tmp_path):
    path = str(tmp_path / "does-not-exist")
    assert_error(cli(sub, path), "no such file", path)


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_not_elf(cli, sub):
    assert_error(cli(sub, "/etc/passwd"), "/etc/passwd", "not an ELF")


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_directory(cli, sub, tmp_path):
    assert_error(cli(sub, str(tmp_path)), str(tmp_path), "directory")


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_elf_without_probes(cli, sub):
    true = os.path.realpath(shutil.which("true"))
    assert subprocess.run(["readelf", "-n", true], capture_output=True, text=True).stdout.count("stapsdt") == 0
    assert_error(cli(sub, true), true, "no USDT probes")


@pytest.mark.parametrize("sub", ["trace", "list"])
def test_pattern_matches_nothing(cli, sub, widths):
    assert_error(cli(sub, str(widths), "nosuch:probe"), str(widths), "no probe matches", "nosuch:probe")


def test_command_not_found(cli, tmp_path):
    assert_error(cli("trace", "-c", str(tmp_path / "no-such-command")), "command not found")


def test_string_index_out_of_range(cli, widths):
    # args:indexed has 3 arguments (0..2).
    assert_error(cli("trace", str(widths), "args:indexed", "-s", "3"), "argument 3", "out of range")
    assert_error(cli("trace", str(widths), "args:indexed", "-s", "-1"), "argument -1", "out of range")


def test_string_on_4_byte_argument(cli, widths):
    # args:indexed arg2 is -4@...(%reg,%reg,4): an int, not a pointer.
    assert_error(cli("trace", str(widths), "args:indexed", "-s", "2"),
                 "argument 2", "args:indexed", "4-byte")


def test_bad_str_len(cli, widths):
    assert_error(cli("trace", str(widths), "--str-len", "0"), "--str-len must be at least 1 (got 0)")


# -- not root ------------------------------------------------------------------


@pytest.fixture(scope="module")
def public_copy(widths):
    """args_widths in a directory user nobody can read."""
    d = tempfile.mkdtemp(prefix="pyusdt-args-")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "args_widths")
        shutil.copy2(widths, path)
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(d)


def as_nobody(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, PYUSDT, *args], capture_output=True, text=True, timeout=60, cwd="/")


def test_trace_as_nobody(bpf, public_copy):
    line = assert_error(as_nobody("trace", public_copy, "args:consts"), "permission")
    assert "CAP_BPF" in line


def test_trace_command_as_nobody(bpf, public_copy, tmp_path):
    line = assert_error(as_nobody("trace", "-c", f"{public_copy} 1 /dev/null", "args:consts"), "permission")
    assert "CAP_BPF" in line


def test_list_as_nobody(cli, public_copy):
    if os.geteuid() != 0:
        missing("switching to user nobody needs root")
    res = as_nobody("list", public_copy)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    mine = cli("list", public_copy)
    assert mine.returncode == 0
    assert res.stdout == mine.stdout
    assert len(res.stdout.splitlines()) == 6


# -- argument specs pyusdt cannot read --------------------------------------


def test_badspec_notes_are_what_sys_sdt_emits(badspec):
    out = subprocess.run(["readelf", "-n", str(badspec)], capture_output=True, text=True, check=True).stdout
    found = {(p, n): a for p, n, a in
             re.findall(r"Provider: (\S+)\s+Name: (\S+)\s+Location: .*\n\s+Arguments: ([^\n]*)", out)}
    assert sorted(found) == [("badspec", "fsbase"), ("badspec", "good"), ("badspec", "xmm")]
    assert found[("badspec", "fsbase")] == "8@%fs:0x28"
    assert found[("badspec", "xmm")] == "-4@%xmm0"
    assert len(found[("badspec", "good")].split()) == 2
    # The program runs normally.
    assert subprocess.run([str(badspec), "3"], timeout=10).returncode == 0


def test_badspec_cli_warns_and_traces_the_rest(bpf, badspec, cli):
    res = cli("trace", "-c", f"{badspec} 5", "badspec:*")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("pyusdt: warning:")]
    assert len(warnings) == 2, res.stderr
    fs = next(w for w in warnings if "badspec:fsbase" in w)
    xmm = next(w for w in warnings if "badspec:xmm" in w)
    assert "8@%fs:0x28" in fs and "badspec:xmm" not in fs
    assert "-4@%xmm0" in xmm and "badspec:fsbase" not in xmm
    assert "badspec:good" not in "".join(warnings)
    tails = [line.split(" ", 3)[3] for line in res.stdout.splitlines()]
    assert tails == [f"badspec:good arg0={i} arg1={7 * i}" for i in range(5)]
    assert re.search(r"^pyusdt: 5 events, 0 lost", res.stderr, re.M)
    assert re.search(r"^\s+badspec:good\s+5 events", res.stderr, re.M)


def test_badspec_api_refuses_by_name(bpf, badspec):
    with Tracer() as t:
        held = t.attach_command([str(badspec), "4"], "badspec:*")
        assert len(t.warnings) == 2
        assert any("badspec:fsbase" in w for w in t.warnings)
        assert any("badspec:xmm" in w for w in t.warnings)
        t.start()
        events = [e for b in t.batches(timeout=0.1, duration=20) for e in b]
        stats = [(s.probe, s.events, s.hits) for s in t.stats()]
    assert [(e.probe.fullname, e.args) for e in events] == [("badspec:good", (i, 7 * i)) for i in range(4)]
    assert stats == [("badspec:good", 4, 4)]
    assert held.wait() == 0  # the traced program was not harmed


@pytest.mark.parametrize("pattern, names", [
    ("badspec:[fx]*", ["badspec:fsbase", "badspec:xmm"]),
    ("badspec:xmm", ["badspec:xmm", "%xmm0"]),
    ("badspec:fsbase", ["badspec:fsbase", "%fs:0x28"]),
])
def test_badspec_only_refused_probes_is_an_error(bpf, badspec, cli, pattern, names):
    assert_error(cli("trace", "-c", f"{badspec} 2", pattern), *names)
    assert_error(cli("trace", str(badspec), pattern), *names)


def test_badspec_api_only_refused_raises(bpf, badspec):
    with Tracer() as t:
        with pytest.raises(UnsupportedArgumentError, match="badspec:xmm"):
            t.attach_path(str(badspec), "badspec:xmm")
