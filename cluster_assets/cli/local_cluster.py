"""Real services on this machine, on loopback, in temporary folders: a throwaway PostgreSQL server and
a local Dask scheduler with worker processes.  Used by ``make cluster-demo`` and by the tests; each is a
context manager that stops what it started and removes its folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition()`` until it is truthy (and return it); TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server binaries (initdb, pg_ctl)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not candidates:
        raise FileNotFoundError(
            "PostgreSQL's server binaries (initdb, pg_ctl) are missing: install the `postgresql` package "
            "(`make test` and `make cluster-demo` do where they can)"
        )
    return candidates[-1]


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1 in its own temporary folder (as user ``postgres``
    when run as root: the server refuses root, and private temporary folders would hide its files)."""

    def __init__(self, timeout: float = 60):
        self.timeout = timeout
        self.port = free_port()
        self.bin = postgres_bin()

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=self.timeout)

    @property
    def url(self) -> str:
        """SQLAlchemy URL (the ``+psycopg2`` driver: a bare ``postgresql://`` picks psycopg 3 under SQLAlchemy 2)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="cluster-assets-pg-"))
        self.data = self.folder / "pgdata"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            str(int(self.timeout)),
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.SubprocessError:
            pass
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class DaskCluster:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1 (no dashboards), started
    with ``env`` -- the environment every worker needs to build the same code location and instance."""

    def __init__(
        self,
        workers: int = 2,
        env: dict | None = None,
        timeout: float = 120,
        log_dir: Path | None = None,
        worker_args: tuple[str, ...] = (),
    ):
        self.n_workers, self.timeout, self.worker_args = workers, timeout, worker_args
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "w")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli." + args[0], *args[1:]],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def workers(self) -> dict:
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            return client.scheduler_info(n_workers=-1)["workers"]

    def __enter__(self) -> DaskCluster:
        self.folder = Path(self.log_dir or tempfile.mkdtemp(prefix="cluster-assets-dask-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start("scheduler", "dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")
        for i in range(self.n_workers):
            self._start(
                f"worker-{i + 1}",
                "dask_worker",
                self.address,
                "--name",
                f"worker-{i + 1}",
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                *self.worker_args,
            )
        wait_until(
            lambda: self._alive() and len(self.workers()) == self.n_workers, self.timeout, f"{self.n_workers} Dask workers", interval=1
        )
        return self

    def _alive(self) -> bool:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Dask process exited with {dead[0].returncode}; see the logs in {self.folder}")
        try:
            self.workers()
        except OSError:
            return False
        return True

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=30)
        if self.log_dir is None:
            shutil.rmtree(self.folder, ignore_errors=True)
