"""The exceptions pyusdt raises: one class per thing a user can get wrong.

Every error carries a one-line message a person can act on; the CLI prints it
as is and exits non-zero.
"""
from __future__ import annotations


class PyusdtError(Exception):
    """Base class of every pyusdt error."""

    os_errno: int = 0


class TargetError(PyusdtError):
    """The target (pid, path or command) cannot be traced."""


class NoSuchProcessError(TargetError, ProcessLookupError):
    """No process has the given pid, or it exited."""


class NoSuchCgroupError(TargetError, FileNotFoundError):
    """No cgroup (v2) has the given path, or there is no cgroup v2 hierarchy."""


class NoSuchContainerError(TargetError, LookupError):
    """No running container has the given id (or unique id prefix) or name."""


class ELFNotFoundError(TargetError, FileNotFoundError):
    """The path does not exist."""


class NotELFError(TargetError):
    """The path is not an ELF object pyusdt can read (64-bit, of the machine it runs on)."""


class ELFReadError(TargetError):
    """The ELF file exists but cannot be read."""


class NoProbesError(TargetError):
    """The target has no USDT probes at all."""


class NoMatchError(PyusdtError):
    """No probe matches the pattern."""


class ArgumentIndexError(PyusdtError, IndexError):
    """An argument index the probe does not have, or the wrong kind of argument."""


class UnsupportedArgumentError(PyusdtError):
    """An argument spec pyusdt cannot read."""


class KernelSupportError(PyusdtError):
    """The kernel lacks something pyusdt needs (BTF, uprobes, BPF)."""


class PrivilegeError(PyusdtError, PermissionError):
    """A capability the job needs is missing (pyusdt.privileges says which)."""


class LoadError(PyusdtError):
    """The BPF program could not be loaded for another reason."""


class AttachError(PyusdtError):
    """A probe site could not be attached."""

    reason: str = ""  # the kernel's or libbpf's words, without the probe's name
    probe: object = None  # the discover.Probe that failed, when known

    @classmethod
    def refused(cls, os_errno: int, message: str) -> AttachError:
        """A link the kernel refused, as Session.commit() reports it: (errno, message)."""
        e = cls(message)
        e.os_errno = os_errno
        return e


class ConfigError(PyusdtError, ValueError):
    """An option out of range (string length, ring size, ...)."""


class ConfigTypeError(ConfigError, TypeError):
    """An option of the wrong type (a float where a count is wanted, a str
    where a number is): a ConfigError, and a TypeError as Python has it."""


class SessionClosedError(PyusdtError):
    """The tracer was used after it was closed."""


class ProviderError(PyusdtError, ValueError):
    """A provider or probe that cannot be built: bad name, too many arguments,
    loading twice, firing after unload."""


class ProbeArgumentError(PyusdtError, TypeError):
    """A probe fired with the wrong number or types of arguments."""


class MissingExtraError(PyusdtError, ImportError):
    """An optional package (pandas, pyarrow, matplotlib) is needed and not installed."""


class OutputError(PyusdtError):
    """An output file that cannot be written: unknown extension, no such
    directory, no permission, disk full."""


class MalformedNotesWarning(UserWarning):
    """An ELF file holds USDT notes pyusdt cannot read (truncated, or names
    that are not UTF-8): they are skipped, the file's other probes are not."""
