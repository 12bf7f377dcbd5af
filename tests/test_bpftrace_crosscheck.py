"""pyusdt and bpftrace, the reference peer, read the same values from the
same programs: a register, a memory operand and a base+index*scale one."""
from __future__ import annotations

import re
import subprocess

from pyusdt import Tracer

LINE = re.compile(r"^-?\d+( -?\d+)*$")


def run_bpftrace(bpftrace: str, program: str, command: str) -> str:
    res = subprocess.run([bpftrace, "-e", program, "-c", command], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Attaching" in res.stdout
    return res.stdout


def values(stdout: str, prefix: str = "") -> list[tuple]:
    """The value lines bpftrace printed that start with `prefix`, prefix removed."""
    vals = []
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        line = line[len(prefix):]
        if LINE.match(line):
            vals.append(tuple(int(v) for v in line.split()))
    return vals


def run_pyusdt(argv: list[str], pattern: str) -> dict:
    out: dict = {}
    with Tracer() as t:
        t.attach_command(argv, pattern)
        t.start()
        for batch in t.batches(timeout=0.1, duration=20):
            for e in batch:
                out.setdefault(e.probe.fullname, []).append(e.args)
    return out


def test_crosscheck_three_args(bpftrace, build):
    prog = build("args_crosscheck.c", "args_crosscheck")
    rounds = 25
    theirs = values(run_bpftrace(
        bpftrace,
        f'usdt:{prog}:xcheck:point {{ printf("%d %d %d\\n", arg0, arg1, arg2); }}',
        f"{prog} {rounds}",
    ))
    ours = run_pyusdt([str(prog), str(rounds)], "xcheck:point")
    expected = [(i, i * i - 50, -i * 1000003) for i in range(rounds)]
    assert theirs == expected
    assert ours == {"xcheck:point": expected}


def test_crosscheck_widths_and_index(bpftrace, build, tmp_path):
    """64-bit values (%lld) of the sub-register and base+index*scale probes."""
    prog = build("args_widths.c", "args_widths")
    out = tmp_path / "fired.txt"
    script = (
        f'usdt:{prog}:args:reg_signed {{ printf("S %lld %lld %lld %lld\\n", arg0, arg1, arg2, arg3); }} '
        f'usdt:{prog}:args:mem_signed {{ printf("M %lld %lld %lld %lld\\n", arg0, arg1, arg2, arg3); }} '
        f'usdt:{prog}:args:indexed {{ printf("I %lld %lld %lld\\n", arg0, arg1, arg2); }}'
    )
    stdout = run_bpftrace(bpftrace, script, f"{prog} 2 {out}")
    theirs = {
        "args:reg_signed": values(stdout, "S "),
        "args:mem_signed": values(stdout, "M "),
        "args:indexed": values(stdout, "I "),
    }
    ours = run_pyusdt([str(prog), "2", str(out)], "args:*")
    assert [len(v) for v in theirs.values()] == [8, 8, 12]  # 4 rows, 4 rows, 6 indices; twice
    for name in theirs:
        assert ours[name] == theirs[name], name
    assert theirs["args:reg_signed"][:4] == [
        (-(2**7), -(2**15), -(2**31), -(2**63)),
        (2**7 - 1, 2**15 - 1, 2**31 - 1, 2**63 - 1),
        (0, 0, 0, 0),
        (-1, -1, -1, -1),
    ]
