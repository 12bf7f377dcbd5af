"""WSGI and ASGI middleware firing USDT probes for every HTTP request.

    from pyusdt.provide.middleware import WSGIMiddleware, ASGIMiddleware
    app = WSGIMiddleware(app)        # Flask, Django (WSGI), Bottle, ...
    app = ASGIMiddleware(app)        # Starlette, FastAPI, Django (ASGI), ...

Both fire, in the shared provider "pyusdt_web" (created and loaded lazily, at
the first request, or when the runtime switch is turned on):

    request__start(method: str, path: str)
        when the request reaches the middleware;
    request__done(method: str, path: str, status: uint16, duration_ns: uint64)
        when the response is finished: for WSGI once the server has closed
        the response iterable (after sending the whole body), for ASGI once
        the final body message (more_body false) has been sent, or when the
        application raised.

`path` is the full path without the query string (which may hold secrets):
SCRIPT_NAME + PATH_INFO for WSGI (re-decoded as UTF-8), scope["path"] for
ASGI.  `status` is the one the application sent (from the status line given
to start_response, or the http.response.start message); an application that
raises before sending one is reported as 500, one that sends none as 0.
`duration_ns` is time.perf_counter_ns() from the start of the request.

    bpftrace -p PID -e 'usdt:*:pyusdt_web:request__done {
        printf("%s %s %d %d us\\n", str(arg0), str(arg1), arg2, arg3 / 1000); }'
    pyusdt hist -p PID pyusdt_web:request__done -v 3 --by str1    # latency per path

Cost: one flag check (the runtime switch of pyusdt.provide.latency: while it is off,
requests pass straight through) and two semaphore reads per request while
nobody traces; the response is wrapped, and the clock read, only while
request__done is traced.  ASGI scopes other than "http" (lifespan, websocket)
always pass through untouched.

`provider` is None (the shared "pyusdt_web"), a provider name (a provider of
that name shared by every middleware given it), or a Provider of yours: the
two probes are declared on it if missing, and it is loaded at the first
request if it is not loaded yet.
"""
from __future__ import annotations

import threading
from time import perf_counter_ns
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, List, MutableMapping, Optional, Tuple, Union

from pyusdt.provide import latency as tracers
from pyusdt.provide.latency import LazyProvider
from pyusdt.provide.provider import ArgDecl, Provider, ProviderProbe

__all__ = ["DEFAULT_WEB_PROVIDER", "ASGIMiddleware", "WSGIMiddleware", "web_provider"]

DEFAULT_WEB_PROVIDER = "pyusdt_web"
START_ARGS: Tuple[ArgDecl, ...] = (("method", "str"), ("path", "str"))
DONE_ARGS: Tuple[ArgDecl, ...] = (("method", "str"), ("path", "str"), ("status", "uint16"),
                                  ("duration_ns", "uint64"))
WEB_PROBES = [("request__start", START_ARGS), ("request__done", DONE_ARGS)]

ProviderArg = Union[None, str, Provider]
WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_by_name: Dict[str, LazyProvider] = {}
_by_name_lock = threading.Lock()


def web_provider(provider: ProviderArg = None) -> LazyProvider:
    """The lazily loaded provider the middleware fire in: the shared one
    ("pyusdt_web") for None, one shared per name for a str, or one wrapping
    the Provider given."""
    if isinstance(provider, Provider):
        return LazyProvider(provider, WEB_PROBES)
    name = DEFAULT_WEB_PROVIDER if provider is None else provider
    if not isinstance(name, str):
        raise TypeError(f"provider must be None, a name or a Provider, not {type(provider).__name__}")
    with _by_name_lock:
        lazy = _by_name.get(name)
        if lazy is None:
            lazy = _by_name[name] = LazyProvider(name, WEB_PROBES)
        return lazy


class _Probes:
    """The two request probes of one LazyProvider, cached once it is loaded."""

    __slots__ = ("lazy", "pair")

    def __init__(self, lazy: LazyProvider) -> None:
        self.lazy = lazy
        self.pair: Optional[Tuple[ProviderProbe, ProviderProbe]] = None
        lazy.want()

    def get(self) -> Optional[Tuple[ProviderProbe, ProviderProbe]]:
        pair = self.pair
        if pair is None:
            p = self.lazy.get()
            if p is None:
                return None
            pair = self.pair = (p.probes["request__start"], p.probes["request__done"])
        return pair


def _status_code(status: Any) -> int:
    """The code of a WSGI status line ("404 Not Found") or an ASGI status, 0 if unreadable."""
    try:
        code = int(status.split(None, 1)[0]) if isinstance(status, str) else int(status)
    except (ValueError, TypeError, IndexError):
        return 0
    return code if 0 <= code <= 0xFFFF else 0


def _text(value: Any) -> str:
    """A str that fire() can encode as UTF-8 (lone surrogates replaced)."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return str(value)


def _wsgi_path(environ: Dict[str, Any]) -> str:
    # PEP 3333 native strings carry the raw bytes as latin-1: decode them as UTF-8.
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return _text(raw)


# -- WSGI --------------------------------------------------------------------


class _Response:
    """The application's response iterable, wrapped: fires request__done once
    the server closes it (PEP 3333 servers must call close())."""

    __slots__ = ("_result", "_done", "_fired", "__weakref__")

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self._result = result
        self._done = done
        self._fired = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._fired:
            self._fired = True
            self._done()

    def __del__(self) -> None:
        # A server that never calls close() breaks PEP 3333; still report the request.
        try:
            self._finish()
        except Exception:
            pass


class _SizedResponse(_Response):
    """A response whose length the server may use (wsgiref sets Content-Length
    for a one-block response)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._result)  # type: ignore[arg-type]


class WSGIMiddleware:
    """Wraps a WSGI application: request__start when a request arrives,
    request__done once its response is finished (see the module doc)."""

    def __init__(self, app: WSGIApp, provider: ProviderArg = None) -> None:
        self.app = app
        self._probes = _Probes(web_provider(provider))

    @property
    def provider(self) -> LazyProvider:
        """The provider the probes live in."""
        return self._probes.lazy

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serves one request through the application, firing the probes if traced."""
        if not tracers._on:
            return self.app(environ, start_response)
        pair = self._probes.pair or self._probes.get()
        if pair is None:
            return self.app(environ, start_response)
        start, done = pair
        start_on, done_on = start.enabled, done.enabled
        if not (start_on or done_on):
            return self.app(environ, start_response)
        t0 = perf_counter_ns() if done_on else 0
        method = _text(environ.get("REQUEST_METHOD", ""))
        path = _wsgi_path(environ)
        if start_on:
            start.fire(method, path)
        if not done_on:
            return self.app(environ, start_response)

        status = [0]

        def traced_start_response(status_line: str, headers: List[Tuple[str, str]],
                                  exc_info: Any = None) -> Callable[[bytes], Any]:
            status[0] = _status_code(status_line)
            if exc_info is None:
                write: Callable[[bytes], Any] = start_response(status_line, headers)
            else:
                write = start_response(status_line, headers, exc_info)
            return write

        def finished() -> None:
            if tracers._on:
                done.fire(method, path, status[0], perf_counter_ns() - t0)

        try:
            result = self.app(environ, traced_start_response)
        except BaseException:
            if not status[0]:
                status[0] = 500
            finished()
            raise
        try:
            len(result)  # type: ignore[arg-type]
            sized = True
        except Exception:
            sized = False
        return (_SizedResponse if sized else _Response)(result, finished)


# -- ASGI --------------------------------------------------------------------


class ASGIMiddleware:
    """Wraps an ASGI 3 application: for "http" scopes, request__start when a
    request arrives and request__done after the final response body was sent
    or the application raised; other scopes pass through untouched."""

    def __init__(self, app: ASGIApp, provider: ProviderArg = None) -> None:
        self.app = app
        self._probes = _Probes(web_provider(provider))

    @property
    def provider(self) -> LazyProvider:
        """The provider the probes live in."""
        return self._probes.lazy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Runs the application on one scope, firing the probes for traced HTTP requests."""
        if scope.get("type") != "http" or not tracers._on:
            return await self.app(scope, receive, send)
        pair = self._probes.pair or self._probes.get()
        if pair is None:
            return await self.app(scope, receive, send)
        start, done = pair
        start_on, done_on = start.enabled, done.enabled
        if not (start_on or done_on):
            return await self.app(scope, receive, send)
        t0 = perf_counter_ns() if done_on else 0
        method = _text(scope.get("method", ""))
        path = _text(scope.get("path", ""))
        if start_on:
            start.fire(method, path)
        if not done_on:
            return await self.app(scope, receive, send)

        state = {"status": 0, "trailers": False, "fired": False}

        def finished() -> None:
            if not state["fired"]:
                state["fired"] = True
                if tracers._on:
                    done.fire(method, path, state["status"], perf_counter_ns() - t0)

        async def traced_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                state["status"] = _status_code(message.get("status"))
                state["trailers"] = bool(message.get("trailers", False))
                await send(message)
                return
            await send(message)
            if state["trailers"]:
                last = kind == "http.response.trailers" and not message.get("more_trailers", False)
            elif kind in ("http.response.body", "http.response.zerocopysend"):
                last = not message.get("more_body", False)
            else:
                last = kind == "http.response.pathsend"
            if last:
                finished()

        try:
            await self.app(scope, receive, traced_send)
        except BaseException:
            if not state["status"]:
                state["status"] = 500
            finished()
            raise
        finished()  # an application that returned without finishing its response
