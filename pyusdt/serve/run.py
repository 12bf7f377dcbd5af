"""The serve loop: the exporter, its HTTP server, and the signals that steer
them (SIGHUP reloads the config file, SIGTERM and SIGINT end it cleanly).

Signal handlers only set flags; the loop acts on them within POLL_INTERVAL_S,
outside any lock, so a signal never lands in the middle of a scrape.
"""
from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Optional

from pyusdt.errors import ConfigError, PyusdtError
from pyusdt.serve.config import ServeConfig
from pyusdt.serve.config_file import load_config
from pyusdt.serve.defaults import POLL_INTERVAL_S
from pyusdt.serve.exporter import Exporter, Log, log_to_stderr
from pyusdt.serve.http_server import MetricsHTTPServer


class _Signals:
    """What the signals asked for since the loop last looked."""

    def __init__(self) -> None:
        self.reload = False
        self.stop = False

    def install(self) -> None:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def _on_hup(self, signum: int, frame: Optional[FrameType]) -> None:
        self.reload = True

    def _on_stop(self, signum: int, frame: Optional[FrameType]) -> None:
        self.stop = True


def reload_from_file(exporter: Exporter, path: str) -> bool:
    """Loads `path` again and switches to it; a bad config leaves the old one
    running (logged, and counted in the reload metrics)."""
    try:
        config = load_config(path)
    except ConfigError as e:
        exporter.reload_failed(str(e))
        return False
    try:
        exporter.reload(config)
    except PyusdtError as e:
        exporter.reload_failed(str(e))
        return False
    return True


def serve(config: ServeConfig, host: str, port: int, *, config_path: Optional[str] = None,
          log: Log = log_to_stderr) -> int:
    """Exports `config` on http://HOST:PORT/metrics until SIGTERM or SIGINT
    (then returns 0, every probe detached and the port closed); SIGHUP loads
    `config_path` again.  Must run in the main thread (signals)."""
    signals = _Signals()
    signals.install()
    exporter = Exporter(config, log=log)
    server: Optional[MetricsHTTPServer] = None
    try:
        try:  # the port first: a port in use fails before anything is attached
            server = MetricsHTTPServer(host, port, exporter.render)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        exporter.start()
        server.start()
        shown = f"[{host}]" if ":" in host else host
        log(f"exporting {len(config.metrics)} metric(s) on http://{shown}:{server.port}/metrics")
        while not signals.stop:
            if signals.reload:
                signals.reload = False
                if config_path is not None:
                    reload_from_file(exporter, config_path)
            exporter.maintain()
            time.sleep(POLL_INTERVAL_S)
        log("stopping: detaching every probe")
        return 0
    finally:
        if server is not None:
            server.close()
        exporter.close()
