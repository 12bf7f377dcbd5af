"""Containers, found without any daemon's API: a container is the cgroup
whose path names its 64-hex-digit id, as docker ("/docker/ID",
"/system.slice/docker-ID.scope"), podman ("libpod-ID.scope"), containerd
and CRI-O ("cri-containerd-ID.scope", "crio-ID.scope", "/kubepods/.../ID")
all name them.  A name is looked up in docker's and podman's state files.
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from typing import Optional

from pyusdt.discover.cgroups import Cgroup, cgroup_at, process_cgroup
from pyusdt.errors import NoSuchContainerError

# A path component holding a container id: the id alone, or with a runtime's
# prefix and systemd's ".scope" suffix.
_ID_COMPONENT = re.compile(r"^(?:[a-z][a-z0-9_-]*-)?([0-9a-f]{64})(?:\.scope)?$")
# How a short id is shown (docker ps).
SHORT_ID_LEN = 12
# Where docker and podman (as root) keep each container's name.
DOCKER_CONFIGS = "/var/lib/docker/containers/*/config.v2.json"
PODMAN_CONTAINERS = "/var/lib/containers/storage/overlay-containers/containers.json"


@dataclass(frozen=True)
class Container:
    """A running container: its full id and its cgroup."""

    id: str
    cgroup_path: str  # the cgroup named by the id (the container's own, above any it made)

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID_LEN]


def container_of_path(path: str) -> Optional[tuple[str, str]]:
    """(container id, the container's cgroup path) for a cgroup path inside
    a container, else None.  The outermost component naming an id wins: a
    container's own sub-cgroups (systemd inside it) stay its own."""
    parts = path.strip("/").split("/")
    for i, part in enumerate(parts):
        m = _ID_COMPONENT.match(part)
        if m:
            return m.group(1), "/" + "/".join(parts[:i + 1])
    return None


def running_containers() -> dict[str, str]:
    """Every container with a process running: id -> its cgroup path."""
    found: dict[str, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        path = process_cgroup(int(name))
        hit = container_of_path(path) if path is not None else None
        if hit is not None:
            found.setdefault(hit[0], hit[1])
    return found


def _names() -> dict[str, str]:
    """Container name -> id, from docker's and podman's state on disk."""
    names: dict[str, str] = {}
    for config in glob.glob(DOCKER_CONFIGS):
        try:
            with open(config) as f:
                state = json.load(f)
            names[str(state["Name"]).lstrip("/")] = str(state["ID"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    try:
        with open(PODMAN_CONTAINERS) as f:
            for entry in json.load(f):
                for n in entry.get("names", []):
                    names[str(n)] = str(entry["id"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return names


def find_container(spec: str) -> tuple[Container, Cgroup]:
    """The running container `spec` names: a full id, a unique id prefix, or
    a docker/podman name."""
    running = running_containers()
    spec = spec.strip()
    if not spec:
        raise NoSuchContainerError("no container named: give a container id or name")
    ids = [cid for cid in running if cid.startswith(spec.lower())] if re.fullmatch(r"[0-9a-fA-F]+", spec) else []
    if len(ids) > 1:
        raise NoSuchContainerError(f"container id prefix {spec} is ambiguous: {len(ids)} running containers "
                                   f"start with it ({', '.join(sorted(c[:SHORT_ID_LEN] for c in ids)[:3])}...)")
    if not ids:
        by_name = _names().get(spec)
        if by_name is None:
            raise NoSuchContainerError(f"no running container with id or name {spec} "
                                       f"({len(running)} container(s) running here)")
        if by_name not in running:
            raise NoSuchContainerError(f"container {spec} ({by_name[:SHORT_ID_LEN]}) is not running")
        ids = [by_name]
    cid = ids[0]
    return Container(cid, running[cid]), cgroup_at(running[cid])
