"""``python -m cluster_assets.cli.explore``: build the cluster explorer and serve it on 127.0.0.1.

Materialises ``cluster_explorer`` on the ``$DAGSTER_HOME`` instance (reused when nothing it reads
changed; a few seconds per partition otherwise), then serves the site's folder with Python's
``http.server`` on ``--host`` (loopback) and ``--port`` until interrupted.  The same site opens
from ``file://`` with no server: the asset's ``open`` metadata links to its ``index.html``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import sys
from pathlib import Path

import dagster as dg


def build() -> Path:
    """Materialise the explorer and return its site folder."""
    from cluster_assets.defs.definitions import build_definitions
    from cluster_assets.defs.project import Project
    from cluster_assets.storage.formats import SiteFormat

    defs = build_definitions(Project.load())
    result = defs.resolve_job_def("cluster_explorer_job").execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False)
    if not result.success:
        raise SystemExit(f"explore: building the cluster explorer failed (run {result.run_id}); see it in `make ui`")
    [materialization] = result.asset_materializations_for_node("cluster_explorer")
    return Path(str(materialization.metadata["path"].value)) / SiteFormat.SITE_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    site = build()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer((args.host, args.port), handler) as server:
        print(
            f"cluster explorer: http://{args.host}:{server.server_address[1]}/  (or open {site / 'index.html'}); Ctrl-C stops it",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
