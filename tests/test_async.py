"""Tracer.abatches(): batches for asyncio programs, the poll in a worker
thread so the event loop goes on; leaving or cancelling the loop ends it
cleanly."""
from __future__ import annotations

import asyncio

import pytest

from pyusdt import Tracer

ROUNDS = 40
METHODS = ["GET", "POST", "GET", "PUT", "GET"]


@pytest.fixture(scope="module")
def targets(build):
    return build("expr_targets.c", "expr_targets")


def test_async_for_gets_every_event(bpf, targets):
    async def main() -> list:
        events = []
        with Tracer() as t:
            t.attach_command([str(targets), str(ROUNDS)], "expr:request", fields="str(arg0), arg1")
            t.start()
            async for batch in t.abatches(timeout=0.1, duration=30):
                events.extend(e.args for e in batch)
        return events

    assert asyncio.run(main()) == [(METHODS[i % 5], i) for i in range(5 * ROUNDS)]


def test_the_event_loop_runs_while_a_poll_waits(bpf, targets):
    """One idle poll (nothing runs the traced file): another task runs all
    the while.  Were the poll run on the loop's own thread, that task could
    run once at most, after it."""
    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        with Tracer() as t:
            t.attach_path(targets, "expr:request")
            t.start()
            task = asyncio.create_task(ticker())
            async for batch in t.abatches(timeout=0.2, idle=True):
                assert len(batch) == 0
                break
            seen = ticks
            task.cancel()
        return seen

    ticks = asyncio.run(main())
    assert ticks >= 10, ticks  # thousands in practice: the ticker spins while the poll waits


def test_leaving_early_and_cancelling_end_cleanly(bpf, targets):
    async def leave_early() -> int:
        with Tracer() as t:
            t.attach_command([str(targets), str(ROUNDS)], "expr:request")
            t.start()
            async for batch in t.abatches(timeout=0.1, duration=30):
                n = len(batch)
                break
            # The iteration is over: the tracer is free for a plain poll.
            rest = sum(len(b) for b in t.batches(timeout=0.1, duration=30))
        return n + rest

    assert asyncio.run(leave_early()) == 5 * ROUNDS

    async def cancelled() -> bool:
        with Tracer() as t:
            t.attach_path(targets, "expr:request")  # nothing runs it: the poll waits
            t.start()

            async def consume() -> None:
                async for _ in t.abatches(timeout=0.2, idle=True):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return t.attached_sites > 0

    assert asyncio.run(cancelled())
