"""Targets on the command line, the same for every command: PATH, -p PID,
-c "CMD", or a scan: --cgroup PATH, --container ID|NAME, --object NAME|BUILD-ID."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Optional

from pyusdt.discover.process import descendants, process_objects
from pyusdt.errors import ConfigError, PyusdtError
from pyusdt.trace.requests import inode_keys
from pyusdt.trace.tracer import Tracer

# Imported where they are used: a plain `trace -p` needs none of them before
# its first event (latencies, -c commands, cgroup and container scans), and
# together they cost ~10 ms of start-up (subprocess, json, dataclasses).
if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.aggregate.specs import Latency
    from pyusdt.trace.launcher import HeldProcess
    from pyusdt.trace.scan_targets import ScanTarget


def show_waiting(tracer: Tracer) -> None:
    """Patterns that match nothing yet: the trace waits for objects loaded later."""
    for why in tracer.waiting:
        print(f"pyusdt: {why} yet; waiting for the objects it loads", file=sys.stderr)


def show_unmatched(tracer: Tracer) -> int:
    """1 (after one line each) when a waiting pattern never matched, else 0."""
    for why in tracer.unmatched:
        print(f"pyusdt: {why}: none appeared during the trace", file=sys.stderr)
    return 1 if tracer.unmatched else 0


def show_warnings(tracer: Tracer) -> None:
    """The tracer's warnings not shown yet, one line each on stderr."""
    for w in tracer.take_warnings():
        print(f"pyusdt: warning: {w}", file=sys.stderr)


# Child processes a hint names at most (a server has many).
MAX_CHILDREN_NAMED = 5


def show_follow_hint(tracer: Tracer, args: argparse.Namespace) -> None:
    """-p P without -f saw no hit, while processes P forked map what was
    attached (a server whose workers do the work): say that -f traces them."""
    if args.pid is None or getattr(args, "follow_forks", False) or any(s.hits for s in tracer.stats()):
        return
    traced = tracer.traced_files
    mapping = []
    for child in descendants(args.pid):
        try:
            objects = process_objects(child)
        except PyusdtError:
            continue  # exited meanwhile, or not ours to read
        if traced & inode_keys(o.open_path for o in objects):
            mapping.append(child)
    if not mapping:
        return
    named = ", ".join(map(str, mapping[:MAX_CHILDREN_NAMED]))
    more = f" and {len(mapping) - MAX_CHILDREN_NAMED} more" if len(mapping) > MAX_CHILDREN_NAMED else ""
    print(f"pyusdt: hint: no hits in process {args.pid}, but {len(mapping)} process(es) it forked "
          f"({named}{more}) map the traced file(s): -f (--follow-forks) traces them too", file=sys.stderr)


def close_quickly(tracer: Tracer) -> None:
    """Closes a tracer whose results are out, leaving a slow detach (many
    perf-event links) to a background process, and saying so."""
    tracer.close(detach_in_background=True)
    if tracer.detaching_pid is not None:
        print(f"pyusdt: detaching {tracer.detaching_links} perf-event link(s) in the background "
              f"(pid {tracer.detaching_pid}; the kernel takes a moment for each)", file=sys.stderr)


def split_target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Optional[str], Optional[str]]:
    """(path, pattern) from the positionals, by whether -p/-c named the
    target: split_specs, for a command that takes one pattern at most."""
    path, patterns = split_specs(args, parser)
    if len(patterns) > 1:
        parser.error("with -p or -c, give only a PATTERN" if path is None else "give PATH and at most one PATTERN")
    return path, (patterns[0] if patterns else None)


def scan_of(args: argparse.Namespace) -> Optional[ScanTarget]:
    """The scan target --cgroup, --container or --object name, else None."""
    if (args.cgroup, args.container, args.object) == (None, None, None):
        return None
    from pyusdt.trace.scan_targets import ScanTarget

    if args.cgroup is not None:
        from pyusdt.discover.cgroups import cgroup_at

        return ScanTarget(cgroup_at(args.cgroup), None, args.object)
    if args.container is not None:
        from pyusdt.discover.containers import find_container

        container, cgroup = find_container(args.container)
        return ScanTarget(cgroup, container, args.object)
    return ScanTarget(None, None, args.object)


def split_specs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Optional[str], list[str]]:
    """(path, patterns) for a command that takes several probe specs: after
    PATH (or with -p/-c or a scan target), every positional is one."""
    named = [flag for flag, given in (("-p", args.pid is not None),
                                      ("-c", getattr(args, "command", None) is not None),
                                      ("--cgroup", args.cgroup is not None),
                                      ("--container", args.container is not None)) if given]
    if len(named) > 1:
        parser.error(f"give one target: {' and '.join(named)} together")
    if args.object is not None and named and named[0] in ("-p", "-c"):
        parser.error(f"--object narrows --cgroup or --container (or alone: every process), not {named[0]}")
    pos = list(args.target)
    if named or args.object is not None:
        return None, pos
    if not pos:
        parser.error("give a PATH, or -p PID" + (" or -c CMD" if hasattr(args, "command") else "")
                     + ", or --cgroup, --container or --object")
    return pos[0], pos[1:]


class Target:
    """The command line's target, attached once or several times (one held
    command shared by every attach)."""

    def __init__(self, args: argparse.Namespace, parser: argparse.ArgumentParser, path: Optional[str]) -> None:
        self.pid = args.pid
        self.path = path
        self.cgroup: Optional[str] = args.cgroup
        self.container: Optional[str] = args.container
        self.objects: Optional[str] = args.object
        self.command: Optional[list[str]] = None
        self.held: Optional[HeldProcess] = None
        if getattr(args, "command", None) is not None:
            import shlex  # only -c splits a command line

            try:
                self.command = shlex.split(args.command)
            except ValueError as e:  # an unterminated quote or escape
                raise ConfigError(f"-c: {e}: {args.command}") from None
            if not self.command:
                parser.error("-c needs a command")

    def _held(self) -> HeldProcess:
        if self.held is None:
            assert self.command is not None  # a -c target
            from pyusdt.trace.launcher import HeldProcess

            self.held = HeldProcess(self.command)
        return self.held

    def attach(self, tracer: Tracer, pattern: str, **kw: Any) -> None:
        """A process's pattern may match only objects it loads later (dlopen):
        it waits for them, said at once (waiting_lines) and at the end (unmatched_lines)."""
        if self.pid is not None:
            tracer.attach_pid(self.pid, pattern, later=True, **kw)
        elif self.cgroup is not None:
            tracer.attach_cgroup(self.cgroup, pattern, objects=self.objects, **kw)
        elif self.container is not None:
            tracer.attach_container(self.container, pattern, objects=self.objects, **kw)
        elif self.objects is not None:
            tracer.attach_object(self.objects, pattern, **kw)
        elif self.command is not None:
            tracer.attach_command(self._held(), pattern, later=True, **kw)
        else:
            assert self.path is not None  # split_target gave a path when neither -p nor -c
            tracer.attach_path(self.path, pattern, **kw)

    def attach_latency(self, tracer: Tracer, latency: Latency) -> None:
        if self.pid is not None:
            tracer.attach_latency(latency, pid=self.pid)
        elif (self.cgroup, self.container, self.objects) != (None, None, None):
            tracer.attach_latency(latency, cgroup=self.cgroup, container=self.container, objects=self.objects)
        elif self.command is not None:
            tracer.attach_latency(latency, command=self._held())
        else:
            tracer.attach_latency(latency, path=self.path)
