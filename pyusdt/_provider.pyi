"""pyusdt._provider: run-time providers, without numpy or the tracer (csrc/bindings/provider_module.cpp).

Hand-written; tests/test_native_stubs.py checks that it names exactly what the module defines.
"""
import enum
from typing import Any, Callable, Dict, List, Sequence, Tuple

MAX_PROVIDER_ARGS: int

class ArgType(enum.IntEnum):
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    UINT16 = 4
    INT32 = 5
    UINT32 = 6
    INT64 = 7
    UINT64 = 8
    STR = 9
    BYTES = 10

# {"int8": 1, ..., "bytes": 10}, in declaration order.
ARG_TYPES: Dict[str, int]
ARG_INT8: int
ARG_UINT8: int
ARG_INT16: int
ARG_UINT16: int
ARG_INT32: int
ARG_UINT32: int
ARG_INT64: int
ARG_UINT64: int
ARG_STR: int
ARG_BYTES: int

def build_provider(provider: str, probes: List[Tuple[str, bytes, List[str]]],
                   nop5: bool = True) -> Tuple[bytes, List[int], List[int]]:
    """The provider's shared object: (bytes, function offsets, semaphore offsets)."""

class ProviderProbe:
    """One probe of a Provider (pyusdt.provide.ProviderProbe); not subclassable."""
    @property
    def provider(self) -> Any: ...
    @property
    def name(self) -> str: ...
    @property
    def fullname(self) -> str: ...
    @property
    def arg_names(self) -> List[str]: ...
    @property
    def arg_types(self) -> List[str]: ...
    @property
    def _codes(self) -> bytes: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def _loaded(self) -> bool: ...
    def __init__(self, provider: Any, name: str, fullname: str, arg_names: List[str],
                 arg_types: List[str], codes: bytes) -> None: ...
    def fire(self, *values: Any) -> None: ...
    def fire_lazy(self, make_args: Callable[[], Sequence[Any]]) -> None: ...
    def _bind(self, function: int, semaphore: int) -> None: ...
    def _unbind(self) -> None: ...
