"""``python -m cluster_assets.cli.ui_check``: start the UI as ``make ui`` does, screenshot three pages
with headless Chromium, and fail when a page shows an error or misses what it should show.

Pages: the asset lineage, a ``clusters`` partition (its metadata: tables, plots), the
``research_report`` (the report rendered from its metadata), and the cluster explorer's index, a
cluster page and a comparison page (from ``file://``).  Screenshots go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from cluster_assets.cli.local_cluster import free_port, wait_until
from cluster_assets.reporting.explorer import slug
from cluster_assets.storage.formats import Site

#: Text the Dagster UI shows when a page failed (checked in the rendered DOM).
ERROR_MARKERS = ("Something went wrong", "An unexpected error", "PythonError", "Error loading", "Unable to load", "Not found")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1100",
]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _ready(port: int) -> bool:
    try:
        data = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }")
    except OSError:
        return False
    entries = data["workspaceOrError"]["locationEntries"]
    return bool(entries) and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def chromium_binary() -> str:
    """The Chromium on PATH (`make test` and `make ui-check` install Debian's `chromium` where they can)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        raise SystemExit("Chromium is missing (`make test` and `make ui-check` install Debian's `chromium` where they can)")
    return binary


def _chromium(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
    )


def check_page(name: str, url: str, expect: list[str], out: Path) -> list[str]:
    """Screenshot ``url`` to ``out/<name>.png`` and return the problems found in its rendered DOM."""
    with tempfile.TemporaryDirectory() as profile:
        dom = _chromium(["--virtual-time-budget=25000", "--dump-dom", url], Path(profile)).stdout
    with tempfile.TemporaryDirectory() as profile:
        _chromium(["--virtual-time-budget=25000", f"--screenshot={out / (name + '.png')}", url], Path(profile))
    (out / f"{name}.html").write_text(dom)
    problems = [f"{name}: shows {marker!r}" for marker in ERROR_MARKERS if marker in dom]
    problems += [f"{name}: does not show {text!r}" for text in expect if text not in dom]
    if not (out / f"{name}.png").exists():
        problems.append(f"{name}: no screenshot")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=".ui-check", help="folder for the screenshots and rendered pages")
    parser.add_argument("--partition", default=None, help="the clusters partition to show (default: the latest materialised)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(out / "dg-dev.log", "w")
    dev = subprocess.Popen(
        ["dg", "dev", "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:

        def up() -> bool:
            if dev.poll() is not None:
                raise SystemExit(f"ui-check: the UI exited with {dev.returncode}; see {out / 'dg-dev.log'}")
            return _ready(port)

        try:
            wait_until(up, 180, "the UI", interval=1)
        except TimeoutError as err:
            raise SystemExit(f"ui-check: {err}; see {out / 'dg-dev.log'}") from None
        partition = args.partition or _latest_partition(port)
        base = f"http://127.0.0.1:{port}"
        pages = [
            ("lineage", f"{base}/asset-groups?expanded={_all_groups(port)}", ["clusters", "research_report"]),
            (
                "clusters_partition",
                f"{base}/assets/clusters?view=partitions&partition={urllib.parse.quote(partition)}",
                ["clusters", "top_clusters"],
            ),
            ("research_report", f"{base}/assets/research_report", ["research report", "Q5"]),
        ]
        site = _explorer_site(port)
        # the explorer's showcase: the named partition, else the site's first (the first dataset's first sweep point)
        shown = args.partition or Site.read_data(site, "index.js")["partitions"][0]["key"]
        point = shown.split("|", 1)[1].split("@", 1)[0]
        cluster = _showcase_cluster(site, shown)
        pages += [
            ("explorer_index", (site / "index.html").as_uri(), ['data-ready="true"', "Every dataset"]),
            (
                "explorer_cluster",
                (site / "cluster.html").as_uri() + f"?p={urllib.parse.quote(shown)}&c={cluster}",
                ['data-ready="true"', "Top prompts", "Neighbourhood in the merge tree"],
            ),
            ("explorer_comparison", (site / "comparison.html").as_uri() + f"?point={point}", ['data-ready="true"', "Stable clusters"]),
        ]
        problems = [p for name, url, expect in pages for p in check_page(name, url, expect, out)]
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        log.close()
    for name, _, _ in pages:
        print(f"screenshot: {out / (name + '.png')}")
    if problems:
        print("ui-check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("ui-check: every page rendered without an error")
    return 0


def _all_groups(port: int) -> str:
    """The lineage page's ``expanded`` parameter that opens every asset group (the UI collapses
    them on a graph of this size); both group-id forms the UI uses, with and without per-location groups."""
    data = _graphql(port, "{ assetNodes { groupName repository { name location { name } } } }")
    ids = {
        form
        for node in data["assetNodes"]
        for form in (
            f"global@global:{node['groupName']}",
            f"{node['repository']['name']}@{node['repository']['location']['name']}:{node['groupName']}",
        )
    }
    return urllib.parse.quote(",".join(sorted(ids)), safe=",:@")


def _explorer_site(port: int) -> Path:
    """The site folder of the latest ``cluster_explorer`` materialisation."""
    data = _graphql(
        port,
        """{ assetOrError(assetKey: {path: ["cluster_explorer"]}) { ... on Asset { assetMaterializations(limit: 1) {
             metadataEntries { label ... on PathMetadataEntry { path } } } } } }""",
    )
    found = data["assetOrError"].get("assetMaterializations") or []
    paths = [e["path"] for m in found for e in m["metadataEntries"] if e["label"] == "path"]
    if not paths:
        raise SystemExit("ui-check: the cluster explorer is not materialised yet; run `make demo` (or `make explore`) first")
    return Path(paths[0]) / "site"


def _showcase_cluster(site: Path, partition: str) -> int:
    """A cluster worth a screenshot: matched on another dataset, of several features, the most active such."""
    rows = Site.read_data(site, f"p/{slug(partition)}/clusters.js")["rows"]
    if not rows:
        raise SystemExit(f"ui-check: {partition} has no cluster to show in the explorer")
    return max(rows, key=lambda r: (r["matched"] is not None, r["size"] > 1, r["active_tokens"]))["cluster"]


def _latest_partition(port: int) -> str:
    data = _graphql(
        port, """{ assetOrError(assetKey: {path: ["clusters"]}) { ... on Asset { assetMaterializations(limit: 1) { partition } } } }"""
    )
    found = data["assetOrError"].get("assetMaterializations") or []
    if not found:
        raise SystemExit("ui-check: no clusters partition is materialised yet; run `make demo` first")
    return found[0]["partition"]


if __name__ == "__main__":
    sys.exit(main())
