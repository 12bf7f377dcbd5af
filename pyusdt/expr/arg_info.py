"""What an expression needs to know about the probe it runs at."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArgInfo:
    """The probe's arguments, from its note: how many, and which are signed."""

    nargs: int
    signed: tuple[bool, ...]  # per argument; one missing counts as unsigned
    probe: str = ""  # "provider:name", for error messages
