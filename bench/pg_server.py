"""A throwaway PostgreSQL 15 server for the postgres section (Debian's postgresql-15).

Same approach as tests/pg.py (which needs pytest): a fresh cluster in a
directory under /tmp owned by the `postgres` account, trust authentication,
a unix socket in a private directory only, a free port, fsync off (CPU-bound
throughput is what tracing costs show up in), autovacuum off (nothing runs
behind the benchmark's back).  Stopped with `pg_ctl stop -m immediate` and
removed on exit, whatever happened.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from suite_common import BenchError

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES = PG_BIN / "postgres"
PGBENCH_CANDIDATES = (PG_BIN / "pgbench", Path("/usr/bin/pgbench"))
SETTINGS = {
    "listen_addresses": "''",
    "autovacuum": "off",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def pgbench_path() -> str:
    for p in PGBENCH_CANDIDATES:
        if os.access(p, os.X_OK):
            return str(p)
    raise BenchError("pgbench not found (Debian: postgresql-15 / postgresql-client-15)")


class PgServer:
    def __init__(self, base: Path, account: pwd.struct_passwd, port: int) -> None:
        self.base, self.account, self.port = base, account, port
        self.data = base / "data"
        self.sock = base / "sock"
        self.log = base / "server.log"
        self.postmaster_pid = 0

    def _as_server_user(self, argv: list, timeout: float = 120) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=str(self.base), LANG="C", LC_ALL="C")
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=self.base, env=env,
                           user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[],
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(map(str, argv))} failed ({r.returncode}): {(r.stderr or r.stdout)[-800:]}")

    def conn_args(self) -> list:
        return ["-h", str(self.sock), "-p", str(self.port), "-U", "postgres"]

    def start(self) -> None:
        for d in (self.base, self.sock):
            d.mkdir(mode=0o700, exist_ok=True)
            os.chown(d, self.account.pw_uid, self.account.pw_gid)
        self._as_server_user([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                              "--no-locale", "--no-sync", "--no-instructions"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# pyusdt benchmark\n")
            f.writelines(f"{k} = {v}\n" for k, v in SETTINGS.items())
            f.write(f"port = {self.port}\nunix_socket_directories = '{self.sock}'\n")
        self._as_server_user([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])
        self.postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._as_server_user([PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30",
                                      "stop"], timeout=60)
            except (BenchError, subprocess.TimeoutExpired):
                if self.postmaster_pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.postmaster_pid, 9)

    def pgbench(self, *args: str, timeout: float = 600) -> str:
        """Runs pgbench (as root: it is only a client on the unix socket) and returns its stdout."""
        r = subprocess.run([pgbench_path(), *args, *self.conn_args(), "postgres"], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
        if r.returncode != 0:
            raise BenchError(f"pgbench {' '.join(args)} failed ({r.returncode}): {(r.stderr or r.stdout)[-800:]}")
        return r.stdout + r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    if not os.access(POSTGRES, os.X_OK):
        raise BenchError(f"{POSTGRES} is missing (Debian: apt-get install postgresql-15)")
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise BenchError("no 'postgres' account to run the server as "
                         "(Debian's postgresql package creates it)") from None
    base = Path(tempfile.mkdtemp(prefix="pyusdt-bench-pg-", dir="/tmp"))
    server = PgServer(base, account, _free_port())
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
