"""The HTTP side: /metrics in the format the scraper asks for, served by the
standard library's server in a thread of its own."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from pyusdt.serve.defaults import HTTP_TIMEOUT_S
from pyusdt.serve.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics

# render(openmetrics) -> the exposition text
Render = Callable[[bool], str]

_INDEX = b"<html><head><title>pyusdt serve</title></head><body><h1>pyusdt serve</h1>" \
         b"<p><a href=\"/metrics\">Metrics</a></p></body></html>\n"


class _Handler(BaseHTTPRequestHandler):
    server: MetricsHTTPServer
    timeout = HTTP_TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
            try:
                body = self.server.render(openmetrics).encode("utf-8")
            except Exception as e:  # noqa: BLE001 - a scrape that fails says why, the server goes on
                self._reply(500, "text/plain; charset=utf-8", f"scrape failed: {type(e).__name__}: {e}\n".encode())
                return
            self._reply(200, OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE, body)
        elif path == "/":
            self._reply(200, "text/html; charset=utf-8", _INDEX)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape every few seconds is not news


class MetricsHTTPServer(ThreadingHTTPServer):
    """Serves `render` on /metrics from a background thread: start(), close()."""

    daemon_threads = True

    def __init__(self, host: str, port: int, render: Render) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.render = render
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose for port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="pyusdt-serve-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops serving and closes the listening socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
