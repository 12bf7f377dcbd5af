"""Batches for asyncio programs: Tracer.abatches() runs the blocking poll in
a worker thread (the native poll releases the GIL), so the event loop goes
on while the tracer waits for records."""
from __future__ import annotations

from typing import AsyncIterator, Iterator, TypeVar

T = TypeVar("T")
_END = object()


async def iterate_in_thread(items: Iterator[T]) -> AsyncIterator[T]:
    """`items`, each next() run in the default executor, one at a time.  When
    the consumer stops early or is cancelled, the next() in flight (a poll
    that ends within its timeout) is waited for, then `items` is closed, so
    the tracer is never read from two threads at once."""
    import asyncio  # here: the caller's event loop has it loaded; a tracer that never awaits need not

    loop = asyncio.get_running_loop()
    pending = None
    try:
        while True:
            pending = loop.run_in_executor(None, next, items, _END)
            item = await asyncio.shield(pending)
            pending = None
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        if pending is not None:
            await asyncio.wait([pending])
        close = getattr(items, "close", None)
        if close is not None:
            close()
