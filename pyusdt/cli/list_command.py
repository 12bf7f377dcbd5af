"""`pyusdt list`: the probes of a file or process, as text or JSON lines."""
from __future__ import annotations

import argparse
import sys

from pyusdt.cli.target_args import Subcommands, add_target_args
from pyusdt.cli.targets import scan_of, split_target
from pyusdt.discover.patterns import require_match
from pyusdt.discover.probes import probes_at_path
from pyusdt.export.text import write_probes
from pyusdt.trace.requests import probes_of_process
from pyusdt.trace.scan_targets import Scanner, probes_of_objects


def add_command(sub: Subcommands) -> None:
    p_list = sub.add_parser("list", help="list the USDT probes of a file, process, cgroup or container")
    add_target_args(p_list, with_command=False)
    p_list.add_argument("--json", action="store_true", help="one JSON object per probe")
    p_list.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    path, pattern = split_target(args, parser)
    scan = scan_of(args)
    if scan is not None:
        probes = require_match(probes_of_objects(Scanner(scan).new_objects(set())), pattern, scan.describe())
    elif args.pid is not None:
        probes = probes_of_process(args.pid, pattern)
    else:
        assert path is not None  # split_target gave a path when there is no -p
        probes = require_match(probes_at_path(path), pattern, path)
    write_probes(probes, sys.stdout, args.json)
    return 0
