"""``python -m cluster_assets.cli.instance``: write ``$DAGSTER_HOME/dagster.yaml``.

The instance always lives under ``$DAGSTER_HOME``, whatever the working directory: run and
event storage are sqlite files in ``$DAGSTER_HOME/storage`` (Dagster's default), or a
PostgreSQL database when ``CLUSTER_ASSETS_POSTGRES_URL`` is set (read by every process that
opens the instance; ``postgresql+psycopg2://user@host:port/db``).  The file also sets:

- the ``model`` pool to one slot: one model-running step at a time;
- run monitoring, and freeing the pool slots of runs that ended (a failed run holds nothing);
- the run queue: at most two runs at once (this is a 2-core default; raise it on bigger machines).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

POSTGRES_ENV = "CLUSTER_ASSETS_POSTGRES_URL"


def instance_config(postgres: bool = False, max_concurrent_runs: int = 2) -> dict[str, Any]:
    config: dict[str, Any] = {
        # offline: no telemetry, and no sign-up dialog (it loads a page from dagster.io)
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        "concurrency": {"pools": {"default_limit": 1}, "runs": {"max_concurrent_runs": max_concurrent_runs}},
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": 300,
            "poll_interval_seconds": 30,
            "free_slots_after_run_end_seconds": 1,
        },
    }
    if postgres:
        config["storage"] = {"postgres": {"postgres_url": {"env": POSTGRES_ENV}}}
    return config


def write_instance_config(home: str | Path, postgres: bool | None = None, **kwargs: Any) -> Path:
    """Write ``<home>/dagster.yaml`` (Postgres when ``postgres`` or, by default, when the URL variable is set)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    postgres = bool(os.environ.get(POSTGRES_ENV)) if postgres is None else postgres
    path = home / "dagster.yaml"
    text = "# Written by `python -m cluster_assets.cli.instance` (make runs it); see that module.\n"
    path.write_text(text + yaml.safe_dump(instance_config(postgres, **kwargs), sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("DAGSTER_HOME"), help="instance folder (default $DAGSTER_HOME)")
    parser.add_argument("--max-concurrent-runs", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.home:
        parser.error("set DAGSTER_HOME or pass --home")
    path = write_instance_config(args.home, max_concurrent_runs=args.max_concurrent_runs)
    storage = f"PostgreSQL (${POSTGRES_ENV})" if os.environ.get(POSTGRES_ENV) else f"sqlite in {Path(args.home) / 'storage'}"
    print(f"wrote {path}: {storage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
