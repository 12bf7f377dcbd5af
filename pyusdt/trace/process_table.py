"""Who a traced process is beyond its host pid: its pid inside its own pid
namespace, its cgroup, and the container that cgroup is.  Records carry
only the host pid (the ring buffer pays for every byte), so each pid is
looked up once, when a batch first holds it: it has just hit a probe, so
it is almost always still running then.  One that already exited keeps
its host pid alone (the other fields None).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from pyusdt.discover.cgroups import process_cgroup
from pyusdt.discover.containers import SHORT_ID_LEN, container_of_path
from pyusdt.discover.process import namespace_pid

if TYPE_CHECKING:  # pragma: no cover - type names only
    import numpy as np

# Pids remembered at most; beyond, the table starts again (pids are reused).
MAX_REMEMBERED = 65536


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int  # as the host (pyusdt's namespace) sees it
    ns_pid: Optional[int]  # as its own pid namespace sees it
    cgroup: Optional[str]  # cgroup v2 path
    container: Optional[str]  # full container id, when the cgroup is a container's

    @property
    def short_container(self) -> Optional[str]:
        return None if self.container is None else self.container[:SHORT_ID_LEN]


class ProcessTable:
    """pid -> ProcessIdentity, looked up on first sight."""

    def __init__(self) -> None:
        self._known: dict[int, ProcessIdentity] = {}

    def identity(self, pid: int) -> ProcessIdentity:
        known = self._known.get(pid)
        if known is None:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            cgroup = process_cgroup(pid)
            found = container_of_path(cgroup) if cgroup is not None else None
            known = ProcessIdentity(pid, namespace_pid(pid), cgroup, found[0] if found else None)
            self._known[pid] = known
        return known

    def learn(self, pids: np.ndarray) -> None:
        """Looks up the pids of a batch (its pid column) now, while they run."""
        for pid in set(pids.tolist()):
            self.identity(int(pid))

    def forget(self, pid: int) -> None:
        self._known.pop(pid, None)
