"""Noticing objects a traced process loads (dlopen) the moment it loads them.

glibc's dynamic linker calls _dl_debug_state() (the breakpoint debuggers
use) before and after it maps objects, before their constructors run.  A
site there, in the traced processes only, sends a record with a probe id of
its own; the reader then scans the process for new objects and attaches
their probes at once, instead of at the next periodic rescan.

For a command pyusdt started (-c), the site also holds the process: the BPF
program stops it (SIGSTOP) before the record can be read, and the reader
resumes it (SIGCONT) once the new probes are attached, so not one event
they fire is missed.  A process pyusdt did not start (-p) is not stopped:
its shell would see it stopped; its new probes attach within milliseconds.
A stop still pending when SIGCONT comes is cancelled by it, so the order of
the two cannot leave the process stopped.
"""
from __future__ import annotations

import errno
import os
import signal
from typing import Iterable, Optional

from pyusdt import _native
from pyusdt.errors import AttachError

# Where the hook cannot be placed (no glibc loader, or the kernel refused it),
# new objects are found by rescanning the targets' mappings this often.
RESCAN_INTERVAL_S = 0.2


def _loader_candidates(paths: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(open path, display path) of the objects that may be the dynamic
    linker, the likeliest (ld-*.so*) first."""
    paths = list(paths)
    named = [p for p in paths if os.path.basename(p[1]).startswith("ld-")]
    return named + [p for p in paths if p not in named]


class LoaderHook:
    """The dynamic linker's notification site in every traced process."""

    def __init__(self, session: _native.Session, probe_id: int) -> None:
        self._session = session
        self.probe_id = probe_id
        session.set_loader_probe(probe_id)  # its records are set apart by the native reader
        # Hooks of processes pyusdt does not hold (-p), attached once the
        # first events are read (attach_deferred): see Attacher.attach_pending.
        self._deferred: list[tuple[list[tuple[str, str]], int, bool]] = []
        self._hooked: set[tuple[str, int]] = set()  # (loader file, pid or -1)
        self._holds: set[int] = set()  # pids whose hits stop them (commands pyusdt started)
        self.sites = 0  # sites attached (not probe sites a user asked for)

    def defer(self, objects: Iterable[tuple[str, str]], pid: int, follow: bool) -> None:
        """hook() later, when attach_deferred() is called (a process not held)."""
        self._deferred.append((list(objects), pid, follow))

    @property
    def has_deferred(self) -> bool:
        return bool(self._deferred)

    def attach_deferred(self) -> list[str]:
        """Attaches the deferred hooks; why each that could not, could not."""
        deferred, self._deferred = self._deferred, []
        return [why for objects, pid, follow in deferred if (why := self.hook(objects, pid, follow, False))]

    def hook(self, objects: Iterable[tuple[str, str]], pid: int, follow: bool, hold: bool) -> Optional[str]:
        """Attaches the site in the loader among `objects` ((open path,
        display path) pairs) for process `pid` (with `follow`, every process
        in the tgid filter).  Returns why it could not, or None."""
        for open_path, shown in _loader_candidates(objects):
            site = _native.loader_hook_site(open_path)
            if site is None:
                continue
            key = (os.path.realpath(shown), -1 if follow else pid)
            if key in self._hooked:
                return None
            try:
                self._session.attach(open_path, site, self.probe_id, [], -1 if follow else pid,
                                     _native.FilterKind.TGID if follow else _native.FilterKind.NONE, None, hold)
                for err, message in self._session.commit():
                    raise AttachError.refused(err, message)
            except AttachError as e:
                if not follow and e.os_errno == errno.ESRCH:
                    return None  # the process has exited: it loads nothing more (the watcher says it ended)
                return f"objects loaded later are found by a rescan every {RESCAN_INTERVAL_S:g} s: {e}"
            self._hooked.add(key)
            self.sites += 1
            if hold:
                self._holds.add(pid)
            return None
        return None  # not a glibc process (static, musl): the periodic rescan finds new objects

    def resume(self, pids: Iterable[int]) -> None:
        """Lets processes the hook stopped go on (a pid it never holds is left alone)."""
        _continue(p for p in pids if p in self._holds or (self._holds and self._session_follows(p)))

    def resume_all(self) -> None:
        """At the end of the trace: no process is left stopped by us."""
        _continue(self._holds)

    def _session_follows(self, pid: int) -> bool:
        """A descendant of a held command, traced with follow_children."""
        try:
            return pid in self._session.tgids()
        except Exception:  # noqa: BLE001 - a closed session follows no one
            return False


def _continue(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
