"""Inputs the fuzzers (fuzz/) found bugs with, read again through the native
module, each with the exact result it must give now.

The sanitized fuzz binaries replay the same files (fuzz/run, make fuzz-smoke)
and catch the undefined behaviour itself; these tests pin what a user sees.
Every file in fuzz/regressions/ needs an expectation here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pyusdt import _native
from pyusdt.errors import UnsupportedArgumentError

REGRESSIONS = Path(__file__).parent.parent / "fuzz" / "regressions"

# file -> (sites as (provider, name, args_text, args_error), malformed notes)
ELF_NOTES = {
    # The section header table at file offset 1: read in place through a
    # misaligned Elf64_Shdr pointer.  Its one (all-zero) section has no notes.
    "misaligned-section-header-table": ([], 0),
}

# file -> the error of each token, as _native.parse_arg gives it
ARG_SPEC = {
    # 2^63 - 8 overflowed a signed sum before it was refused for naming no symbol.
    "rip-displacement-overflow": [
        "unsupported argument '9223372036854775808-8(%rip)': numeric %rip displacement"],
    # Size 2^63 read as INT64_MIN, then negated.
    "size-prefix-int64-min": ["unsupported argument '9223372036854775808@': size must be 1, 2, 4, 8 or 16"],
    # Size 2^64 - 1, read as a signed -1, was accepted as a signed byte.
    "size-prefix-reads-as-minus-1": [
        "unsupported argument '18446744073709551615@(%sp)': size must be 1, 2, 4, 8 or 16"],
    # Size 2^32 + 8, cast to int, was accepted as 8.
    "size-prefix-wraps-to-8": ["unsupported argument '4294967304@%rax': size must be 1, 2, 4, 8 or 16"],
}


def _sites(path: Path) -> tuple:
    sites, malformed = _native.read_sites(str(path))
    return [(s.provider, s.name, s.args_text, s.args_error) for s in sites], malformed


@pytest.mark.parametrize("name", sorted(ELF_NOTES))
def test_elf_notes_regression(name):
    assert _sites(REGRESSIONS / "elf_notes" / name) == ELF_NOTES[name]


@pytest.mark.parametrize("name", sorted(ARG_SPEC))
def test_arg_spec_regression(name):
    errors = []
    for token in (REGRESSIONS / "arg_spec" / name).read_text().split(" "):
        with pytest.raises(UnsupportedArgumentError) as exc:
            _native.parse_arg(token)
        errors.append(str(exc.value))
    assert errors == ARG_SPEC[name]


def test_every_regression_has_an_expectation():
    on_disk = {(d.name, f.name) for d in REGRESSIONS.iterdir() for f in d.iterdir()}
    expected = {("elf_notes", n) for n in ELF_NOTES} | {("arg_spec", n) for n in ARG_SPEC}
    assert on_disk == expected
