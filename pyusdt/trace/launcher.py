"""Starting a command held before exec, so probes are attached before it runs.

The child is forked at once (its pid is known and can be put in the BPF pid
filter) but waits on a pipe; release() lets it exec.  The shared libraries it
will load are found beforehand with the dynamic loader's --list, so their
probes are attached before the first instruction of the program runs.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
from typing import Optional, Sequence

from pyusdt.arch_x86_64 import DYNAMIC_LOADERS
from pyusdt.errors import ConfigTypeError, TargetError

_LIST_LINE = re.compile(r"=>\s+(/\S+)|^\s*(/\S+)\s+\(0x")


# The kernel runs a #! script's interpreter, which may be a script too, to
# this depth (BINPRM_MAX_RECURSION); deeper, exec fails with ELOOP.
MAX_INTERPRETER_DEPTH = 4


def resolve_executable(name: str, _seen: tuple[str, ...] = ()) -> str:
    """The file `name` runs: a path, or a PATH lookup like the shell's."""
    if "/" in name:
        path: Optional[str] = name
    else:
        import shutil  # here: it imports zlib, bz2 and lzma (~2.5 ms); `-c ./prog` needs no PATH lookup

        path = shutil.which(name)
    if not path or not os.path.exists(path):
        raise TargetError(f"command not found: {name}")
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        raise TargetError(f"not executable: {path}")
    path = os.path.realpath(path)
    # Before opening: a FIFO would wait for a writer forever, a device is no program.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise TargetError(f"not executable: {path}: not a regular file")
    # A script runs its interpreter: that is the ELF file whose probes fire.
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:
        raise TargetError(f"cannot read {path}: {e.strerror}") from None
    if head.startswith(b"#!"):
        if path in _seen:
            raise TargetError(f"{path}: its #! line leads back to itself")
        if len(_seen) >= MAX_INTERPRETER_DEPTH:
            raise TargetError(f"{path}: #! interpreters nested more than {MAX_INTERPRETER_DEPTH} deep")
        seen = _seen + (path,)
        # The name as bytes, like the kernel takes it (os.fsdecode: not UTF-8 is fine).
        words = [os.fsdecode(w) for w in head[2:].split(b"\n", 1)[0].split()]
        if words:
            interp = words[0]
            if os.path.basename(interp) == "env" and len(words) > 1:
                return resolve_executable(words[1], seen)
            return resolve_executable(interp, seen)
    return path


def linked_libraries(executable: str) -> list[str]:
    """Shared libraries the dynamic loader would map for `executable`."""
    loader = next((p for p in DYNAMIC_LOADERS if os.path.exists(p)), None)
    if loader is None:
        return []
    try:
        out = subprocess.run(
            [loader, "--list", executable], capture_output=True, text=True, timeout=10,
            errors="surrogateescape",  # library paths as os.fsdecode gives them
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:  # a static executable, or not one the loader handles
        return []
    libs = []
    for line in out.stdout.splitlines():
        m = _LIST_LINE.search(line)
        if m:
            lib = os.path.realpath(m.group(1) or m.group(2))
            if lib not in libs and os.path.exists(lib):
                libs.append(lib)
    return libs


class HeldProcess:
    """A forked child that execs `argv` only when released."""

    def __init__(self, argv: Sequence[str]):
        if isinstance(argv, (str, bytes)):
            raise ConfigTypeError(f"a command is a list of arguments, not one string (got {argv!r})")
        try:
            self.argv = [os.fsdecode(a) for a in argv]
        except TypeError:
            raise ConfigTypeError(f"a command's arguments must be str, bytes or os.PathLike (got {argv!r})") \
                from None
        if not self.argv:
            raise TargetError("empty command")
        self.executable = resolve_executable(self.argv[0])
        self.returncode: Optional[int] = None
        go_r, self._go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: wait for the go byte, then exec
            try:
                os.close(self._go_w)
                os.close(err_r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                if os.read(go_r, 1) != b"g":
                    os._exit(127)
                os.close(go_r)
                os.execvp(self.argv[0], self.argv)
            except BaseException as e:  # noqa: BLE001 - report any exec failure, never return
                try:
                    os.write(err_w, str(e).encode()[:500])
                finally:
                    os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self.pid = pid
        self._err_r = err_r
        self._released = False

    def release(self) -> None:
        """Let the child exec; raises TargetError if exec failed."""
        if self._released:
            return
        self._released = True
        os.write(self._go_w, b"g")
        os.close(self._go_w)
        # The error pipe closes on a successful exec (CLOEXEC) or carries why it failed.
        msg = os.read(self._err_r, 1000)
        os.close(self._err_r)
        if msg:
            self.wait()
            raise TargetError(f"cannot run {self.argv[0]}: {msg.decode(errors='replace')}")

    @property
    def released(self) -> bool:
        return self._released

    def poll(self) -> Optional[int]:
        """The exit code once the command has exited, else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self) -> None:
        """Stops a child that never ran (an error before release) or must end now."""
        if self.returncode is not None:
            return
        if not self._released:
            self._released = True
            os.close(self._go_w)  # EOF: the child exits without exec
            os.close(self._err_r)
        else:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.wait()
