"""pyusdt._native: ELF note discovery and the libbpf tracing session (csrc/bindings/native_module.cpp).

Hand-written; tests/test_native_stubs.py checks that it names exactly what the module defines.
"""
import enum
import os
from typing import Dict, List, Optional, Tuple, TypedDict, Union

import numpy

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# ---- Limits and layout constants (bpf/pyusdt_abi.h) ----------------------------
MAX_ARGS: int
ARG_SLOT_BYTES: int
MAX_STR_LEN: int
DEFAULT_STR_LEN: int
MAX_RINGBUF_BYTES: int
MAX_SITES: int
MAX_PROBES: int
MAX_MAP_ENTRIES: int
MAX_CGROUPS: int
MAX_CGROUP_SETS: int
MAX_AGGS: int
FLAG_STR_TRUNC_SHIFT: int
FLAG_READ_FAIL_SHIFT: int
NO_ARG: int
STR_KEY_LEN: int
STATS_ROW: int
LOG2_BUCKETS: int
# The expression instruction set and where programs write (pyusdt_abi.h).
EXPR_OPS: Dict[str, int]
EXPR_SIGNED: int
EXPR_WITH_LEN: int
EXPR_TO_OUT: int
EXPR_MAX_INSNS: int
EXPR_STACK: int
EXPR_TMP_STRS: int
EXPR_LIT_BYTES: int
MAX_EXPR_PROGS: int
TUPLE_KEY_LEN: int
EVENT_SIZE: int
EXPR_TMP_OFFSET: int
EXPR_RECORD_ARGS_OFFSET: int
EXPR_RECORD_STRINGS_OFFSET: int
EXPR_AGG_VALUE_OFFSET: int
EXPR_AGG_KEY_OFFSET: int
USTACK_DEPTH: int
USTACK_NONE: int
TUPLE_SMALL_KEY_LEN: int
# Field names of the counter structs, in order.
AGG_COUNTER_NAMES: Tuple[str, ...]
PROBE_STATS_NAMES: Tuple[str, ...]

# ---- Aggregation spec enums, and their flat aliases (plain ints) -------------------
class FilterKind(enum.IntEnum):
    NONE = 0
    TGID = 1
    CGROUP = 2

class Role(enum.IntEnum):
    NONE = 0
    AGG = 1
    START = 2
    DONE = 3

class KeyKind(enum.IntEnum):
    NONE = 0
    ARG = 1
    STR = 2
    PID = 3
    TID = 4
    COMM = 5
    PROBE = 6
    TUPLE = 7
    TUPLE_SMALL = 8

class Cmp(enum.IntEnum):
    NONE = 0
    EQ = 1
    NE = 2
    LT = 3
    LE = 4
    GT = 5
    GE = 6

class HistKind(enum.IntEnum):
    NONE = 0
    LOG2 = 1
    LINEAR = 2

ROLE_NONE: int
ROLE_AGG: int
ROLE_START: int
ROLE_DONE: int
KEY_NONE: int
KEY_ARG: int
KEY_STR: int
KEY_PID: int
KEY_TID: int
KEY_COMM: int
KEY_PROBE: int
KEY_TUPLE: int
KEY_TUPLE_SMALL: int
CMP_NONE: int
CMP_EQ: int
CMP_NE: int
CMP_LT: int
CMP_LE: int
CMP_GT: int
CMP_GE: int
HIST_NONE: int
HIST_LOG2: int
HIST_LINEAR: int

# ---- Discovery ------------------------------------------------------------------
class _ArgDict(TypedDict):
    spec: str
    kind: str  # "const", "reg", "mem", "mem_index", "mem_abs" or "none"
    size: int
    signed: bool

class UsdtSite:
    """One probe site read from an NT_STAPSDT note."""
    @property
    def provider(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def pc_vaddr(self) -> int: ...
    @property
    def pc_offset(self) -> int: ...
    @property
    def semaphore_vaddr(self) -> int: ...
    @property
    def semaphore_offset(self) -> int: ...
    @property
    def args_text(self) -> str: ...
    @property
    def args_error(self) -> str: ...
    @property
    def args(self) -> List[_ArgDict]: ...
    @property
    def nargs(self) -> int: ...

def read_sites(path: _Path) -> Tuple[List[UsdtSite], int]: ...
def loader_hook_site(path: _Path) -> Optional[UsdtSite]: ...
def parse_arg(token: str) -> _ArgDict: ...
def described_probes(path: _Path) -> Dict[Tuple[str, str], List[Tuple[int, str]]]: ...

# ---- layouts ----------------------------------------------------------------
class EventRows:
    """Event rows drained by one poll: a writable byte buffer of count rows of row_size bytes."""
    @property
    def count(self) -> int: ...
    @property
    def row_size(self) -> int: ...
    @property
    def loader_pids(self) -> List[int]: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

def event_layout(str_len: int, string_slots: int) -> Tuple[List[str], List[str], List[int], int]: ...
def event_dtype(str_len: int, string_slots: int) -> numpy.dtype: ...
def stats_dtype() -> numpy.dtype: ...
def agg_counters_dtype() -> numpy.dtype: ...

# ---- The tracing session ----------------------------------------------------------------
class SessionOptions:
    ringbuf_bytes: int
    str_len: int
    string_slots: int
    wakeup_bytes: int
    wakeup_interval_ns: int
    max_sites: int
    max_probes: int
    max_agg_keys: int
    max_starts: int
    aggregate: bool
    flat_aggs: int
    uprobe_multi: bool
    expressions: bool
    max_stacks: int
    def __init__(self) -> None: ...

class SiteExprs:
    """The expression programs one site runs (ids; 0: none)."""
    pred_prog: int
    out_prog: int
    string_fields: int
    reads_strings: bool
    takes_stacks: bool
    def __init__(self) -> None: ...

class AggSpec:
    """What an aggregating site does (bpf/pyusdt_abi.h)."""
    lmin: int
    lmax: int
    step: int
    filter_value: int
    divisor: int
    agg_id: int
    filter_pid: int
    lbuckets: int
    role: int
    value_arg: int
    key_kind: int
    key_arg: int
    hist_kind: int
    keep_stats: int
    filter_op: int
    filter_arg: int
    pair_arg: int
    key_from_start: int
    flat: int
    def __init__(self) -> None: ...

class Session:
    """A loaded BPF program with its maps, links and ring buffer."""
    def __init__(self, options: SessionOptions) -> None: ...
    def attach(self, path: _Path, site: UsdtSite, probe_id: int, string_args: List[int],
               pid: int = -1, filter: int = 0, agg: Optional[AggSpec] = None,
               hold: bool = False, exprs: SiteExprs = ..., cgroup_sets: int = 0) -> int: ...
    def set_expr(self, id: int, insns: List[Tuple[int, int, int, int, int, int]], lits: bytes) -> None: ...
    def agg_tuple_rows(self) -> numpy.ndarray: ...
    def ustack(self, id: int) -> List[int]: ...
    def warm_attach(self) -> None: ...
    def commit(self) -> List[Tuple[int, str]]: ...
    def agg_rows(self) -> numpy.ndarray: ...
    def agg_counters(self, n: int) -> numpy.ndarray: ...
    def pending_starts(self, n: int) -> List[int]: ...
    def add_tgid(self, tgid: int) -> None: ...
    def remove_tgid(self, tgid: int) -> None: ...
    def tgids(self) -> List[int]: ...
    def add_cgroup(self, id: int, set: int) -> None: ...
    def remove_cgroup(self, id: int) -> None: ...
    def poll(self, timeout_ms: int, max_events: int) -> EventRows: ...
    def delivered(self) -> List[int]: ...
    def set_loader_probe(self, probe_id: int) -> None: ...
    @property
    def row_size(self) -> int: ...
    def lost_ringbuf(self) -> int: ...
    def stop_streaming(self) -> None: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def late_wakeups(self) -> int: ...
    def detach_in_background(self) -> int: ...
    @property
    def perf_links(self) -> int: ...
    def stats(self) -> numpy.ndarray: ...
    def stats_rows(self) -> List[List[int]]: ...
    def detach_all(self) -> None: ...
    @property
    def attached_sites(self) -> int: ...
    @property
    def sleepable_strings(self) -> bool: ...
    @property
    def uprobe_multi(self) -> bool: ...
    @property
    def string_slots(self) -> int: ...
    @property
    def str_len(self) -> int: ...
    @property
    def expressions(self) -> bool: ...
    @property
    def dtype(self) -> numpy.dtype: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
