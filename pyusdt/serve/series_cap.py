"""The cap on one metric's label sets (max_series).

Keys are admitted first come, first kept: once exported, a series stays
(Prometheus would see a series that comes and goes as a reset).  The keys
beyond the cap are not dropped silently: their values are summed into one
series whose labels all read __overflow__, and counted.
"""
from __future__ import annotations

from typing import Iterable

from pyusdt.aggregate.histogram import Key


def key_order(key: Key) -> tuple[str, ...]:
    """A key's place among new keys admitted at the same scrape: by its text."""
    parts = key if isinstance(key, tuple) else (key,)
    return tuple(str(p) for p in parts)


class SeriesCap:
    """Which keys of one metric get a series of their own."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[Key] = set()
        self._overflowed: set[Key] = set()

    def split(self, keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
        """(keys exported as their own series, keys summed into the overflow
        series), each in key order."""
        kept: list[Key] = []
        over: list[Key] = []
        for key in sorted(keys, key=key_order):
            if key in self._admitted:
                kept.append(key)
            elif key not in self._overflowed and len(self._admitted) < self.limit:
                self._admitted.add(key)
                kept.append(key)
            else:
                self._overflowed.add(key)
                over.append(key)
        return kept, over

    @property
    def dropped(self) -> int:
        """Distinct keys summed into the overflow series so far (never decreases:
        the kernel's map keeps every key it has seen)."""
        return len(self._overflowed)
