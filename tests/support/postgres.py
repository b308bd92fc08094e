"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, pg_ctl start, drop on exit."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path | None:
    """The PostgreSQL server binaries, from PATH or the Debian layout."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster; ``url`` is a SQLAlchemy psycopg URL for its ``postgres`` database."""

    bindir: Path
    datadir: Path
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    @classmethod
    def start(cls, *, durable: bool = True) -> Cluster:
        """initdb and start a cluster; ``durable=False`` (the test suite's) skips fsync: a test never survives
        a machine crash, and a thousand fresh databases then cost page cache rather than disk flushes."""
        bindir = find_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb) not found")
        user = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            user = "postgres" if _has_user("postgres") else "nobody"
        root = Path(tempfile.mkdtemp(prefix="mlwarden-pg-"))
        datadir = root / "data"
        if user:
            pw = pwd.getpwnam(user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        cluster = cls(bindir, datadir, _free_port(), user)
        cluster._run(
            str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        fsync = "on" if durable else "off"
        opts = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -c unix_socket_directories={root} -c fsync={fsync}"
        cluster._run(
            str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts, "-w", "-t", "60", "-l", str(root / "log"), "start"
        )
        return cluster

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
