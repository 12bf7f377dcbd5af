"""The bpftrace peers the suite measures pyusdt against, and how each is run.

Two builds, in the same runs, interleaved:

  0.17  the host's `bpftrace` (Debian 12 bookworm's)
  0.23  Debian 13 trixie's, from a root of its own cached under
        /var/cache/pyusdt (scripts/bpftrace-trixie makes it on first use,
        ~25-40 s; later runs start at once)

The suite runs 0.23 by the command scripts/bpftrace-trixie prints
(--print-argv): the root's loader and bpftrace, so that no shell script
sits in front of bpftrace's measured start-up.  Both take the same
programs, options and environment (checked when the suite starts them:
see ensure()).

Modes of the sections are named `bpftrace-PEER-KIND` (mode()), e.g.
`bpftrace-0.23-count`; label() gives the human name.
"""
from __future__ import annotations

import os
import subprocess
from typing import Optional

from stream import BenchError

HERE = os.path.dirname(os.path.abspath(__file__))
TRIXIE_SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "bpftrace-trixie")
PEERS = ("0.17", "0.23")

# bpftrace 0.17 refuses more than 512 probes or BPF programs unless told
# otherwise; the scale section attaches 600.  Raised for every bpftrace run
# (0.23 reads BPFTRACE_MAX_PROBES as its max_probes setting and ignores the
# other) so that every section runs both peers the same way.
ENV = {"BPFTRACE_MAX_PROBES": "100000", "BPFTRACE_MAX_BPF_PROGS": "100000"}

_argv: dict = {}
_version: dict = {}


def env() -> dict:
    out = dict(os.environ)
    out.update(ENV)
    return out


def argv(peer: str) -> list:
    """The argv prefix that runs this peer (ensure() must have run)."""
    if peer not in _argv:
        raise BenchError(f"bpftrace {peer}: not set up (peers.ensure() first)")
    return list(_argv[peer])


def command(peer: str, *args: str) -> tuple:
    """(argv, env) of one run of this peer with `args`."""
    return argv(peer) + list(args), env()


def mode(peer: str, kind: Optional[str] = None) -> str:
    return f"bpftrace-{peer}" + (f"-{kind}" if kind else "")


def label(peer: str, kind: Optional[str] = None) -> str:
    return f"bpftrace {peer}" + (f" {kind}" if kind else "")


def versions() -> dict:
    """{peer: `bpftrace --version` output} of the peers set up."""
    return dict(_version)


def ensure(log=print) -> dict:
    """Finds both peers, making 0.23's root the first time, and checks that
    each is the version it is named for.  Idempotent; returns versions()."""
    if len(_version) == len(PEERS):
        return versions()
    found = {"0.17": ["bpftrace"]}
    log("bpftrace peers: 0.17 is the host's; 0.23 through scripts/bpftrace-trixie (which builds its "
        "root the first time, ~25-40 s)")
    r = subprocess.run([TRIXIE_SCRIPT, "--print-argv"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"scripts/bpftrace-trixie could not set up bpftrace 0.23: {r.stderr.strip()[-800:]}")
    found["0.23"] = r.stdout.splitlines()
    for peer in PEERS:
        try:
            out = subprocess.run(found[peer] + ["--version"], capture_output=True, text=True, timeout=60)
        except OSError as e:
            raise BenchError(f"bpftrace {peer}: cannot run {found[peer][0]}: {e}") from None
        version = out.stdout.strip()
        if out.returncode != 0 or not version.startswith(f"bpftrace v{peer}."):
            raise BenchError(f"bpftrace {peer}: {' '.join(found[peer])} says {version or out.stderr.strip()!r}")
        _argv[peer] = found[peer]
        _version[peer] = version
    return versions()
