"""The docker run flags of deploy/docker-run-flags (the DaemonSet's pod as a
docker run), as the daemon here can grant them.

`--privileged` asks for every capability the daemon knows, and runc fails
("unable to apply caps: operation not permitted") when the daemon's own
bounding set lacks one: in a sandbox that dropped CAP_SYS_RESOURCE, say, as
this project's test machines do.  There, and only there, `--privileged` is
replaced by its parts less those capabilities (every other capability, no
seccomp or AppArmor profile, /proc unmasked), and a warning names what was
left out, so the test still runs the pod's shape as closely as the machine
allows and says so.
"""
from __future__ import annotations

import functools
import warnings

from containers import REPO, base_image, docker

RUN_FLAGS = REPO / "deploy" / "docker-run-flags"
PRIVILEGED = "--privileged"
DOCKERD_PID_FILE = "/var/run/docker.pid"
# Linux's capability numbers (include/uapi/linux/capability.h), as docker names them.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
# Debian bookworm's docker (20.10) knows the capabilities up to AUDIT_READ:
# its ALL stops there, and it refuses the later names.
DOCKER_KNOWS = CAPABILITIES.index("AUDIT_READ") + 1


def file_flags() -> list[str]:
    """deploy/docker-run-flags: one flag a line, '#' lines are comments."""
    return [line.strip() for line in RUN_FLAGS.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _daemon_lacks() -> list[str]:
    """The capabilities docker knows that the daemon's bounding set lacks:
    the daemon's own (its pid file names it), else this process's, which a
    daemon started from the same session inherited."""
    status = "/proc/self/status"
    try:
        with open(DOCKERD_PID_FILE) as f:
            status = f"/proc/{int(f.read())}/status"
    except (OSError, ValueError):
        pass
    with open(status) as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return [name for bit, name in enumerate(CAPABILITIES[:DOCKER_KNOWS]) if not bounding >> bit & 1]


@functools.lru_cache(maxsize=None)
def run_flags() -> tuple[str, ...]:
    """The flags of deploy/docker-run-flags; --privileged replaced by its
    parts where the daemon cannot grant it (with a warning)."""
    flags = file_flags()
    if PRIVILEGED not in flags or docker("run", "--rm", "--network", "none", PRIVILEGED, base_image(), "true",
                                         check=False).returncode == 0:
        return tuple(flags)
    lacks = _daemon_lacks()
    parts = ["--cap-add=ALL", *(f"--cap-drop={c}" for c in lacks), "--security-opt=seccomp=unconfined",
             "--security-opt=apparmor=unconfined", "--security-opt=systempaths=unconfined"]
    warnings.warn(f"docker cannot run {PRIVILEGED} containers here (its bounding set lacks "
                  f"{', '.join('CAP_' + c for c in lacks) or 'no capability docker knows'}): "
                  f"ran {' '.join(parts)} in its place", stacklevel=2)
    i = flags.index(PRIVILEGED)
    return (*flags[:i], *parts, *flags[i + 1:])
