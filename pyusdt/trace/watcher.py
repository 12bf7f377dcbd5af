"""Watching pid and command targets for objects they map after start
(dlopen, exec, forked children), and scan targets (cgroups, containers,
objects everywhere) for new processes and objects, and attaching the
matching probes.

The dynamic linker's hook (loader_hook) reports a load as it happens; a
rescan of /proc every RESCAN_INTERVAL_S catches what the hook cannot see
(static or non-glibc programs, exec, children with follow_children).
"""
from __future__ import annotations

import time
from typing import Iterable

from pyusdt.discover.patterns import match
from pyusdt.discover.process import probes_in_object, process_objects
from pyusdt.errors import PyusdtError
from pyusdt.trace.attacher import Attacher
from pyusdt.trace.loader_hook import RESCAN_INTERVAL_S
from pyusdt.trace.requests import AttachRequest, check_probes, inode_key, pid_alive


class ObjectWatcher:
    """New objects of the targets of `requests` (the tracer's list, shared)."""

    def __init__(self, attacher: Attacher, requests: list[AttachRequest]) -> None:
        self._attacher = attacher
        self._requests = requests
        self._last_rescan = 0.0

    def rescan_if_due(self) -> None:
        if time.monotonic() - self._last_rescan >= RESCAN_INTERVAL_S:
            self.rescan()

    def rescan(self) -> None:
        """Attaches probes in objects that appeared since the last look."""
        self._last_rescan = time.monotonic()
        attacher = self._attacher
        session = attacher.session
        for req in self._requests:
            if req.kind == "path" or req.only_path is not None:
                continue
            if req.scan is not None:
                self._rescan_target(req)
                continue
            assert req.pid is not None  # pid and command targets have one
            pids = session.tgids() if attacher.follow_children else [req.pid]
            for pid in pids:
                try:
                    objects = process_objects(pid)
                except PyusdtError:
                    if attacher.follow_children and not pid_alive(pid):
                        session.remove_tgid(pid)
                    continue
                for obj in objects:
                    try:
                        key = inode_key(obj.open_path)
                    except OSError:
                        continue
                    if key in req.seen_objects:
                        continue
                    req.seen_objects.add(key)
                    found = check_probes(match(probes_in_object(obj), req.pattern), req, False,
                                         attacher.warnings)
                    req.matched = req.matched or bool(found)
                    req.pending.extend(found)
            attacher.attach_checked(req)

    def _rescan_target(self, req: AttachRequest) -> None:
        """New member processes of a scan target, and objects its members
        mapped since the last look."""
        assert req.scanner is not None
        from pyusdt.trace.scan_targets import probes_of_objects  # loaded already: it made req.scanner

        attacher = self._attacher
        found = check_probes(match(probes_of_objects(req.scanner.new_objects(req.seen_objects)), req.pattern), req,
                             False, attacher.warnings)
        req.matched = req.matched or bool(found)
        req.pending.extend(found)
        attacher.attach_checked(req)

    def objects_loaded(self, pids: Iterable[int], rescan: bool) -> None:
        """The processes whose dynamic linker hit the loader hook: rescans
        them (unless `rescan` is False: the trace has stopped), then lets
        the ones the hook holds go on."""
        pids = list(pids)
        if not pids:
            return
        loader = self._attacher.loader
        assert loader is not None
        try:
            if rescan:
                self.rescan()
            if self._attacher.stacks is not None:
                # Their mappings now, while the hook holds them: the objects
                # just mapped name the frames of their stacks.
                self._attacher.stacks.remember(pids)
        finally:
            loader.resume(pids)

    def restart(self) -> None:
        """The next rescan_if_due() rescans (the session has just started)."""
        self._last_rescan = 0.0
