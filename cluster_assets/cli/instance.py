"""``python -m cluster_assets.cli.instance``: install the project's ``dagster.yaml`` as ``$DAGSTER_HOME/dagster.yaml``.

The top-level ``dagster.yaml`` of the checkout is the instance configuration (edit it there);
this copies it into ``$DAGSTER_HOME``, where Dagster reads it, so the instance lives under
``$DAGSTER_HOME`` whatever the working directory: sqlite files in ``$DAGSTER_HOME/storage``
(Dagster's default), or a PostgreSQL database when ``CLUSTER_ASSETS_POSTGRES_URL`` is set (read
by every process that opens the instance; ``postgresql+psycopg2://user@host:port/db``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

POSTGRES_ENV = "CLUSTER_ASSETS_POSTGRES_URL"
#: The instance configuration, at the top of the checkout.
INSTANCE_FILE = Path(__file__).resolve().parents[2] / "dagster.yaml"
#: What the installed copy adds for PostgreSQL.
POSTGRES_STORAGE = {"storage": {"postgres": {"postgres_url": {"env": POSTGRES_ENV}}}}


def instance_text(postgres: bool = False) -> str:
    """The instance configuration as installed: the top-level file, plus PostgreSQL storage when asked."""
    if not INSTANCE_FILE.is_file():
        raise FileNotFoundError(f"the instance configuration {INSTANCE_FILE} is missing (it is part of the checkout)")
    text = f"# Installed from {INSTANCE_FILE} by `python -m cluster_assets.cli.instance` (make runs it): edit that file.\n"
    text += INSTANCE_FILE.read_text()
    if postgres:
        text += f"\n# Added because {POSTGRES_ENV} was set.\n" + yaml.safe_dump(POSTGRES_STORAGE, sort_keys=False)
    return text


def write_instance_config(home: str | Path, postgres: bool | None = None) -> Path:
    """Write ``<home>/dagster.yaml`` (PostgreSQL when ``postgres`` or, by default, when the URL variable is set)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    postgres = bool(os.environ.get(POSTGRES_ENV)) if postgres is None else postgres
    path = home / "dagster.yaml"
    path.write_text(instance_text(postgres))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("DAGSTER_HOME"), help="instance folder (default $DAGSTER_HOME)")
    args = parser.parse_args(argv)
    if not args.home:
        parser.error("set DAGSTER_HOME or pass --home")
    path = write_instance_config(args.home)
    storage = f"PostgreSQL (${POSTGRES_ENV})" if os.environ.get(POSTGRES_ENV) else f"sqlite in {Path(args.home) / 'storage'}"
    print(f"installed {INSTANCE_FILE.name} as {path}: {storage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
