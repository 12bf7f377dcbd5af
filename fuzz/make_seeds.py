#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, made from real USDT objects on this machine.

    make_seeds.py OUTDIR

writes OUTDIR/elf_notes/ (ELF inputs) and OUTDIR/arg_spec/ (argument strings).

The objects are the tests' own C programs (compiled here with gcc and clang,
which write different operand forms), Debian's python3.11 and libstdc++.
Whole binaries are kilobytes to megabytes of code the reader never looks at,
where most mutations would be wasted, so each becomes a skeleton: its ELF
header, its PT_LOAD program headers, and only the sections discovery reads
(the note sections, .stapsdt.base, the symbols named by %rip arguments, and
the section-name table).  Discovery finds the same sites in the skeleton as
in the original.  Two small programs are also kept whole, for the real
layout around those sections.

Uses only the standard library: it runs before anything is installed.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "programs"

# (source, extra flags): the test programs that build alone.
SOURCES = [
    ("args_widths.c", []), ("args_badspec.c", []), ("args_strings.c", []), ("args_semaphore.c", []),
    ("args_multisite.c", []), ("args_crosscheck.c", []), ("notes_malformed.c", []),
    ("agg_values.c", []), ("agg_latency.c", ["-pthread"]), ("seq_events.c", []),
    ("args_wide.c", []), ("proc_probes_lib.c", ["-shared", "-fPIC"]),
]
SYSTEM_OBJECTS = ["/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"]
KEEP_WHOLE = ["args_widths.gcc", "args_badspec.gcc"]

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
SHDR = struct.Struct("<IIQQQQIIQQ")
NHDR = struct.Struct("<III")
SYM = struct.Struct("<IBBHQQ")
SHT_SYMTAB, SHT_STRTAB, SHT_NOTE, SHT_DYNSYM, SHT_PROGBITS, PT_LOAD = 2, 3, 7, 11, 1, 1


def compile_programs(outdir: Path) -> list[Path]:
    built = []
    for src, extra in SOURCES:
        for cc in ("gcc", "clang"):
            out = outdir / f"{Path(src).stem}.{cc}"
            cmd = [cc, "-O2", "-w", "-o", str(out), str(PROGRAMS / src), *extra]
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                built.append(out)
    return built


class Elf:
    def __init__(self, data: bytes):
        self.data = data
        h = EHDR.unpack_from(data)
        self.ehdr = list(h)
        phoff, shoff, phnum, shnum, shstrndx = h[5], h[6], h[10], h[12], h[13]
        self.phdrs = [PHDR.unpack_from(data, phoff + i * PHDR.size) for i in range(phnum)]
        self.shdrs = [SHDR.unpack_from(data, shoff + i * SHDR.size) for i in range(shnum)]
        self.shstrtab = self.section_bytes(self.shdrs[shstrndx])

    def section_bytes(self, sh) -> bytes:
        return self.data[sh[4]:sh[4] + sh[5]]

    def name(self, sh) -> str:
        raw = self.shstrtab[sh[0]:]
        return raw[:raw.index(b"\0")].decode()

    def note_args(self) -> list[str]:
        """The argument strings of every stapsdt note."""
        out = []
        for sh in self.shdrs:
            if sh[1] != SHT_NOTE:
                continue
            body, pos = self.section_bytes(sh), 0
            while pos + NHDR.size <= len(body):
                namesz, descsz, ntype = NHDR.unpack_from(body, pos)
                pos += NHDR.size
                owner = body[pos:pos + namesz].rstrip(b"\0")
                pos += (namesz + 3) & ~3
                desc = body[pos:pos + descsz]
                pos += (descsz + 3) & ~3
                if owner == b"stapsdt" and ntype == 3:
                    fields = desc[24:].split(b"\0")
                    if len(fields) > 2 and fields[2]:
                        out.append(fields[2].decode("utf-8", "replace"))
        return out

    def symbols(self, wanted: set[str]) -> list[tuple[bytes, tuple]]:
        """(name, Elf64_Sym fields) of each wanted symbol, from .symtab or .dynsym."""
        found: dict[bytes, tuple] = {}
        for sh in self.shdrs:
            if sh[1] not in (SHT_SYMTAB, SHT_DYNSYM):
                continue
            strs, body = self.section_bytes(self.shdrs[sh[6]]), self.section_bytes(sh)
            for off in range(0, len(body) - SYM.size + 1, SYM.size):
                sym = SYM.unpack_from(body, off)
                name = strs[sym[0]:strs.index(b"\0", sym[0])]
                if name.decode(errors="replace") in wanted and sym[3] != 0:
                    found.setdefault(name, sym)
        return list(found.items())


def rip_symbols(args: list[str]) -> set[str]:
    """Symbol names in "sym(%rip)" / "sym+8(%rip)" operands."""
    names = set()
    for text in args:
        for expr in re.findall(r"@([^ ]*?)\(%rip\)", text):
            names.update(t for t in re.split(r"[+-]", expr) if t and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", t))
    return names


def skeleton(data: bytes) -> bytes:
    elf = Elf(data)
    sections: list[tuple[str, list, bytes]] = []  # (name, shdr fields, contents)
    for sh in elf.shdrs:
        name = elf.name(sh)
        if sh[1] == SHT_NOTE:
            sections.append((name, list(sh), elf.section_bytes(sh)))
        elif name == ".stapsdt.base":
            sections.append((name, list(sh), b"\0" * sh[5]))
    syms = elf.symbols(rip_symbols(elf.note_args()))
    if syms:
        strtab = b"\0" + b"".join(n + b"\0" for n, _ in syms)
        symtab, pos = SYM.pack(0, 0, 0, 0, 0, 0), 1
        for name, sym in syms:
            symtab += SYM.pack(pos, sym[1], sym[2], 1, sym[4], sym[5])  # shndx: any defined section
            pos += len(name) + 1
        strndx = len(sections) + 2  # after the null section and the symtab itself
        sections.append((".symtab", [0, SHT_SYMTAB, 0, 0, 0, 0, strndx, 1, 8, SYM.size], symtab))
        sections.append((".strtab", [0, SHT_STRTAB, 0, 0, 0, 0, 0, 0, 1, 0], strtab))
    shstrtab = b"\0"
    for name, fields, _ in sections:
        fields[0] = len(shstrtab)
        shstrtab += name.encode() + b"\0"
    fields = [len(shstrtab), SHT_STRTAB, 0, 0, 0, 0, 0, 0, 1, 0]
    shstrtab += b".shstrtab\0"
    sections.append((".shstrtab", fields, shstrtab))

    loads = [p for p in elf.phdrs if p[0] == PT_LOAD]
    out = bytearray(EHDR.size)
    out += b"".join(PHDR.pack(*p) for p in loads)
    for _, fields, body in sections:
        out += b"\0" * (-len(out) % 8)
        fields[4], fields[5] = len(out), len(body)
        out += body
    out += b"\0" * (-len(out) % 8)
    shoff = len(out)
    out += SHDR.pack(*[0] * 10)
    out += b"".join(SHDR.pack(*fields) for _, fields, _ in sections)
    ehdr = elf.ehdr
    ehdr[5], ehdr[6], ehdr[10], ehdr[12], ehdr[13] = EHDR.size, shoff, len(loads), len(sections) + 1, len(sections)
    ehdr[9], ehdr[11] = PHDR.size, SHDR.size
    out[:EHDR.size] = EHDR.pack(*ehdr)
    return bytes(out)


def main() -> int:
    outdir = Path(sys.argv[1])
    elf_dir, spec_dir = outdir / "elf_notes", outdir / "arg_spec"
    elf_dir.mkdir(parents=True, exist_ok=True)
    spec_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        objects = compile_programs(Path(tmp)) + [Path(p) for p in SYSTEM_OBJECTS if os.path.exists(p)]
        args: set[str] = set()
        for obj in objects:
            data = obj.read_bytes()
            stem = Path(obj).name
            (elf_dir / f"{stem}.skel").write_bytes(skeleton(data))
            if stem in KEEP_WHOLE:
                (elf_dir / stem).write_bytes(data)
            args.update(Elf(data).note_args())
    for i, text in enumerate(sorted(args)):
        (spec_dir / f"note-{i:03d}").write_text(text)
    print(f"make_seeds: {len(list(elf_dir.iterdir()))} ELF seeds, {len(args)} argument strings in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
