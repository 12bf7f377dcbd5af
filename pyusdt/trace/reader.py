"""Reading a started session: batches of records from the ring buffer, the
records delivered per probe id, and the end of streaming (stop, drain)."""
from __future__ import annotations

import time
from typing import Callable, Iterator, Optional

import numpy as np

from pyusdt.trace.attacher import Attacher
from pyusdt.trace.events import EventBatch
from pyusdt.trace.watcher import ObjectWatcher

# After stop(), how long drain() waits at most for records being written.
STOP_DRAIN_WAIT_S = 1.0
# Records one poll() returns at most, unless asked otherwise.
DEFAULT_MAX_EVENTS = 1 << 16


class Reader:
    """The reading side of one tracer's session."""

    def __init__(self, attacher: Attacher, watcher: ObjectWatcher) -> None:
        self._attacher = attacher
        self._watcher = watcher
        self.events = np.zeros(0, dtype=np.uint64)  # records delivered, by probe id
        self.stopped = False  # stop(): streaming sites no longer record hits

    def poll(self, timeout_s: float, max_events: int) -> EventBatch:
        session = self._attacher.session
        if not self.stopped:
            self._watcher.rescan_if_due()
        arr = session.poll(int(timeout_s * 1000), max_events)
        arr = self._watcher.take_loads(arr, rescan=not self.stopped)
        stacks = self._attacher.stacks
        if stacks is not None and stacks.due:  # the mappings of the traced processes, every so often
            stacks.remember(self._attacher.traced_pids())
        processes = self._attacher.processes
        if len(arr):
            if processes is not None:
                processes.learn(arr["pid"])  # now, while they run
            counts = np.bincount(arr["probe_id"], minlength=len(self._attacher.probes))
            if len(counts) > len(self.events):
                self.events = np.pad(self.events, (0, len(counts) - len(self.events)))
            self.events[: len(counts)] += counts.astype(np.uint64)
        return EventBatch(arr, self._attacher.probes, stacks, processes)

    def batches(self, timeout_s: float, duration_s: Optional[float], idle: bool, max_events: int,
                done: Callable[[], bool]) -> Iterator[EventBatch]:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while True:
            ended = done()
            batch = self.poll(timeout_s if not ended else 0, max_events)
            if len(batch) or idle:
                yield batch
            if deadline is not None and time.monotonic() >= deadline:
                return
            if ended and not len(batch):
                return

    def stop(self) -> None:
        self._attacher.session.stop_streaming()
        self.stopped = True

    def drain(self) -> Iterator[EventBatch]:
        session = self._attacher.session
        deadline = None
        while True:
            batch = self.poll(0, DEFAULT_MAX_EVENTS)
            if len(batch):
                yield batch
                continue
            if not self.stopped:
                return
            # A hit that passed the stop check just before it may still be
            # writing its record (reserved, not committed: pending but not
            # readable): wait for it, for a while at most.
            deadline = deadline or time.monotonic() + STOP_DRAIN_WAIT_S
            if session.pending_bytes and time.monotonic() < deadline:
                time.sleep(0.001)
                continue
            # Nothing pending: one last look once in-flight hits have surely ended.
            time.sleep(0.01)
            batch = self.poll(0, DEFAULT_MAX_EVENTS)
            if not len(batch):
                return
            yield batch
