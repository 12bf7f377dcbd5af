"""Run-time USDT providers: Python programs declare probes and fire them.

    app = Provider("myapp")
    request = app.probe("request", ("method", "str"), ("status", "uint16"), ("ns", "uint64"))
    app.load()
    if request.enabled:                      # one memory read: is anyone tracing?
        request.fire("GET", 200, 1234)

Loading builds a small shared object natively (no libstapsdt, no libelf):
one function per probe whose first instruction is the probe site, a
semaphore per probe that the kernel raises while the probe is traced, and
the notes bpftrace, perf and pyusdt read.  It lives in a memfd and is
dlopen'ed from there: no file on disk, nothing to clean up.  A note also
records each argument's name and type, so `pyusdt list -p` and
`pyusdt trace -p` name the arguments and decode strings by themselves.
"""
from __future__ import annotations

import ctypes
import os
import re
from typing import Any, Dict, List, Optional, Tuple, Union

from pyusdt import _provider
from pyusdt.errors import ProviderError

ARG_TYPES: Dict[str, int] = dict(_provider.ARG_TYPES)
_PY_TYPES = {int: "int64", str: "str", bytes: "bytes"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

ArgDecl = Tuple[str, Union[str, type]]


def _check_ident(what: str, name: str) -> None:
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ProviderError(f"{what} name {name!r} is not a valid identifier")


# One probe of a Provider: a native type (csrc/provider/provider_probe.cpp), so that
# probe.fire(...) is a method call CPython specialises end to end.  It has
# provider, name, fullname, arg_names, arg_types, enabled, fire(*values) and
# fire_lazy(make_args).
ProviderProbe = _provider.ProviderProbe


class Provider:
    """A set of probes under one provider name, loaded into this process as one object."""

    def __init__(self, name: str, *, nop5: bool = True):
        """nop5: 5-byte nop probe sites, which Linux 6.x can turn into optimized
        uprobes (a call instead of a trap); False gives the classic 1-byte nop."""
        _check_ident("provider", name)
        self.name = name
        self.nop5 = nop5
        self.probes: Dict[str, ProviderProbe] = {}
        self._fd: Optional[int] = None
        self._lib: Optional[ctypes.CDLL] = None

    def probe(self, name: str, *args: ArgDecl) -> ProviderProbe:
        """Declares a probe: each argument is (name, type) with type one of
        int8 uint8 int16 uint16 int32 uint32 int64 uint64 str bytes (or int,
        str, bytes).  Probes added after load() appear at the next load()."""
        _check_ident("probe", name)
        if name in self.probes:
            raise ProviderError(f"{self.name}:{name} is declared twice")
        if len(args) > _provider.MAX_PROVIDER_ARGS:
            raise ProviderError(f"{self.name}:{name} has {len(args)} arguments; "
                                f"at most {_provider.MAX_PROVIDER_ARGS}")
        decls: List[Tuple[str, str]] = []
        for decl in args:
            if not (isinstance(decl, tuple) and len(decl) == 2):
                raise ProviderError(f"{self.name}:{name}: each argument is (name, type), got {decl!r}")
            arg_name, declared = decl
            _check_ident("argument", arg_name)
            arg_type = _PY_TYPES.get(declared, declared) if isinstance(declared, type) else declared
            if not isinstance(arg_type, str) or arg_type not in ARG_TYPES:
                raise ProviderError(f"{self.name}:{name}: argument {arg_name!r} has unknown type "
                                    f"{arg_type!r} (use one of {', '.join(ARG_TYPES)})")
            decls.append((arg_name, arg_type))
        p = ProviderProbe(self, name, f"{self.name}:{name}", [a for a, _ in decls], [t for _, t in decls],
                  bytes(ARG_TYPES[t] for _, t in decls))
        self.probes[name] = p
        return p

    @property
    def loaded(self) -> bool:
        return self._lib is not None

    def load(self) -> None:
        """Builds the object in a memfd and dlopens it; probes become live."""
        if self.loaded:
            raise ProviderError(f"provider {self.name} is already loaded (unload() first)")
        if not self.probes:
            raise ProviderError(f"provider {self.name} has no probes")
        specs = [(p.name, p._codes, p.arg_names) for p in self.probes.values()]
        elf, functions, semaphores = _provider.build_provider(self.name, specs, self.nop5)
        fd = os.memfd_create(f"pyusdt-{self.name}", os.MFD_CLOEXEC)
        try:
            os.write(fd, elf)
            # The path names the memfd for the loader; the mapping keeps the
            # object alive, the fd stays open so tracers can read it later.
            lib = ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except BaseException:
            os.close(fd)
            raise
        first = ctypes.cast(lib[f"__pyusdt_{self.name}__{specs[0][0]}"], ctypes.c_void_p).value
        assert first is not None  # dlopen resolved the symbol, or raised
        base = first - functions[0]
        for p, fn_off, sem_off in zip(self.probes.values(), functions, semaphores):
            p._bind(base + fn_off, base + sem_off)
        self._fd, self._lib = fd, lib

    def unload(self) -> None:
        """dlcloses the object; its probes' fire() then raises ProviderError."""
        if not self.loaded:
            return
        for p in self.probes.values():
            p._unbind()
        import _ctypes

        assert self._lib is not None and self._fd is not None  # loaded
        _ctypes.dlclose(self._lib._handle)
        os.close(self._fd)
        self._fd, self._lib = None, None

    def __enter__(self) -> "Provider":
        if not self.loaded:
            self.load()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unload()

    def __repr__(self) -> str:
        return f"<Provider {self.name} probes={list(self.probes)} loaded={self.loaded}>"
