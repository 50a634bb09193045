"""Real servers on loopback for tests, benchmarks and scripts: a ``sleuth serve`` process
(started, awaited on /health, stopped with SIGTERM or killed with SIGKILL) and a throwaway
PostgreSQL server."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m sleuth serve ARGS --port P`` with its stderr kept in ``log``."""

    def __init__(self, args: list[str], log: Path, timeout: float = 60.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.handle = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sleuth", "serve", *args, "--port", str(self.port)],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # uvicorn's workers die with the group
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sleuth serve exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sleuth serve did not come up: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handler runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.handle.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.handle.close()


def _postgres_bin() -> Path | None:
    """The directory of PostgreSQL's server programs (initdb, pg_ctl), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


class Postgres:
    """A throwaway PostgreSQL server on loopback (initdb into a temporary folder, pg_ctl start),
    for tests and benchmarks; as root it runs as the ``postgres`` user, which initdb requires.
    ``Postgres.missing()`` says why one cannot start here, or None."""

    @staticmethod
    def missing() -> str | None:
        if _postgres_bin() is None:
            return "PostgreSQL's server programs are not installed (apt-get install postgresql)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no 'postgres' user to run the server"
        return None

    def __init__(self) -> None:
        why = self.missing()
        if why:
            raise RuntimeError(why)
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="sleuth-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.data.mkdir()
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "sleuth", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        self.databases = 0

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / program), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def database(self) -> str:
        """A new empty database's URL."""
        import psycopg

        self.databases += 1
        name = f"sleuth_{self.databases}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=sleuth dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://sleuth@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
