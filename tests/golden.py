"""The golden run: every stage of a tiny fixed run, reduced to content digests, against the
digests committed in ``tests/fixtures/golden.json``.

It catches a code change that changes a stage's output while neither the stage's format version
nor its ``code_version`` moved (the old artifacts would stay valid under their old addresses).
The run: the tiny SAE, two datasets x (two replicates of ``base`` + ``alpha_low``), both
comparisons and the report, in a child process with the ``reference`` numerics, a pinned OpenBLAS
kernel and numpy's AVX2 kernels (:data:`ENV`), so the bytes are meant to be the same on any x86-64
CPU with AVX2.  Checked on an AMD EPYC (AVX-512) and on the same machine under ``qemu-x86_64 -cpu
Haswell`` (an Intel CPU without AVX-512, whose approximate instructions QEMU computes differently
from AMD's): that is how torch's CPU-dependent ``sqrt`` was found (``sources/numerics.py``).
The CPU each run saw is recorded and named in a verdict, since a CPU-dependent path is as likely a
cause of changed bytes as a missing bump.

Digests are of decoded content (parquet columns, npz / safetensors arrays, parsed JSON), so a
library that only changes a writer's metadata changes nothing; figures (PNG renderings of data
that is digested anyway) are left out.  Each artifact is recorded with its stage's versions and
its inputs' digests, so a verdict names only the stage whose own output changed.

    python -m tests.golden --record   # after a deliberate bump: write tests/fixtures/golden.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cluster_assets.sources.numerics import REFERENCE_LIBRARIES

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden.json"
SWEEP, DATASETS = FIXTURES / "golden_sweep.yaml", FIXTURES / "golden_datasets.yaml"
PARTITIONS = [("kjv", "base"), ("kjv", "base@2"), ("kjv", "alpha_low"), ("python_stdlib", "base"), ("python_stdlib", "base@2")]
#: The child's environment: the reference numerics (numpy's AVX2 kernels and OpenBLAS' Haswell ones
#: among them, exported here since numpy may be imported first) and one OpenBLAS thread.
ENV = {"CLUSTER_ASSETS_NUMERICS": "reference", "OPENBLAS_NUM_THREADS": "1", **REFERENCE_LIBRARIES}
LIBRARIES = ("torch", "transformer-lens", "sae-lens", "transformers", "tokenizers", "numpy", "scipy", "numba", "polars", "scikit-learn")
RECORD_COMMAND = "python -m tests.golden --record"


def content_digest(path: Path) -> str:
    """A digest of what a file holds, not of how its writer laid it out."""
    h = hashlib.sha256()
    if path.suffix == ".parquet":
        import polars as pl

        frame = pl.read_parquet(path)
        h.update(json.dumps([[name, str(dtype)] for name, dtype in frame.schema.items()]).encode())
        h.update(json.dumps(frame.to_dicts(), default=repr).encode())
    elif path.suffix in (".npz", ".safetensors"):
        import numpy as np

        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        else:
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
    elif path.suffix == ".json":
        h.update(json.dumps(json.loads(path.read_text()), sort_keys=True).encode())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()[:24]


def _hashes(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [h for v in node.values() for h in _hashes(v)]
    if isinstance(node, list):
        return [h for v in node for h in _hashes(v)]
    return []


def describe(root: Path, addresses: dict[str, str]) -> dict[str, Any]:
    """Per artifact label: its stage's versions, its files' content digests, its inputs' labels."""
    from cluster_assets.defs.pipeline import STAGES
    from cluster_assets.storage.formats import FIGURES_DIR

    by_hash: dict[str, str] = {}
    for label, address in addresses.items():  # points that share an artifact: named by the first
        by_hash.setdefault(address.split("/")[1], label)
    out: dict[str, Any] = {}
    for label, address in addresses.items():
        if by_hash[address.split("/")[1]] != label:
            continue  # the same artifact under another label
        folder = root / address
        manifest = json.loads((folder / "manifest.json").read_text())
        files = {name: content_digest(folder / name) for name in sorted(manifest["files"]) if not name.startswith(FIGURES_DIR + "/")}
        inputs = sorted({by_hash[h] for h in _hashes(manifest.get("inputs", {})) if h in by_hash})
        out[label] = {"versions": STAGES[label.split("[")[0]].versions(), "files": files, "inputs": inputs}
    return out


def run(root: Path) -> dict[str, Any]:
    """Materialise the golden run into ``root``; its description (:func:`describe`)."""
    import dagster as dg

    from cluster_assets.sources.numerics import cpu_model, device_class
    from tests.conftest import Graph, fixture_project, tiny_resources

    addresses: dict[str, str] = {}
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(fixture_project(sweep=SWEEP, datasets=DATASETS), tiny_resources(root), instance)

        def materialize(names: list[str], key: Any, label: str) -> None:
            result = graph.materialize(names, key)
            assert result.success, label
            for name in names:
                addresses[f"{name}{label}"] = graph.metadata(result, name)["artifact"].value

        materialize(["sae"], None, "")
        materialize(["sae_evals"], None, "")
        for dataset, point in PARTITIONS:
            materialize(list(Graph.CHAIN), graph.key(dataset, point), f"[{dataset}|{point}]")
        materialize(["dataset_comparison"], "base", "[base]")
        materialize(["sweep_comparison"], "kjv", "[kjv]")
        materialize(["ground_truth"], None, "")
        materialize(["research_report"], None, "")
    return {
        "numerics": device_class("cpu"),
        "cpu": cpu_model(),
        "libraries": {name: version(name) for name in LIBRARIES},
        "artifacts": describe(root, addresses),
    }


def reference_env() -> dict[str, str]:
    """This process's environment with :data:`ENV`, for a child that runs in the reference numerics."""
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    for name in ("MKL_CBWR", "ATEN_CPU_CAPABILITY"):  # chosen afresh by cluster_assets for the reference mode
        env.pop(name, None)
    return env


def run_in_child(timeout: float = 900) -> dict[str, Any]:
    """:func:`run` in a fresh process with :data:`ENV` (read by MKL, ATen and OpenBLAS at start)."""
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        out = Path(tmp) / "golden.json"
        done = subprocess.run(
            [sys.executable, "-m", "tests.golden", "--out", str(out), "--root", str(Path(tmp) / "artifacts")],
            env=reference_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the golden run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def verdicts(golden: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What is wrong with ``now`` against ``golden``, one line per problem (empty: all well)."""
    problems = []
    if golden["numerics"] != now["numerics"]:
        problems.append(f"the golden run was recorded under numerics {golden['numerics']}, this one ran under {now['numerics']}")
    libraries = {k: (v, now["libraries"].get(k)) for k, v in golden["libraries"].items() if now["libraries"].get(k) != v}
    moved = (
        f" (libraries that changed since recording: {', '.join(f'{k} {a} -> {b}' for k, (a, b) in libraries.items())})" if libraries else ""
    )
    if golden.get("cpu") != now.get("cpu"):  # informational: the reference numerics promise the same bytes on both
        moved += (
            f" (recorded on CPU {golden.get('cpu')!r}, this run on {now.get('cpu')!r}: if the code did not change, "
            "a CPU-dependent operation escapes the reference numerics, see sources/numerics.py)"
        )
    old, new = golden["artifacts"], now["artifacts"]
    for label in sorted(set(old) | set(new)):
        if label not in old or label not in new:
            problems.append(f"{label}: {'new in this run' if label not in old else 'no longer produced'}; re-record: {RECORD_COMMAND}")
            continue
        a, b = old[label], new[label]
        stage = label.split("[")[0]
        if a["versions"] != b["versions"]:
            problems.append(f"{label}: {stage} was bumped ({a['versions']} -> {b['versions']}); re-record: {RECORD_COMMAND}")
        elif any(old[i]["files"] != new.get(i, {}).get("files") for i in a["inputs"]) or a["inputs"] != b["inputs"]:
            continue  # an input changed: the verdict is the input's own
        elif a["files"] != b["files"]:
            changed = sorted(f for f in set(a["files"]) | set(b["files"]) if a["files"].get(f) != b["files"].get(f))
            problems.append(
                f"{label}: {stage}'s output changed ({', '.join(changed)}) for the same inputs while its versions "
                f"{b['versions']} did not{moved}. Bump its code_version in cluster_assets/defs/pipeline.py (or its format's "
                f"version in cluster_assets/storage/formats.py), then re-record: {RECORD_COMMAND}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help=f"run in a child process and write {GOLDEN.relative_to(ROOT)}")
    parser.add_argument("--out", help="(child) write the run's description here")
    parser.add_argument("--root", help="(child) the artifact root")
    args = parser.parse_args(argv)
    if args.out:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        Path(args.out).write_text(json.dumps(run(Path(args.root)), indent=1, sort_keys=True))
        return 0
    now = run_in_child()
    if args.record:
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
        return 0
    problems = verdicts(json.loads(GOLDEN.read_text()), now)
    print("\n".join(problems) or "the golden run matches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
