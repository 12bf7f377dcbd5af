"""The target arguments every command takes (PATH, -p PID, -c "CMD",
--cgroup, --container, --object), what the parser needs of them and
nothing more: a command's parser is built before anything heavy is
imported (pyusdt.cli.main).  Using the targets is pyusdt.cli.targets'."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

# The subcommands of the top-level parser, as each command module adds its own
# (argparse's class is generic only to type checkers).
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[Any]
else:
    Subcommands = argparse._SubParsersAction


# --where, as every command that takes one says it.
WHERE_HELP = ("only hits where this bpftrace predicate holds, e.g. 'str(arg0) == \"GET\" && arg2 >= 500' "
              "(evaluated in the kernel)")


class Terminated(Exception):
    """SIGTERM, turned into an exception so every cleanup path runs."""


def add_target_args(p: argparse.ArgumentParser, with_command: bool) -> None:
    p.add_argument("-p", "--pid", type=int, help="a running process: every ELF object it maps")
    if with_command:
        p.add_argument("-c", "--command", help='run this command ("CMD ARGS"), traced from its start')
    p.add_argument("--cgroup", metavar="PATH",
                   help="every process of this cgroup (v2) and the cgroups below it, now and later")
    p.add_argument("--container", metavar="ID|NAME",
                   help="every process of this running container (docker, podman, containerd, CRI-O), now and later")
    p.add_argument("--object", metavar="NAME|BUILD-ID",
                   help="only objects with this file name (a glob) or build-id; alone: that object in every "
                        "process on the host, containers included, now and later")
    p.add_argument("target", nargs="*", metavar="[PATH] [PATTERN]",
                   help="an ELF file (unless -p/-c/--cgroup/--container/--object), then a glob on provider:name")
