"""The function symbols and build-id of an ELF file, for naming the frames of
user stacks (ustack): .symtab where the file keeps it, .dynsym otherwise
(a stripped library still exports its functions there).  64-bit
little-endian ELF only, the files a uprobe on x86-64 meets."""
from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Optional

SHT_SYMTAB, SHT_NOTE, SHT_DYNSYM = 2, 7, 11
PT_LOAD = 1
STT_FUNC, STT_GNU_IFUNC = 2, 10
NT_GNU_BUILD_ID = 3
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")


@dataclass
class ElfSymbols:
    """One file's functions, sorted by address, and how its file offsets map to addresses."""

    path: str
    build_id: Optional[str] = None
    starts: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    loads: list[tuple[int, int, int]] = field(default_factory=list)  # PT_LOAD: (offset, vaddr, filesz)

    def vaddr_of_offset(self, offset: int) -> Optional[int]:
        """The link-time address of a file offset, through the PT_LOAD segment holding it."""
        for off, vaddr, size in self.loads:
            if off <= offset < off + max(size, 1):
                return vaddr + offset - off
        return None

    def symbol_at(self, vaddr: int) -> Optional[tuple[str, int]]:
        """(function, offset into it) for a link-time address, or None.  A
        symbol without a size covers the addresses up to the next one."""
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0:
            return None
        first = bisect.bisect_left(self.starts, self.starts[i])
        for k in range(first, i + 1):  # aliases at one address: the sized one that covers it
            if self.sizes[k] and vaddr < self.starts[k] + self.sizes[k]:
                return self.names[k], vaddr - self.starts[k]
        if not any(self.sizes[first:i + 1]):
            return self.names[i], vaddr - self.starts[i]
        return None


def read_symbols(f: BinaryIO, path: str) -> ElfSymbols:
    """Reads the symbols of the open ELF file `f` (ValueError if it is not a
    64-bit little-endian ELF file)."""
    f.seek(0)
    head = f.read(_EHDR.size)
    if len(head) < _EHDR.size or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
    (_, _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = _EHDR.unpack(head)
    out = ElfSymbols(path)
    f.seek(phoff)
    for _ in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = _PHDR.unpack(f.read(phentsize)[:_PHDR.size])
        if p_type == PT_LOAD:
            out.loads.append((p_offset, p_vaddr, p_filesz))
    f.seek(shoff)
    sections = [_SHDR.unpack(f.read(shentsize)[:_SHDR.size]) for _ in range(shnum)]
    tables = {s[1]: s for s in sections if s[1] in (SHT_SYMTAB, SHT_DYNSYM)}
    table = tables.get(SHT_SYMTAB) or tables.get(SHT_DYNSYM)
    funcs: list[tuple[int, int, str]] = []
    if table is not None:
        strings = b""
        if table[6] < len(sections):
            f.seek(sections[table[6]][4])
            strings = f.read(sections[table[6]][5])
        f.seek(table[4])
        data = f.read(table[5])
        for name, info, _, shndx, value, size in _SYM.iter_unpack(data[: len(data) // _SYM.size * _SYM.size]):
            if info & 0xF in (STT_FUNC, STT_GNU_IFUNC) and value and shndx:
                end = strings.find(b"\0", name)
                funcs.append((value, size, strings[name:end].decode("utf-8", "replace")))
    funcs.sort()
    out.starts = [v for v, _, _ in funcs]
    out.sizes = [s for _, s, _ in funcs]
    out.names = [n for _, _, n in funcs]
    for s in sections:
        if s[1] == SHT_NOTE and out.build_id is None:
            f.seek(s[4])
            out.build_id = _build_id(f.read(s[5]))
    return out


def _build_id(notes: bytes) -> Optional[str]:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        if kind == NT_GNU_BUILD_ID and notes[name_at:name_at + namesz] == b"GNU\0":
            return notes[desc_at:desc_at + descsz].hex()
        at = desc_at + (descsz + 3) // 4 * 4
    return None


_cache: dict[tuple[int, int, int], Optional[ElfSymbols]] = {}


def symbols_of(path: str) -> Optional[ElfSymbols]:
    """The symbols of the file at `path` (cached by device, inode and size),
    or None when it cannot be read as ELF."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_dev, st.st_ino, st.st_size)
    if key not in _cache:
        try:
            with open(path, "rb") as f:
                _cache[key] = read_symbols(f, path)
        except (OSError, ValueError, struct.error):
            _cache[key] = None
        found = _cache[key]
        if found is not None and found.build_id:
            _add_debug_symbols(found)
    return _cache[key]


# Where Debian's -dbg and -dbgsym packages put a file's symbols, by build-id.
DEBUG_DIR = "/usr/lib/debug/.build-id"


def _add_debug_symbols(syms: ElfSymbols) -> None:
    """A stripped file's full symbol table, from its separate debug file
    (found by build-id) when one is installed: static functions too, such
    as glibc's __libc_start_call_main."""
    assert syms.build_id is not None
    debug = os.path.join(DEBUG_DIR, syms.build_id[:2], syms.build_id[2:] + ".debug")
    try:
        with open(debug, "rb") as f:
            full = read_symbols(f, debug)
    except (OSError, ValueError, struct.error):
        return
    if len(full.names) > len(syms.names) and full.build_id in (None, syms.build_id):
        syms.starts, syms.sizes, syms.names = full.starts, full.sizes, full.names
