"""Real engines for the tests, started in a temporary folder on loopback, bounded in time, stopped after.

Each is a context manager; nothing here mocks the thing under test.  PostgreSQL and Dask come from
``cluster_assets.cli.local_cluster`` (``make cluster-demo`` uses them too).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cluster_assets.cli.local_cluster import DaskCluster, PostgresServer, free_port, wait_until

__all__ = ["DaskCluster", "PostgresServer", "free_port", "wait_for"]


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition()`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    try:
        return wait_until(condition, timeout, what, interval)
    except TimeoutError as err:
        pytest.fail(str(err))


class SlurmCluster:
    """A single-node Slurm cluster (Debian's slurm-wlm and munge): munged, slurmctld and slurmd started
    as root with their own config, key, sockets, state and logs in a temporary folder; clients find it
    through ``SLURM_CONF`` (in :attr:`env`).  Settings that matter without systemd or cgroups:
    ``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``, no accounting."""

    def __init__(self, timeout: float = 120):
        self.timeout = timeout
        self.host = socket.gethostname().split(".")[0]

    @staticmethod
    def available() -> str | None:
        missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(b)]
        if missing:
            return f"Slurm is not installed ({', '.join(missing)} missing): `make test` installs slurm-wlm and munge where it can"
        if os.geteuid() != 0:
            return "starting slurmd needs root"
        return None

    def __enter__(self) -> SlurmCluster:
        problem = self.available()
        if problem:
            pytest.fail(problem)
        self.folder = Path(tempfile.mkdtemp(prefix="cluster-assets-slurm-"))
        for sub in ("state", "spool", "munge"):
            (self.folder / sub).mkdir()
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = self.folder / "munge" / "munge.socket"
        self.procs = []
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={socket_path}",
                f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
                f"--log-file={self.folder / 'munge' / 'munged.log'}",
                f"--seed-file={self.folder / 'munge' / 'munge.seed'}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        conf = self.folder / "slurm.conf"
        cpus = os.cpu_count() or 2
        conf.write_text(
            "\n".join(
                [
                    "ClusterName=cluster-assets-test",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    "SlurmUser=root",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={socket_path}",
                    "CredType=cred/munge",
                    f"StateSaveLocation={self.folder / 'state'}",
                    f"SlurmdSpoolDir={self.folder / 'spool'}",
                    f"SlurmctldPidFile={self.folder / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.folder / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.folder / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.folder / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=30",
                    "InactiveLimit=0",
                    "MinJobAge=30",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN",
                    f"PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
                ]
            )
            + "\n"
        )
        self.env = {**os.environ, "SLURM_CONF": str(conf)}
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(conf)], check=True, env=self.env, capture_output=True, text=True, timeout=30)
        wait_for(self._node_up, self.timeout, "the Slurm node to come up", interval=1)
        return self

    def _node_up(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.folder.glob("*.log")))

    def __exit__(self, *exc) -> None:
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True, timeout=30)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((self.folder / pid_file).read_text().strip()), 15)
        time.sleep(1)
        shutil.rmtree(self.folder, ignore_errors=True)
