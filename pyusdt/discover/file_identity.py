"""A file's identity as uprobes know it: the real inode, not the overlay's.

A uprobe is placed on the inode that really holds the code.  A file in a
container's overlayfs stat()s as that inode's number on the overlay's own
device, so every container of one image shows the same file under another
device: keyed by (st_dev, st_ino), it would be attached once per container,
and each hit would then run once per link.  An overlay's device is
therefore replaced by the device of its layers (read from the mount's
options, where every layer is on one filesystem, as docker's and podman's
are).  Where the layers cannot be seen (pyusdt in a container of its own
without /var/lib/docker), the key falls back to the file's inode number,
size and modification time, which a copy of one image file shares in
every container and two different files practically never do.
"""
from __future__ import annotations

import os
import re
from typing import Optional

from pyusdt.discover.mounts import mounts

FileKey = tuple[int, int]  # (device, inode)

# /proc/PID/map_files/... names the process whose mount table holds the file's mount.
_MAP_FILES = re.compile(r"^/proc/(\d+)/")
# A device that is not an overlay: the key is (st_dev, st_ino) as is.
_NOT_OVERLAY = -1
# The mount table read holds no such device (a process gone meanwhile): ask again next time.
_MOUNT_UNKNOWN = -2
# st_dev -> _NOT_OVERLAY, its layers' device, or None (an overlay whose layers are out of sight)
_layer_devices: dict[int, Optional[int]] = {}


def file_key(path: str) -> FileKey:
    """The (device, inode) uprobes attach to for the file at `path` (OSError if it is gone)."""
    st = os.stat(path)
    layers = _layers_device(st.st_dev, path)
    if layers == _NOT_OVERLAY:
        return (st.st_dev, st.st_ino)
    if layers is not None:
        return (layers, st.st_ino)
    # A synthetic device, negative so that no real one is mistaken for it.
    return (-1 - (hash((st.st_size, st.st_mtime_ns)) & 0x7FFF_FFFF_FFFF), st.st_ino)


def _layers_device(dev: int, path: str) -> Optional[int]:
    if dev in _layer_devices:
        return _layer_devices[dev]
    m = _MAP_FILES.match(path)
    found = _overlay_layers_device(dev, f"/proc/{m.group(1)}/mountinfo" if m else "/proc/self/mountinfo")
    if found != _MOUNT_UNKNOWN:
        _layer_devices[dev] = found
    return None if found == _MOUNT_UNKNOWN else found


def _overlay_layers_device(dev: int, mountinfo: str) -> Optional[int]:
    """_NOT_OVERLAY, the layers' device of overlay mount `dev`, None (an
    overlay whose layers cannot be stat()ed here), or _MOUNT_UNKNOWN."""
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        table = mounts(mountinfo)
    except OSError:
        return _MOUNT_UNKNOWN
    for m in table:
        if m.device == want:
            return _device_of_layers(m.super_options) if m.fstype == "overlay" else _NOT_OVERLAY
    return _MOUNT_UNKNOWN


def _device_of_layers(options: str) -> Optional[int]:
    layers: list[str] = []
    for opt in options.split(","):
        key, _, value = opt.partition("=")
        if key in ("lowerdir", "upperdir"):
            layers.extend(p for p in value.split(":") if p)
    devices = set()
    for layer in layers:
        try:
            devices.add(os.stat(layer).st_dev)
        except OSError:
            return None
    return devices.pop() if len(devices) == 1 else None
