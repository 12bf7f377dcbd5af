"""Discovery's cost stays linear in the file's size whatever its headers say.

A file can point any number of section headers at the same bytes, and any
number of symbols at one unterminated string.  Before the reader kept to
distinct sections and indexed symbols once, a crafted 1 MB file of note
sections took 48 s and 10 GB to list, and one of %rip operands hours.  Each
file here is made by hand and read in a child process with a time limit,
so that a regression fails instead of hanging the suite.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys

SHT_SYMTAB, SHT_STRTAB, SHT_NOTE = 2, 3, 7
PROBE_PC = 0x1000


def stapsdt_note(provider: bytes, name: bytes, args: bytes) -> bytes:
    desc = struct.pack("<QQQ", PROBE_PC, 0, 0) + provider + b"\0" + name + b"\0" + args + b"\0"
    desc += b"\0" * (-len(desc) % 4)
    return struct.pack("<III", 8, len(desc), 3) + b"stapsdt\0" + desc


def elf(sections: list, extra_headers: list = ()) -> bytes:
    """An x86-64 ELF file: one PT_LOAD mapping 0..1 MB at file offset 0, the
    given sections as (type, link, entsize, bytes), then section headers for
    them, a null one first, and any (type, link, entsize, section index)
    headers pointing at the bytes of a section already given."""
    body = bytearray(64) + struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, 1 << 20, 1 << 20, 0x1000)
    headers = [bytes(64)]
    placed = []
    for sh_type, link, entsize, data in sections:
        body += b"\0" * (-len(body) % 8)
        placed.append((len(body), len(data)))
        headers.append(struct.pack("<IIQQQQIIQQ", 0, sh_type, 0, 0, len(body), len(data), link, 0, 8, entsize))
        body += data
    for sh_type, link, entsize, index in extra_headers:
        off, size = placed[index - 1]
        headers.append(struct.pack("<IIQQQQIIQQ", 0, sh_type, 0, 0, off, size, link, 0, 8, entsize))
    body += b"\0" * (-len(body) % 8)
    shoff = len(body)
    body += b"".join(headers)
    body[:64] = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, 62, 1, 0, 64, shoff,
                            0, 64, 56, 1, 64, len(headers), 0)
    return bytes(body)


def read_in_child(path, timeout: float = 60) -> dict:
    """read_sites in a child process: {sites: [[provider, name, args, error, values]], malformed}."""
    code = (
        "import json, sys\n"
        "from pyusdt import _native\n"
        "sites, malformed = _native.read_sites(sys.argv[1])\n"
        "print(json.dumps({'sites': [[s.provider, s.name, s.args_text, s.args_error,"
        " [a['kind'] for a in s.args]] for s in sites], 'malformed': malformed}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         timeout=timeout, cwd="/")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_note_section_headers_over_the_same_bytes_count_once(tmp_path):
    notes = b"".join(stapsdt_note(b"dup", b"p%d" % i, b"8@%rdi") for i in range(3000))
    # The real note section, then 300 more headers over the same bytes.
    path = tmp_path / "dup_notes.elf"
    path.write_bytes(elf([(SHT_NOTE, 0, 0, notes)], [(SHT_NOTE, 0, 0, 1)] * 300))
    got = read_in_child(path)
    assert got["malformed"] == 0
    assert got["sites"] == [["dup", f"p{i}", "8@%rdi", "", ["reg"]] for i in range(3000)]


def test_symbols_in_one_unterminated_run_index_once(tmp_path):
    # 1000 notes of 12 %rip operands each, all naming "q"; 20000 symbols whose
    # names start in one 100 KB run of 'x' with no NUL before the table ends,
    # then "q", and the symbol table given 50 times more.
    notes = stapsdt_note(b"rip", b"many", b" ".join([b"8@q(%rip)"] * 12)) * 1000
    strtab = b"\0q\0" + b"x" * 100_000
    sym = struct.Struct("<IBBHQQ")
    syms = b"".join(sym.pack(3 + i % 1000, 0, 0, 1, 0, 0) for i in range(20000)) + sym.pack(1, 0, 0, 1, 0x2000, 0)
    path = tmp_path / "rip_symbols.elf"
    path.write_bytes(elf([(SHT_NOTE, 0, 0, notes), (SHT_SYMTAB, 3, 24, syms), (SHT_STRTAB, 0, 0, strtab)],
                         [(SHT_SYMTAB, 3, 24, 2)] * 50))
    got = read_in_child(path)
    assert got["malformed"] == 0
    assert got["sites"] == [["rip", "many", " ".join(["8@q(%rip)"] * 12), "", ["mem_abs"] * 12]] * 1000


def test_symbol_names_sharing_a_string_resolve_exactly(tmp_path):
    # A linker shares tails: "bar" may be the end of "foobar".  Each name ends
    # at the first NUL after it, whichever order the symbols come in.
    strtab = b"\0foobar\0baz\0"
    sym = struct.Struct("<IBBHQQ")
    syms = (sym.pack(4, 0, 0, 1, 0x3004, 0)      # "bar"
            + sym.pack(1, 0, 0, 1, 0x3000, 0)    # "foobar"
            + sym.pack(8, 0, 0, 0, 0x9999, 0)    # "baz", undefined: not used
            + sym.pack(9, 0, 0, 1, 0x3008, 0))   # "az"
    notes = (stapsdt_note(b"s", b"bar", b"8@bar(%rip)") + stapsdt_note(b"s", b"foobar", b"8@foobar+8(%rip)")
             + stapsdt_note(b"s", b"baz", b"8@baz(%rip)") + stapsdt_note(b"s", b"az", b"8@az(%rip)"))
    path = tmp_path / "shared_names.elf"
    path.write_bytes(elf([(SHT_NOTE, 0, 0, notes), (SHT_SYMTAB, 3, 24, syms), (SHT_STRTAB, 0, 0, strtab)]))

    from pyusdt import _native
    sites, malformed = _native.read_sites(str(path))
    assert malformed == 0
    assert [(s.name, s.args_error) for s in sites] == [
        ("bar", ""), ("foobar", ""),
        ("baz", "unsupported argument '8@baz(%rip)': symbol not found in the object's symbol tables"),
        ("az", "")]
    assert [s.args[0]["kind"] for s in (sites[0], sites[1], sites[3])] == ["mem_abs"] * 3
