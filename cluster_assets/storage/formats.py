"""Each stage's files: their names (defined once, here) and a symmetric writer/reader pair.

``FORMAT.save(folder, value)`` writes a stage's value into an artifact folder and
``FORMAT.load(folder)`` gives the same value back, as sae-lens does for SAEs.  ``version``
is part of the stage's content address: changing a format bumps it, so artifacts written
in the old format are never read by the new reader.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import polars as pl
import scipy.sparse as sp

from cluster_assets.core.clustering import Clustering
from cluster_assets.core.coactivation import CoFiring, upper_csr
from cluster_assets.core.features import FeatureStats, quadrants
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.memberships import MembershipResult, Memberships
from cluster_assets.core.tokens import classify

T = TypeVar("T")


class Format(Generic[T]):
    """Files of one stage.  Subclasses name their files as class constants."""

    version: ClassVar[int] = 1
    ENTRY: ClassVar[str | None] = None  # the file a person opens, when there is one

    def save(self, folder: Path, value: T) -> None:
        raise NotImplementedError

    def load(self, folder: Path) -> T:
        raise NotImplementedError


def _save_npz(path: Path, **arrays: Any) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


# --- prompts ------------------------------------------------------------------------------

PROMPT_SCHEMA = {
    "prompt_id": pl.Int64,
    "text": pl.String,
    "n_tokens": pl.Int32,
    "truncated": pl.Boolean,
    "token_ids": pl.List(pl.Int32),
}


class PromptsFormat(Format[pl.DataFrame]):
    """One row per prompt: prompt_id (the text's row in its corpus), text, n_tokens, truncated, token_ids."""

    PROMPTS = "prompts.parquet"

    def save(self, folder: Path, value: pl.DataFrame) -> None:
        value.select(list(PROMPT_SCHEMA)).cast(pl.Schema(PROMPT_SCHEMA)).write_parquet(folder / self.PROMPTS)

    def load(self, folder: Path) -> pl.DataFrame:
        return pl.read_parquet(folder / self.PROMPTS)


# --- sae ------------------------------------------------------------------------------------


class SAEFormat(Format[Any]):
    """The SAE in sae-lens' own format (``cfg.json`` + safetensors) in the folder ``sae/``."""

    SAE_DIR = "sae"

    def save(self, folder: Path, value: Any) -> None:
        value.save_model(str(folder / self.SAE_DIR))

    def load(self, folder: Path, device: str = "cpu") -> Any:
        from sae_lens import SAE

        return SAE.load_from_disk(str(folder / self.SAE_DIR), device=device)


# --- activations ---------------------------------------------------------------------------


class TokenTable:
    """What a token table tells: one row per activation row with prompt_id, position, token_id and token (its text)."""

    tokens: pl.DataFrame

    @property
    def token_prompt(self) -> np.ndarray:
        return self.tokens["prompt_id"].to_numpy()

    @property
    def n_tokens(self) -> int:
        return self.tokens.height

    def vocabulary(self) -> dict[int, str]:
        """token id -> its text, for the ids that occur."""
        distinct = self.tokens.select("token_id", "token").unique("token_id")
        return dict(zip(distinct["token_id"].to_list(), distinct["token"].to_list()))

    def token_classes(self) -> np.ndarray:
        """(tokens,) class index of each token (:data:`cluster_assets.core.tokens.CLASSES`), classifying each id once."""
        vocab = self.vocabulary()
        ids = np.fromiter(vocab, dtype=np.int64, count=len(vocab))
        classes = classify([vocab[int(i)] for i in ids])
        order = np.argsort(ids)
        return classes[order][np.searchsorted(ids[order], self.tokens["token_id"].to_numpy())]


@dataclass(frozen=True)
class Activations(TokenTable):
    """Sparse SAE activations held in memory: one activation shard's (its draws' tokens, in draw
    then position order), or any sample's.

    values: (tokens, d_sae) CSR, zeros dropped; tokens: one row per CSR row.
    """

    values: sp.csr_array
    tokens: pl.DataFrame

    def __post_init__(self) -> None:
        if self.values.shape[0] != self.tokens.height:
            raise ValueError(f"{self.values.shape[0]} activation rows but {self.tokens.height} token rows")

    @property
    def n_features(self) -> int:
        return int(self.values.shape[1])

    def blocks(self) -> list[sp.csr_array]:
        """The rows as blocks (:data:`cluster_assets.core.features.Blocks`): one."""
        return [self.values]

    def rows(self, rows: np.ndarray) -> sp.csr_array:
        """(len(rows), d_sae) CSR of the given rows, in that order."""
        return sp.csr_array(self.values[np.asarray(rows, dtype=np.int64)])


class ActivationShardFormat(Format[Activations]):
    """One activation shard (``activation_shards/<hash>``): its CSR and token table."""

    ACTIVATIONS = "activations.npz"
    TOKENS = "tokens.parquet"

    def save(self, folder: Path, value: Activations) -> None:
        sp.save_npz(folder / self.ACTIVATIONS, sp.csr_array(value.values), compressed=False)
        value.tokens.write_parquet(folder / self.TOKENS)

    def load(self, folder: Path) -> Activations:
        return Activations(self.values(folder), pl.read_parquet(folder / self.TOKENS))

    def values(self, folder: Path) -> sp.csr_array:
        return sp.csr_array(sp.load_npz(folder / self.ACTIVATIONS))


@dataclass(frozen=True)
class ShardRows:
    """Rows ``[start, stop)`` of the activation shard at ``address`` (``<stage>/<hash>`` in the artifact root)."""

    address: str
    start: int
    stop: int


def shard_values(root: Path, shard: ShardRows) -> sp.csr_array:
    """The whole CSR of the shard ``shard`` names, in the artifact root ``root``."""
    try:
        return ActivationShardFormat().values(root / shard.address)
    except (OSError, ValueError) as err:  # verified when the sample was read, gone or rewritten since
        raise RuntimeError(
            f"activation shard {shard.address} could not be read ({err}): another run may have discarded it "
            "since this sample was verified; materialise again"
        ) from err


class ShardBlocks:
    """A sample's activations as row blocks, one shard's rows at a time, each loaded when reached
    (iterable more than once: :data:`cluster_assets.core.features.Blocks`)."""

    def __init__(self, root: Path, shards: tuple[ShardRows, ...]):
        self.root, self.shards = root, shards

    def __iter__(self):
        for shard in self.shards:
            values = shard_values(self.root, shard)
            # a row slice copies every array: a shard used whole is handed over as read
            yield values if (shard.start, shard.stop) == (0, values.shape[0]) else values[shard.start : shard.stop]

    def __len__(self) -> int:
        return len(self.shards)


@dataclass(frozen=True)
class ShardedActivations(TokenTable):
    """A sample's activations as rows of activation shards: the sample's token table (its prompts
    in draw order, each prompt's tokens in position order) and, in the same row order, the rows of
    each shard that hold them.  The CSR is read shard by shard (:meth:`blocks`), never whole.

    ``root`` is the artifact root the shards lie in (set when loaded from the store).
    """

    tokens: pl.DataFrame
    shards: tuple[ShardRows, ...]
    n_features: int
    root: Path | None = None

    def __post_init__(self) -> None:
        rows = sum(s.stop - s.start for s in self.shards)
        if rows != self.tokens.height:
            raise ValueError(f"the shards hold {rows} rows but the token table {self.tokens.height}")

    @property
    def references(self) -> list[str]:
        """The addresses of the shards, which the artifact's verification covers."""
        return [s.address for s in self.shards]

    def blocks(self) -> ShardBlocks:
        return ShardBlocks(self._root(), self.shards)

    def _root(self) -> Path:
        if self.root is None:
            raise ValueError("these activations were not loaded from an artifact store: their shards cannot be read")
        return self.root

    def rows(self, rows: np.ndarray) -> sp.csr_array:
        """(len(rows), d_sae) CSR of the given rows, in that order, reading only the shards that hold them."""
        rows = np.asarray(rows, dtype=np.int64)
        offsets = np.cumsum([0] + [s.stop - s.start for s in self.shards])
        shard_of = np.searchsorted(offsets, rows, side="right") - 1
        parts, where = [], []
        for i in np.unique(shard_of).tolist():
            shard, mine = self.shards[i], np.flatnonzero(shard_of == i)
            values = shard_values(self._root(), shard)
            parts.append(sp.csr_array(values[rows[mine] - offsets[i] + shard.start]))
            where.append(mine)
        if not parts:
            return sp.csr_array((np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int32)), shape=(0, self.n_features))
        stacked = sp.csr_array(sp.vstack(parts, format="csr"))
        return sp.csr_array(stacked[np.argsort(np.concatenate(where))])

    def gather(self) -> Activations:
        """The whole sample in memory (small samples and tests; the stages stream :meth:`blocks`)."""
        return Activations(sp.csr_array(sp.vstack(list(self.blocks()), format="csr")), self.tokens)


#: A sample's activations, stored (rows of shards) or held in memory: both stream as :meth:`blocks`.
SampleActivations = Activations | ShardedActivations


class ActivationsFormat(Format[ShardedActivations]):
    """A sample's activations: its token table and the shard rows that hold its activations
    (``shards.json``); the shards are their own artifacts, which this one's verification covers."""

    version = 2  # v1 held the sample's CSR itself, in prompt id order
    TOKENS = "tokens.parquet"
    SHARDS = "shards.json"

    def save(self, folder: Path, value: ShardedActivations) -> None:
        value.tokens.write_parquet(folder / self.TOKENS)
        shards = [dataclasses.asdict(s) for s in value.shards]
        (folder / self.SHARDS).write_text(json.dumps({"n_features": value.n_features, "shards": shards}, indent=1))

    def load(self, folder: Path) -> ShardedActivations:
        index = json.loads((folder / self.SHARDS).read_text())
        shards = tuple(ShardRows(**s) for s in index["shards"])
        root = folder.parent.parent  # artifacts live at <root>/<stage>/<hash>
        return ShardedActivations(pl.read_parquet(folder / self.TOKENS), shards, int(index["n_features"]), root)


# --- memberships ----------------------------------------------------------------------------


def features_table(result: MembershipResult) -> pl.DataFrame:
    """One row per SAE feature: statistics, kept, the reason it was dropped, its quadrant if kept."""
    stats, kept = result.stats, result.kept
    quadrant = quadrants(np.where(kept, stats.entropy, np.nan), np.where(kept, stats.varentropy, np.nan))
    return pl.DataFrame(stats.columns()).with_columns(
        kept=pl.Series(kept), reason=pl.Series(result.reason), quadrant=pl.Series(np.where(kept, quadrant, ""))
    )


class MembershipsFormat(Format[MembershipResult]):
    """The kept features' memberships as CSC arrays (samples of each feature), the per-feature
    table over all SAE features, and the prompt of each sample."""

    version = 2  # v1 held per-feature index lists and bitsets, compressed
    MEMBERSHIPS = "memberships.npz"
    FEATURES = "features.parquet"
    SAMPLE_PROMPT = "sample_prompt.npy"
    TOTALS = "totals.json"

    def save(self, folder: Path, value: MembershipResult) -> None:
        csc = value.memberships.activity
        _save_npz(
            folder / self.MEMBERSHIPS,
            n_samples=np.int64(csc.shape[0]),
            indptr=csc.indptr,
            indices=csc.indices,
            feature_ids=value.memberships.feature_ids,
        )
        table = features_table(value)
        table.write_parquet(folder / self.FEATURES)
        np.save(folder / self.SAMPLE_PROMPT, value.sample_prompt)
        (folder / self.TOTALS).write_text(json.dumps({"n_tokens": value.stats.n_tokens, "n_prompts": value.stats.n_prompts}))

    def load(self, folder: Path) -> MembershipResult:
        memberships = self.load_memberships(folder)
        table = pl.read_parquet(folder / self.FEATURES)
        totals = json.loads((folder / self.TOTALS).read_text())
        columns = (table[c].to_numpy() for c in ("firing_count", "max", "mean", "entropy", "varentropy"))
        stats = FeatureStats(totals["n_tokens"], totals["n_prompts"], *columns)
        return MembershipResult(
            memberships, stats, table["kept"].to_numpy(), table["reason"].to_numpy(), np.load(folder / self.SAMPLE_PROMPT)
        )

    def load_memberships(self, folder: Path) -> Memberships:
        """Only the memberships (what coactivation and the merge read)."""
        with np.load(folder / self.MEMBERSHIPS) as z:
            n_samples, indptr, indices, ids = int(z["n_samples"]), z["indptr"], z["indices"], z["feature_ids"]
        csc = sp.csc_array((np.ones(indices.size, bool), indices, indptr), shape=(n_samples, ids.size))
        return Memberships(csc, ids)

    def load_features(self, folder: Path) -> pl.DataFrame:
        return pl.read_parquet(folder / self.FEATURES)


# --- coactivation ---------------------------------------------------------------------------


class CoactivationFormat(Format[CoFiring]):
    """Exact co-firing counts between kept features, a :class:`~cluster_assets.core.coactivation.CoFiring`:
    its ``counts`` (F,) as ``.npy`` and its upper-triangular ``pairs`` in scipy's ``.npz``
    (``scipy.sparse.save_npz``, uncompressed)."""

    version = 3  # v2 held the condensed triangle, v1 the square (F, F) array
    COUNTS = "counts.npy"
    PAIRS = "pairs.npz"

    def save(self, folder: Path, value: CoFiring) -> None:
        np.save(folder / self.COUNTS, value.counts)
        sp.save_npz(folder / self.PAIRS, value.pairs, compressed=False)

    def load(self, folder: Path) -> CoFiring:
        pairs = sp.csr_array(sp.load_npz(folder / self.PAIRS))
        return CoFiring(np.load(folder / self.COUNTS), upper_csr(pairs.data, pairs.indices, pairs.indptr, pairs.shape[0]))


# --- merge_history --------------------------------------------------------------------------


class ClusteringFormat(Format[Clustering]):
    """A :class:`~cluster_assets.core.clustering.Clustering` in one ``.npz``: ``method``,
    ``feature_ids``, and either ``labels`` or the merge history's arrays (prefixed ``history.``,
    the scipy linkage matrix among them)."""

    version = 2  # v1 held a merge history or baseline labels, in two file kinds
    CLUSTERING = "clustering.npz"
    HISTORY_PREFIX = "history."

    def save(self, folder: Path, value: Clustering) -> None:
        arrays: dict[str, Any] = {"method": np.array(value.method), "feature_ids": value.feature_ids}
        if value.labels is not None:
            arrays["labels"] = value.labels
        if value.history is not None:
            arrays |= {self.HISTORY_PREFIX + k: v for k, v in value.history.to_arrays().items()}
        _save_npz(folder / self.CLUSTERING, **arrays)

    def load(self, folder: Path) -> Clustering:
        with np.load(folder / self.CLUSTERING) as z:
            history = {k.removeprefix(self.HISTORY_PREFIX): z[k] for k in z.files if k.startswith(self.HISTORY_PREFIX)}
            return Clustering(
                str(z["method"]),
                z["feature_ids"],
                history=MergeHistory.from_arrays(history) if history else None,
                labels=z["labels"] if "labels" in z.files else None,
            )


# --- clusters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutSummary:
    """What a clustering's cut is, as the comparisons read it: the method, ``k`` clusters,
    ``noise`` features labelled -1, the MDL (bits/sample) at the cut of a merge history (None
    for fixed labels), and the ``tokens`` of the sample it was clustered on."""

    method: str
    k: int
    noise: int
    mdl_at_cut: float | None
    tokens: int


@dataclass(frozen=True)
class Clusters:
    """Clusters at the cut (``cut``: what it is), ``labels`` (feature_id, cluster; -1 = baseline noise), one row per
    cluster in ``clusters``, ``top_prompts`` (text and the [start, end) character spans of its active tokens),
    ``correlation`` (k x k, prompt-level), ``heatmap`` (log co-firing of the largest clusters'
    features, in cluster order) with ``heatmap_bounds`` (where each cluster's block ends) and
    ``heatmap_clusters`` (which cluster each block is); ``extra``: further per-cluster tables."""

    labels: pl.DataFrame
    clusters: pl.DataFrame
    top_prompts: pl.DataFrame
    correlation: np.ndarray
    heatmap: np.ndarray
    heatmap_bounds: np.ndarray
    heatmap_clusters: np.ndarray
    cut: CutSummary
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)


class ClustersFormat(Format[Clusters]):
    version = 3  # v2 had no cut.json, v1 held bracket-marked prompt text and no heatmap bounds
    EXTRA = ("descriptions",)  # the per-cluster tables besides the main ones (``<name>.parquet``)
    LABELS = "labels.parquet"
    CLUSTERS = "clusters.parquet"
    TOP_PROMPTS = "top_prompts.parquet"
    CORRELATION = "correlation.npy"
    HEATMAP = "heatmap.npz"
    CUT = "cut.json"

    def save(self, folder: Path, value: Clusters) -> None:
        (folder / self.CUT).write_text(json.dumps(dataclasses.asdict(value.cut), indent=2))
        value.labels.write_parquet(folder / self.LABELS)
        value.clusters.write_parquet(folder / self.CLUSTERS)
        value.top_prompts.write_parquet(folder / self.TOP_PROMPTS)
        np.save(folder / self.CORRELATION, value.correlation)
        _save_npz(folder / self.HEATMAP, values=value.heatmap, bounds=value.heatmap_bounds, clusters=value.heatmap_clusters)
        for name, table in value.extra.items():
            if name not in self.EXTRA:
                raise ValueError(f"unknown per-cluster table {name!r}; known: {', '.join(self.EXTRA)}")
            table.write_parquet(folder / f"{name}.parquet")

    def load(self, folder: Path) -> Clusters:
        with np.load(folder / self.HEATMAP) as z:
            heatmap, bounds, shown = z["values"], z["bounds"], z["clusters"]
        extra = {name: pl.read_parquet(folder / f"{name}.parquet") for name in self.EXTRA if (folder / f"{name}.parquet").exists()}
        return Clusters(
            self.load_labels(folder),
            pl.read_parquet(folder / self.CLUSTERS),
            pl.read_parquet(folder / self.TOP_PROMPTS),
            np.load(folder / self.CORRELATION),
            heatmap,
            bounds,
            shown,
            CutSummary(**json.loads((folder / self.CUT).read_text())),
            extra,
        )

    def load_labels(self, folder: Path) -> pl.DataFrame:
        return pl.read_parquet(folder / self.LABELS)


# --- comparisons and the report ---------------------------------------------------------


@dataclass(frozen=True)
class Tables:
    """Named tables and a JSON summary (what the comparison stages write)."""

    tables: dict[str, pl.DataFrame]
    summary: dict[str, Any]


class TablesFormat(Format[Tables]):
    """``<name>.parquet`` per table, ``tables.json`` naming them, ``summary.json``."""

    version = 2  # v1 had no index of its tables
    SUMMARY = "summary.json"
    INDEX = "tables.json"

    def save(self, folder: Path, value: Tables) -> None:
        for name, table in value.tables.items():
            table.write_parquet(folder / f"{name}.parquet")
        (folder / self.INDEX).write_text(json.dumps(list(value.tables)))
        (folder / self.SUMMARY).write_text(json.dumps(value.summary, indent=2, default=str))

    def load(self, folder: Path) -> Tables:
        names = json.loads((folder / self.INDEX).read_text())
        return Tables(
            {name: pl.read_parquet(folder / f"{name}.parquet") for name in names}, json.loads((folder / self.SUMMARY).read_text())
        )


@dataclass(frozen=True)
class Document:
    """A markdown document and its PNG figures (referenced as ``figures/<name>``)."""

    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict)

    def inline(self) -> str:
        """The markdown with its figures embedded as data URIs (for the UI)."""
        return _inline(self.markdown, self.figures, DocumentFormat.FIGURES)


def _inline(markdown: str, figures: dict[str, bytes], folder: str) -> str:
    import base64

    for name, png in figures.items():
        markdown = markdown.replace(f"({folder}/{name})", f"(data:image/png;base64,{base64.b64encode(png).decode()})")
    return markdown


class DocumentFormat(Format[Document]):
    MARKDOWN = "report.md"
    ENTRY = MARKDOWN
    FIGURES = "figures"

    def save(self, folder: Path, value: Document) -> None:
        (folder / self.FIGURES).mkdir(exist_ok=True)
        for name, png in value.figures.items():
            (folder / self.FIGURES / name).write_bytes(png)
        (folder / self.MARKDOWN).write_text(value.markdown)

    def load(self, folder: Path) -> Document:
        figures = {p.name: p.read_bytes() for p in sorted((folder / self.FIGURES).glob("*.png"))}
        return Document((folder / self.MARKDOWN).read_text(), figures)


# --- cluster_explorer -----------------------------------------------------------------------


@dataclass
class Site:
    """A static site: every file by its path relative to the site's root (bytes), and what it holds."""

    files: dict[str, bytes] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def add_data(self, path: str, value: Any) -> None:
        """``data/<path>``: a script handing ``value`` (plain JSON values, no NaN) to the page's ``EXPLORER.receive``."""
        payload = json.dumps(value, separators=(",", ":"), allow_nan=False)
        self.files[f"data/{path}"] = f"EXPLORER.receive({json.dumps(path)},{payload});\n".encode()

    @staticmethod
    def read_data(folder: Path, path: str) -> Any:
        """The value ``add_data(path, value)`` stored, read back from the site written in ``folder``."""
        text = (folder / "data" / path).read_text()
        prefix = f"EXPLORER.receive({json.dumps(path)},"
        if not text.startswith(prefix) or not text.endswith(");\n"):
            raise ValueError(f"{folder / 'data' / path}: not a data file of the explorer")
        return json.loads(text[len(prefix) : -3])


class SiteFormat(Format[Site]):
    """The site's files under ``site/`` (``site/index.html`` opens it) and its summary."""

    SITE_DIR = "site"
    SUMMARY = "site.json"
    ENTRY = "site/index.html"

    def save(self, folder: Path, value: Site) -> None:
        for name, data in value.files.items():
            path = folder / self.SITE_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (folder / self.SUMMARY).write_text(json.dumps(value.summary, indent=1))

    def load(self, folder: Path) -> Site:
        root = folder / self.SITE_DIR
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return Site(files, json.loads((folder / self.SUMMARY).read_text()))


#: Metadata figures of any stage: PNG files under this folder of the artifact.
FIGURES_DIR = "figures"
