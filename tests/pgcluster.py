"""A throw-away PostgreSQL cluster on 127.0.0.1 for the test session.

initdb refuses to run as root, so when the tests run as root the cluster belongs to
the ``postgres`` system user (created by Debian's postgresql package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    env = os.environ.get("DIGESTMAIL_TEST_PG_BINDIR")
    if env:
        return Path(env)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    user: str | None  # system user to run as, or None for the current one

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise PostgresUnavailable(f"PostgreSQL did not start; see {self.root / 'log'}")

    def stop(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-m",
            "immediate",
            "stop",
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("no PostgreSQL server found (install Debian's postgresql)")
    user: str | None = None
    root = Path(tempfile.mkdtemp(prefix="digestmail-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root and there is no 'postgres' user") from exc
        user = "postgres"
        os.chown(root, pw.pw_uid, pw.pw_gid)
    cluster = Cluster(bindir=bindir, root=root, port=free_port(), user=user)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        cluster.stop()
        raise PostgresUnavailable(f"{exc.cmd}: {exc.stderr}\n{log}") from exc
    return cluster
