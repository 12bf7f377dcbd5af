"""A private PostgreSQL 15 cluster for a test (Debian's postgresql-15 package).

    with pg_cluster() as pg:
        pg.postmaster_pid, pg.port, pg.socket_dir, pg.postgres   # what to trace
        pg.run_sql(["SELECT 1", "SELECT 2"])   # one psql session, one -c each
        pg.last_backend_pid                    # the backend that served it
        pg.backend_pids()                      # client backends alive now

The cluster lives in a fresh directory under /tmp owned by a non-root user
(PostgreSQL refuses to run as root): the package's `postgres` user when it
exists, else a system user `pyusdt-pg` created with useradd.  When the tests
do not run as root, the cluster runs as the current user.  initdb uses trust
authentication and the C locale; the server listens on a unix socket in a
private directory only (listen_addresses=''), on a port that was free, so it
never meets another cluster.  On exit it is stopped with `pg_ctl stop -m
immediate` (the postmaster is killed if that fails) and the directory is
removed, whatever happened in the test.

What psql sends, exactly (determined by tracing every postgresql:query__*
probe of the server while psql ran; see tests/test_postgres.py):

* psql -X (no psqlrc), non-interactive, issues NO query of its own at
  connection or exit (PSQL_STARTUP_QUERIES is empty), and libpq issues none
  either as long as target_session_attrs is left at "any": run_sql gives psql
  a clean environment with no PG* variables for that reason.
* Each `-c STRING` is sent as one simple-protocol Query message, byte for
  byte: no semicolon added, leading blanks kept, no :variable interpolation.
  The server fires query__start once per message (exec_simple_query), even
  when the string holds several statements ("SELECT 1; SELECT 2" is ONE
  query__start/query__done pair), and query__done only when it succeeds.
  So run_sql(statements) produces exactly len(statements) pairs, the probe's
  string argument being each statement as given, in order.
* (For comparison: statements read from stdin are split by psql's lexer and
  sent one per ';', the ';' kept and leading whitespace dropped: the line
  "  SELECT 1;" arrives as "SELECT 1;".  run_sql does not use stdin.)

The backend serving a run_sql session is found without a query: each run gets
a unique application_name (PGAPPNAME, a startup parameter), and the server
logs "connection authorized: ... application_name=..." under
log_line_prefix '%m [%p] ' (log_connections=on), which gives the pid.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from conftest import missing

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGRES = PG_BIN / "postgres"
DB_SUPERUSER = "postgres"  # the cluster's superuser role (initdb -U), whatever the OS user
DB_NAME = "postgres"
PG_USER_FALLBACK = "pyusdt-pg"

# Queries psql sends on its own for a run_sql session, before the statements:
# none (traced on PostgreSQL 15.18 / psql 15.18, with -X and a clean environment).
PSQL_STARTUP_QUERIES: list[str] = []

# Appended to postgresql.conf: nothing runs queries behind the test's back,
# connections are logged with their pid, and a throwaway cluster skips fsync.
SERVER_SETTINGS = {
    "autovacuum": "off",
    "log_connections": "on",
    "log_line_prefix": "'%m [%p] '",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_ACCEPTED_PIDS = re.compile(r"\[(\d+)\] LOG:  connection authorized: .*application_name=(\S+)")
_CLIENT_TITLE = re.compile(r"^postgres: \S+ \S+ \[local\]")
_run_counter = itertools.count(1)


def postgres_unavailable() -> str:
    """Why a cluster cannot be started here ("" when it can)."""
    for name in ("postgres", "initdb", "pg_ctl", "psql", "pg_isready"):
        if not os.access(PG_BIN / name, os.X_OK):
            return (f"{PG_BIN / name} is missing: the PostgreSQL tests need Debian's "
                    "postgresql-15 package (apt-get install postgresql-15)")
    return ""


def require_postgres() -> None:
    """Skips the test when PostgreSQL 15 is not installed; fails instead under
    PYUSDT_REQUIRE_BPF=1 (CI), so a missing server never passes silently."""
    reason = postgres_unavailable()
    if reason:
        missing(reason)


def _pg_account() -> Optional[pwd.struct_passwd]:
    """The non-root account the cluster runs as (None: the current user, not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", PG_USER_FALLBACK):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    res = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                          "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                          PG_USER_FALLBACK], capture_output=True, text=True)
    if res.returncode != 0 and "already exists" not in res.stderr:
        raise RuntimeError(f"useradd {PG_USER_FALLBACK} failed: {res.stderr.strip()}")
    return pwd.getpwnam(PG_USER_FALLBACK)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A running cluster: what to trace, and how to talk to it."""

    def __init__(self, base: Path, account: Optional[pwd.struct_passwd], port: int):
        self.base = base
        self.data_dir = base / "data"
        self.socket_dir = base / "sock"
        self.log_file = base / "server.log"
        self.port = port
        self.postgres = str(POSTGRES)
        self.account = account
        self.user = account.pw_name if account else pwd.getpwuid(os.geteuid()).pw_name
        self.postmaster_pid = 0
        self.last_backend_pid: Optional[int] = None
        self.last_output = ""

    # -- running PostgreSQL's programs as the cluster's user ----------------

    def _env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(HOME=str(self.base), LANG="C", LC_ALL="C", **extra)
        return env

    def _run(self, argv: Sequence[str], timeout: float = 60, env: Optional[dict] = None,
             check: bool = True) -> subprocess.CompletedProcess:
        kw = {}
        if self.account is not None:
            kw = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        res = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, cwd=self.base, timeout=timeout,
                             env=env or self._env(), **kw)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited with {res.returncode}:\n"
                               f"{res.stdout}{res.stderr}")
        return res

    def _conn_args(self) -> list:
        return ["-h", self.socket_dir, "-p", str(self.port), "-U", DB_SUPERUSER]

    # -- life cycle ---------------------------------------------------------

    def init_and_start(self) -> None:
        for d in (self.base, self.socket_dir):
            d.mkdir(mode=0o700, exist_ok=True)
            if self.account is not None:
                os.chown(d, self.account.pw_uid, self.account.pw_gid)
        self._run([PG_BIN / "initdb", "-D", self.data_dir, "-U", DB_SUPERUSER, "--auth=trust",
                   "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"])
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n# pyusdt tests\n")
            f.writelines(f"{k} = {v}\n" for k, v in SERVER_SETTINGS.items())
        opts = shlex.join(["-p", str(self.port), "-k", str(self.socket_dir),
                           "-c", "listen_addresses="])
        self._run([PG_BIN / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "30",
                   "-o", opts, "start"], timeout=60)
        self.postmaster_pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w already waited; this is belt and braces
            res = self._run([PG_BIN / "pg_isready", "-q", *self._conn_args(), "-d", DB_NAME],
                            check=False)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL not ready after 30 s:\n{self.server_log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Immediate shutdown; kills the postmaster and its children if that fails."""
        if self.data_dir.exists() and (self.data_dir / "postmaster.pid").exists():
            try:
                self._run([PG_BIN / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w",
                           "-t", "20", "stop"], timeout=30, check=False)
            except subprocess.TimeoutExpired:
                pass
        if self.postmaster_pid and _is_postgres(self.postmaster_pid):
            children = _children(self.postmaster_pid)
            for pid in [self.postmaster_pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _is_postgres(self.postmaster_pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def server_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- talking to it --------------------------------------------------------

    def run_sql(self, statements: Sequence[str]) -> None:
        """Runs the statements through ONE psql session, each as its own `-c`.

        The server sees exactly one simple Query message per statement, its
        text byte for byte as given, in order, and nothing else (see the
        module docstring): len(statements) query__start hits, and as many
        query__done hits when they all succeed.  psql stops at the first
        error (ON_ERROR_STOP=1) and this raises RuntimeError; the failing
        statement fires query__start but no query__done.  Sets
        last_backend_pid (the backend that served the session) and
        last_output (psql's stdout)."""
        statements = list(statements)
        for s in statements:
            if not s.strip():
                raise ValueError("empty statement: psql would not send it as a query")
            if s.lstrip().startswith("\\"):
                raise ValueError(f"{s!r} is a psql meta-command, not a statement")
        token = f"pyusdt-{os.getpid()}-{next(_run_counter)}"
        argv = [PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                *self._conn_args(), "-d", DB_NAME]
        for s in statements:
            argv += ["-c", s]
        self.last_backend_pid = None
        res = self._run(argv, env=self._env(PGAPPNAME=token), check=False)
        self.last_output = res.stdout
        self.last_backend_pid = self._backend_of(token)
        if res.returncode != 0:
            raise RuntimeError(f"psql exited with {res.returncode}:\n{res.stdout}{res.stderr}")

    def _backend_of(self, application_name: str) -> Optional[int]:
        for m in _ACCEPTED_PIDS.finditer(self.server_log()):
            if m.group(2) == application_name:
                return int(m.group(1))
        return None

    def backend_pids(self) -> list[int]:
        """Client backends alive now: the postmaster's children whose process
        title is "postgres: USER DB [local] ..." (not the checkpointer, the
        background writer, the walwriter or the launchers).  A run_sql
        backend exits with its psql, so it is gone once run_sql returns."""
        out = []
        for pid in _children(self.postmaster_pid):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if _CLIENT_TITLE.match(title):
                out.append(pid)
        return sorted(out)

    def auxiliary_pids(self) -> list[int]:
        """Every other child of the postmaster (checkpointer, walwriter, ...)."""
        clients = set(self.backend_pids())
        return sorted(p for p in _children(self.postmaster_pid) if p not in clients)


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _is_postgres(pid: int) -> bool:
    """`pid` is alive and runs the postgres binary (not a recycled pid)."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(POSTGRES)
    except OSError:
        return False


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A fresh cluster, started and ready; stopped and deleted on exit, even on failure.
    Skips (or fails under PYUSDT_REQUIRE_BPF=1) when PostgreSQL 15 is missing."""
    require_postgres()
    account = _pg_account()
    # /tmp, not TMPDIR or pytest's tmp_path: the cluster's user must reach it.
    base = Path(tempfile.mkdtemp(prefix="pyusdt-pg-", dir="/tmp" if account else None))
    cluster = PgCluster(base, account, _free_port())
    try:
        try:
            cluster.init_and_start()
        except Exception as e:
            raise RuntimeError(f"starting PostgreSQL failed: {e}\n--- server log:\n"
                               f"{cluster.server_log()}") from e
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
