"""Loading a session ahead, in a thread, while the caller goes on.

Making a session (BTF, the verifier, the maps) is a third of a CLI trace's
start-up, and needs nothing from the Python side but its options: a CLI
trace knows them from its arguments, before it has imported the tracer or
found a single probe.  prefetch() starts the load then; Tracer.start()
takes the session if the options it computed are the same, and otherwise
closes it and loads its own, so a guess that turns out wrong costs CPU, never
a different session.  The native load releases the GIL: the imports and the
probe discovery run meanwhile on the other CPU.
"""
from __future__ import annotations

import threading

from pyusdt import _native
from pyusdt._lazy import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - type names only
    from typing import Any, Optional


def _settings(opts: _native.SessionOptions) -> dict[str, Any]:
    """Every option, by name (whatever fields SessionOptions has)."""
    return {name: getattr(opts, name) for name in dir(opts) if not name.startswith("_")}


class _Load:
    def __init__(self, opts: _native.SessionOptions) -> None:
        self.settings = _settings(opts)
        self.session: Optional[_native.Session] = None
        # Not a daemon: an interpreter that exits meanwhile waits for the
        # load (tens of ms) rather than tearing down under a native call.
        self._thread = threading.Thread(target=self._load, args=(opts,), name="pyusdt-session-load")
        self._thread.start()

    def _load(self, opts: _native.SessionOptions) -> None:
        try:
            self.session = _native.Session(opts)
        except Exception:  # noqa: BLE001 - start() loads again, and says why in the caller's thread
            self.session = None
            return
        # The attach comes soon after (the CLI is finding its probes
        # meanwhile): the kernel's grace period it would wait for starts now.
        self.session.warm_attach()

    def result(self) -> Optional[_native.Session]:
        self._thread.join()
        return self.session


_pending: Optional[_Load] = None
# Sessions loaded ahead that start() took, and that nobody could use (a
# guess that differed, or a trace that ended before start()).
counts = {"taken": 0, "discarded": 0}


def prefetch(opts: _native.SessionOptions) -> None:
    """Starts loading a session with `opts` (one at a time: a second call
    before take() replaces the first, which is closed, unless its options
    are the same: then the load under way goes on)."""
    global _pending
    if _pending is not None and _pending.settings == _settings(opts):
        return
    discard()
    _pending = _Load(opts)


def take(opts: _native.SessionOptions) -> Optional[_native.Session]:
    """The session prefetched with exactly `opts`, or None (then any other
    prefetched session is closed)."""
    global _pending
    load, _pending = _pending, None
    if load is None:
        return None
    session = load.result()
    if session is not None and load.settings != _settings(opts):
        session.close()
        counts["discarded"] += 1
        return None
    if session is not None:
        counts["taken"] += 1
    return session


def discard() -> None:
    """Closes a prefetched session nobody took."""
    global _pending
    load, _pending = _pending, None
    if load is not None:
        session = load.result()
        if session is not None:
            session.close()
            counts["discarded"] += 1
