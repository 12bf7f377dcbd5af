"""The offset from the kernel's clock to the wall clock: records are stamped
with CLOCK_MONOTONIC (bpf_ktime_get_ns), shown as UTC by adding it."""
from __future__ import annotations

import time
from typing import Optional

_offset_ns: Optional[int] = None


def wall_clock_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC in nanoseconds, measured once per
    process (the read with the smallest gap between its monotonic reads wins)."""
    global _offset_ns
    if _offset_ns is None:
        best: Optional[tuple[int, int]] = None
        for _ in range(9):
            m0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            real = time.clock_gettime_ns(time.CLOCK_REALTIME)
            m1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            if best is None or m1 - m0 < best[0]:
                best = (m1 - m0, real - (m0 + m1) // 2)
        assert best is not None
        _offset_ns = best[1]
    return _offset_ns
