"""Which mapped objects a scan target takes: every one, or those named by
file name (a glob; "libstdc++.so.6" also takes "libstdc++.so.6.0.30") or by
GNU build-id (hex), wherever each process's mount namespace has them."""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Optional

from pyusdt.discover.process import MappedObject
from pyusdt.discover.symbols import symbols_of

# A build-id as `file` and `readelf -n` print it: 20 bytes (SHA-1) by default,
# 16 (md5/uuid) or 8 (xxhash) with other linker options.
_BUILD_ID = re.compile(r"[0-9a-f]{16}(?:[0-9a-f]{16}(?:[0-9a-f]{8})?)?")


def is_build_id(spec: str) -> bool:
    return _BUILD_ID.fullmatch(spec.lower()) is not None


def object_matches(spec: Optional[str], obj: MappedObject) -> bool:
    """Whether `obj` is one of the objects `spec` names (None: all of them)."""
    if spec is None:
        return True
    if is_build_id(spec):
        syms = symbols_of(obj.open_path)
        return syms is not None and syms.build_id == spec.lower()
    path = obj.path.removesuffix(" (deleted)")
    if "/" in spec:
        return fnmatch.fnmatchcase(path, spec)
    name = os.path.basename(path)
    return fnmatch.fnmatchcase(name, spec) or name.startswith(spec + ".")
