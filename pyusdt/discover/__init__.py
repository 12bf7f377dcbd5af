"""Finding probes: in one ELF file (probes), in every object a running
process maps (process), and by bpftrace-style pattern (patterns)."""
from pyusdt.discover.patterns import match, require_match, split_path_pattern
from pyusdt.discover.probes import ArgSpec, Probe, as_path, probes_at_path
from pyusdt.discover.process import MappedObject, probes_in_process, process_objects

__all__ = ["ArgSpec", "MappedObject", "Probe", "as_path", "match", "probes_at_path", "probes_in_process",
           "process_objects", "require_match", "split_path_pattern"]
