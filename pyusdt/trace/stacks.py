"""User stacks (bpftrace's ustack): the kernel keeps each stack's addresses
in the `ustacks` map and a hit carries its process id and the stack's id;
here they become frames named from the ELF symbols of the objects the
process maps (pyusdt.discover.symbols), each with its file and build-id.

A process's mappings are read while it runs (Tracer.poll looks at the
processes it traces, and every process whose stack it decodes): a stack of a
process that exited before pyusdt saw its mappings keeps bare addresses."""
from __future__ import annotations

import bisect
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from pyusdt import _native
from pyusdt.discover.symbols import symbols_of

# How often Tracer.poll reads the mappings of the traced processes again.
MAPS_REFRESH_S = 0.2
# Indentation of a frame in a map key, as bpftrace prints ustack.
FRAME_INDENT = " " * 4


@dataclass(frozen=True)
class Frame:
    """One return address, named: function+offset in `path` (build-id); in
    a file but no symbol covers it: [file+0xOFFSET], its offset in the file
    (the same in every process, unlike the address); else the bare address."""

    address: int
    symbol: Optional[str] = None
    offset: int = 0  # into the symbol; into the file when there is none
    path: Optional[str] = None
    build_id: Optional[str] = None

    def __str__(self) -> str:
        if self.symbol:
            return f"{self.symbol}+{self.offset}"
        if self.path:
            return f"[{os.path.basename(self.path)}+0x{self.offset:x}]"
        return f"0x{self.address:x}"

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "symbol": self.symbol, "offset": self.offset, "path": self.path,
                "build_id": self.build_id}


@dataclass(frozen=True, eq=False)
class UserStack:
    """A user stack, innermost frame first.  Two stacks are one key when
    they read the same (bpftrace merges them too): equality is their text."""

    pid: int
    frames: tuple[Frame, ...]
    taken: bool = True  # False: the kernel could not take it (map full, or its bucket taken)

    def __str__(self) -> str:
        """As bpftrace prints ustack in a map key: a frame per line, indented."""
        if not self.taken:
            return "\n" + FRAME_INDENT + "[stack not taken]\n"
        return "\n" + "".join(f"{FRAME_INDENT}{f}\n" for f in self.frames)

    def folded(self) -> str:
        """Outermost frame first, ';' between: the folded form flame-graph tools read."""
        if not self.taken:
            return "[stack not taken]"
        return ";".join(str(f) for f in reversed(self.frames))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UserStack) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: object) -> bool:
        return str(self) < str(other)


class _Mappings:
    """One process's file mappings: (start, end, file offset, path), sorted."""

    def __init__(self, pid: int, text: str) -> None:
        self.text = text
        self.rows: list[tuple[int, int, int, str]] = []
        for line in text.splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            # Opened through map_files while the process lives: the same
            # inode even in another mount namespace or once deleted.
            self.rows.append((start, end, int(parts[2], 16), parts[5].removesuffix(" (deleted)")))
        self.rows.sort()
        self.starts = [r[0] for r in self.rows]
        self.pid = pid

    def frame(self, address: int) -> Frame:
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0 or address >= self.rows[i][1]:
            return Frame(address)
        start, end, offset, path = self.rows[i]
        file_offset = address - start + offset
        syms = symbols_of(path) or symbols_of(f"/proc/{self.pid}/map_files/{start:x}-{end:x}")
        if syms is None:
            return Frame(address, offset=file_offset, path=path)
        vaddr = syms.vaddr_of_offset(file_offset)
        named = syms.symbol_at(vaddr) if vaddr is not None else None
        if named is None:
            return Frame(address, offset=file_offset, path=path, build_id=syms.build_id)
        return Frame(address, named[0], named[1], path, syms.build_id)


def _read_maps(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return None


class StackSymbolizer:
    """Names the stacks of one session's `ustacks` map."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._maps: dict[int, _Mappings] = {}
        self._stacks: dict[int, UserStack] = {}  # by the USTACK value (pid << 32 | id)
        self._last_refresh = 0.0

    @property
    def due(self) -> bool:
        """Whether MAPS_REFRESH_S have passed since the mappings were last read."""
        return time.monotonic() - self._last_refresh >= MAPS_REFRESH_S

    def remember(self, pids: Iterable[int]) -> None:
        """Reads the mappings of these processes (and of every process known
        already) again; a process gone keeps its last ones."""
        self._last_refresh = time.monotonic()
        for pid in set(pids) | set(self._maps):
            text = _read_maps(pid)
            if text is not None and (pid not in self._maps or self._maps[pid].text != text):
                self._maps[pid] = _Mappings(pid, text)
                # Stacks named with the old mappings are named again when asked.
                self._stacks = {k: v for k, v in self._stacks.items() if k >> 32 != pid}

    def stack(self, value: int) -> UserStack:
        """The stack a USTACK value names (its process id << 32 | stack id)."""
        known = self._stacks.get(value)
        if known is not None:
            return known
        pid, sid = value >> 32, value & 0xFFFFFFFF
        if sid == _native.USTACK_NONE:
            stack = UserStack(pid, (), taken=False)
        else:
            if pid not in self._maps:
                self.remember([pid])
            maps = self._maps.get(pid)
            addresses = self.session.ustack(sid)
            stack = UserStack(pid, tuple(maps.frame(a) if maps else Frame(a) for a in addresses))
        self._stacks[value] = stack
        return stack
