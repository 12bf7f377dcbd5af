"""Ready-made tracers: latency probes for functions and blocks, behind a runtime switch.

The idea of ruby-static-tracing, for Python: decorate what you want timed,
and a tracer (pyusdt, bpftrace, perf) sees one probe hit per call, with the
call's name and duration, while code that nobody traces pays next to nothing.

    from pyusdt.provide.latency import trace_latency, latency_block

    @trace_latency                      # name: "<module>.<qualname>"
    def handle(request): ...

    @trace_latency(name="db.query")     # sync and async functions alike
    async def query(sql): ...

    with latency_block("render"):       # any block of code
        ...

Every timing fires `pyusdt_app:latency(name: str, duration_ns: uint64)`, the
duration measured with time.perf_counter_ns() from entry to exit (exceptions
included), so

    pyusdt trace -p PID 'pyusdt_app:latency' -s 0
    pyusdt hist -p PID pyusdt_app:latency -v 1 --by str0       # in the kernel
    bpftrace -p PID -e 'usdt:*:pyusdt_app:latency { @[str(arg0)] = hist(arg1); }'

show every timed call.  The provider is created and loaded lazily, at the
first timed call (or by `app_provider()`, or by `enable()` once something is
decorated); its name is "pyusdt_app" unless `configure(provider_name=...)`
says otherwise before then.

Cost.  At entry a timed call checks the runtime switch (one global read), then
`probe.enabled` (one semaphore read, non-zero only while a tracer is
attached).  Only when both are on does it read the clock: an untraced call
never calls time.perf_counter_ns().  A tracer that attaches in the middle of a
call sees the next calls, not that one.

The runtime switch.  Tracers are on by default; set the environment variable
PYUSDT_TRACING=0 (or off/false/no) to start with them off.  In a running
process:

    tracing_enabled() -> bool
    enable() / disable() / toggle()
    install_signal_toggle(signal.SIGPROF)   # then: kill -PROF PID flips it

While the switch is off, decorated functions and latency blocks do one flag
check and nothing else, and the middleware (pyusdt.provide.middleware) passes
requests straight through: nothing fires even while a tracer is attached.
Off does not unload the providers: loaded probes stay listable (`pyusdt list
-p PID`) and attachable, so a tracer can be attached first and the switch
flipped on afterwards; unloading would also invalidate every cached probe and
make an attached tracer lose its sites.  Turning the switch on loads the
providers of the tracers in use, so that they can be listed right away.

Signals.  A Python signal handler runs in the main thread, between bytecodes;
install_signal_toggle() must be called from the main thread.  Sending the
signal to a process that did not install the toggle runs the signal's default
action (for SIGPROF: terminate).  SIGPROF is also what setitimer(ITIMER_PROF)
profilers use: pick another signal (e.g. SIGUSR2) in a process that has one.

Tracing never breaks the traced program: if a provider cannot be loaded, a
RuntimeWarning says why (once) and its tracers stay silent.
"""
from __future__ import annotations

import functools
import inspect
import os
import signal
import threading
import warnings
from time import perf_counter_ns
from types import FrameType, TracebackType
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type, TypeVar, Union, overload

from pyusdt.errors import ProviderError
from pyusdt.provide.provider import ArgDecl, Provider, ProviderProbe

__all__ = [
    "DEFAULT_APP_PROVIDER",
    "ENV_SWITCH",
    "LatencyBlock",
    "LazyProvider",
    "app_provider",
    "configure",
    "disable",
    "enable",
    "install_signal_toggle",
    "latency_block",
    "toggle",
    "trace_latency",
    "tracing_enabled",
]

DEFAULT_APP_PROVIDER = "pyusdt_app"
ENV_SWITCH = "PYUSDT_TRACING"
LATENCY_PROBE = "latency"
LATENCY_ARGS: Tuple[ArgDecl, ...] = (("name", "str"), ("duration_ns", "uint64"))

F = TypeVar("F", bound=Callable[..., Any])
ProbeDecl = Tuple[str, Sequence[ArgDecl]]
SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]


def _switch_from_env() -> bool:
    return os.environ.get(ENV_SWITCH, "").strip().lower() not in ("0", "off", "false", "no")


# The runtime switch: one module global, read by every tracer at entry.
_on: bool = _switch_from_env()


class LazyProvider:
    """A provider declared up front and built and loaded at its first use.

    `name_or_provider` is a provider name, or an existing Provider: its
    missing probes are declared on it and it is loaded at first use if it is
    not loaded yet (a loaded one must already have them, with the same
    argument types).  `get()` never raises: a provider that fails to load is
    reported once with a RuntimeWarning, and `get()` returns None from then on.
    """

    def __init__(self, name_or_provider: Union[str, Provider], probes: Sequence[ProbeDecl]) -> None:
        self._decls: List[Tuple[str, Tuple[ArgDecl, ...]]] = [(n, tuple(a)) for n, a in probes]
        self._lock = threading.Lock()
        self._provider: Optional[Provider] = None
        self._error: Optional[BaseException] = None
        self._wanted = False
        if isinstance(name_or_provider, Provider):
            self._name = name_or_provider.name
            self._given: Optional[Provider] = name_or_provider
            self._check_given(name_or_provider)
        else:
            self._name = name_or_provider
            self._given = None
            Provider(name_or_provider)  # validates the name now

    @property
    def name(self) -> str:
        """The provider name tracers use (`NAME:probe`)."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        with self._lock:
            if self._provider is not None or self._given is not None:
                if value != self._name:
                    raise ProviderError(f"provider {self._name} is already in use; "
                                        f"it cannot be renamed {value!r}")
                return
            Provider(value)  # validates
            self._name = value

    @property
    def loaded(self) -> bool:
        """True once the provider is loaded (its probes can be traced)."""
        p = self._provider
        return p is not None and p.loaded

    @property
    def error(self) -> Optional[BaseException]:
        """Why loading failed, if it did."""
        return self._error

    def want(self) -> None:
        """Marks the provider as used by some tracer: enable() then loads it."""
        if not self._wanted:
            self._wanted = True
            _wanted.append(self)

    def _check_given(self, provider: Provider) -> None:
        for name, args in self._decls:
            have = provider.probes.get(name)
            if have is None:
                if provider.loaded:
                    raise ProviderError(f"provider {provider.name} is loaded without probe {name}: "
                                        "declare it before load(), or pass an unloaded provider")
                continue
            want = Provider(provider.name).probe(name, *args).arg_types
            if have.arg_types != want:
                raise ProviderError(f"{provider.name}:{name} has arguments {have.arg_types}, "
                                    f"expected {want}")

    def _build(self) -> Provider:
        if self._given is not None:
            p = self._given
            self._check_given(p)
            for name, args in self._decls:
                if name not in p.probes:
                    p.probe(name, *args)
        else:
            p = Provider(self._name)
            for name, args in self._decls:
                p.probe(name, *args)
        if not p.loaded:
            p.load()
        return p

    def get(self, blocking: bool = True) -> Optional[Provider]:
        """The loaded provider (loading it now if needed), or None if it failed to
        load, or if `blocking` is False and another caller is loading it."""
        p = self._provider
        if p is not None or self._error is not None:
            return p
        if not self._lock.acquire(blocking):
            return None
        try:
            if self._provider is None and self._error is None:
                try:
                    self._provider = self._build()
                except Exception as e:  # tracing must not break the program
                    self._error = e
                    warnings.warn(f"pyusdt: provider {self._name} not loaded, its tracers are off: {e}",
                                  RuntimeWarning, stacklevel=3)
            return self._provider
        finally:
            self._lock.release()

    def load(self) -> Provider:
        """The loaded provider; raises ProviderError if it cannot be loaded."""
        p = self.get()
        if p is None:
            raise ProviderError(f"provider {self._name} could not be loaded: {self._error}") from self._error
        return p

    def probe(self, name: str) -> Optional[ProviderProbe]:
        """One of the declared probes, loading the provider if needed (None if that fails)."""
        p = self.get()
        return None if p is None else p.probes[name]

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else ("failed" if self._error else "not loaded")
        return f"<LazyProvider {self._name} probes={[n for n, _ in self._decls]} {state}>"


# Providers some tracer uses: enable() loads them.
_wanted: List[LazyProvider] = []

_app = LazyProvider(DEFAULT_APP_PROVIDER, [(LATENCY_PROBE, LATENCY_ARGS)])
_latency_probe: Optional[ProviderProbe] = None  # cached once the app provider is loaded


def _latency() -> Optional[ProviderProbe]:
    """The latency probe, loading the app provider at the first call."""
    global _latency_probe
    probe = _latency_probe
    if probe is None:
        probe = _app.probe(LATENCY_PROBE)
        _latency_probe = probe
    return probe


def configure(*, provider_name: Optional[str] = None, enabled: Optional[bool] = None) -> None:
    """Sets the app provider's name (before it is loaded; default "pyusdt_app")
    and/or the runtime switch."""
    if provider_name is not None:
        _app.name = provider_name
    if enabled is not None:
        enable() if enabled else disable()


def app_provider() -> Provider:
    """The app provider, loaded (e.g. at start-up, so that it is listable before
    the first timed call).  Raises ProviderError if it cannot be loaded."""
    _app.want()
    provider = _app.load()
    _latency()
    return provider


# -- the runtime switch ------------------------------------------------------


def tracing_enabled() -> bool:
    """The runtime switch: True while tracers fire (when traced)."""
    return _on


def _switch_on(blocking: bool) -> None:
    global _on
    _on = True
    for lazy in list(_wanted):
        lazy.get(blocking)


def enable() -> None:
    """Turns the tracers on, and loads the providers of the tracers in use."""
    _switch_on(blocking=True)


def disable() -> None:
    """Turns the tracers off: they do one flag check and nothing else.
    Providers stay loaded (listable and attachable)."""
    global _on
    _on = False


def toggle() -> bool:
    """Flips the runtime switch; returns the new state."""
    if _on:
        disable()
    else:
        enable()
    return _on


def _signal_toggle(signum: int, frame: Optional[FrameType]) -> None:
    global _on
    if _on:
        _on = False
    else:
        # Never wait for a lock here: the main thread, interrupted, may hold it.
        _switch_on(blocking=False)


def install_signal_toggle(signum: int = signal.SIGPROF) -> SignalHandler:
    """Makes signal `signum` flip the runtime switch (`kill -PROF PID`), as
    ruby-static-tracing did.  Call it from the main thread.  Returns the
    previous handler."""
    return signal.signal(signum, _signal_toggle)


# -- latency -----------------------------------------------------------------


def _default_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}.{qualname}" if module else qualname


def _wrap(func: F, label: str) -> F:
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"trace_latency cannot time generator {label!r} (it would time its "
                        "creation); use `with latency_block(...)` inside it instead")

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _on:
                return await func(*args, **kwargs)
            probe = _latency_probe or _latency()
            if probe is None or not probe.enabled:
                return await func(*args, **kwargs)
            t0 = perf_counter_ns()
            try:
                return await func(*args, **kwargs)
            finally:
                if _on:
                    probe.fire(label, perf_counter_ns() - t0)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _on:
            return func(*args, **kwargs)
        probe = _latency_probe or _latency()
        if probe is None or not probe.enabled:
            return func(*args, **kwargs)
        t0 = perf_counter_ns()
        try:
            return func(*args, **kwargs)
        finally:
            if _on:
                probe.fire(label, perf_counter_ns() - t0)

    return wrapper  # type: ignore[return-value]


@overload
def trace_latency(func: F) -> F: ...
@overload
def trace_latency(func: None = None, *, name: Optional[str] = None) -> Callable[[F], F]: ...
@overload
def trace_latency(func: str) -> Callable[[F], F]: ...


def trace_latency(func: Union[F, str, None] = None, *, name: Optional[str] = None) -> Union[F, Callable[[F], F]]:
    """Times each call of a function (sync or async) and fires
    `latency(name, duration_ns)` when it returns or raises.

    `@trace_latency`, `@trace_latency()`, `@trace_latency(name="db.query")`
    or `@trace_latency("db.query")`; the default name is
    "<module>.<qualname>".  An async function is timed from its first step to
    its result (time spent suspended included).  Generator functions are
    refused (TypeError): time their body with latency_block().
    """
    if isinstance(func, str):
        if name is not None:
            raise TypeError("trace_latency: give the name once")
        func, name = None, func
    if name is not None and not isinstance(name, str):
        raise TypeError(f"trace_latency: name must be a str, not {type(name).__name__}")
    _app.want()
    if func is not None:
        if not callable(func):
            raise TypeError(f"trace_latency decorates a function, not {type(func).__name__}")
        return _wrap(func, name if name is not None else _default_name(func))

    def decorate(f: F) -> F:
        if not callable(f):
            raise TypeError(f"trace_latency decorates a function, not {type(f).__name__}")
        return _wrap(f, name if name is not None else _default_name(f))

    return decorate


class LatencyBlock:
    """`with latency_block("name"):` times the block and fires
    `latency(name, duration_ns)` at its end (exceptions included).  Works as
    `async with` too.  Reusable, but not reentrant: one block at a time."""

    __slots__ = ("name", "_probe", "_t0")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"latency_block: name must be a str, not {type(name).__name__}")
        self.name = name
        self._probe: Optional[ProviderProbe] = None
        self._t0 = 0

    def __enter__(self) -> "LatencyBlock":
        self._probe = None
        if _on:
            probe = _latency_probe or _latency()
            if probe is not None and probe.enabled:
                self._probe = probe
                self._t0 = perf_counter_ns()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        probe = self._probe
        if probe is not None:
            self._probe = None
            if _on:
                probe.fire(self.name, perf_counter_ns() - self._t0)

    async def __aenter__(self) -> "LatencyBlock":
        return self.__enter__()

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self.__exit__(exc_type, exc, tb)


def latency_block(name: str) -> LatencyBlock:
    """A context manager timing its block as `latency(name, duration_ns)`."""
    _app.want()
    return LatencyBlock(name)
