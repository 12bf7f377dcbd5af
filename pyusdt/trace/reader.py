"""Reading a started session: batches of records from the ring buffer, the
records delivered per probe id, and the end of streaming (stop, drain)."""
from __future__ import annotations

import time
from typing import Callable, Iterator, Optional

from pyusdt.trace.attacher import Attacher
from pyusdt.trace.events import EventBatch
from pyusdt.trace.record_layout import RecordLayout
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
        self.stopped = False  # stop(): streaming sites no longer record hits
        self._layout: Optional[RecordLayout] = None
        self._polls = 0
        # The last poll read rows that are not events (the loader hook's): a
        # process it resumed may fire at once, so "no events" is not "drained".
        self._read_loader_rows = False

    def poll(self, timeout_s: float, max_events: int) -> EventBatch:
        session = self._attacher.session
        if self._layout is None:
            self._layout = RecordLayout.of_session(session.str_len, session.string_slots)
        if self._polls == 1 and self._attacher.attach_deferred():
            self._watcher.restart()  # what the processes loaded before the hook was there
        self._polls += 1
        if not self.stopped:
            self._watcher.rescan_if_due()
        rows = session.poll(int(timeout_s * 1000), max_events)
        self._read_loader_rows = bool(rows.loader_pids)
        self._watcher.objects_loaded(rows.loader_pids, rescan=not self.stopped)
        stacks = self._attacher.stacks
        if stacks is not None and stacks.due:  # the mappings of the traced processes, every so often
            stacks.remember(self._attacher.traced_pids())
        processes = self._attacher.processes
        batch = EventBatch(rows, self._attacher.probes, stacks, processes, self._layout)
        if len(batch) and processes is not None:
            processes.learn(batch.array["pid"])  # now, while they run
        return batch

    def events(self) -> list[int]:
        """Records delivered so far, by probe id."""
        return list(self._attacher.session.delivered())

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
            if ended and not len(batch) and not self._read_loader_rows:
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
            if self._read_loader_rows:
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
