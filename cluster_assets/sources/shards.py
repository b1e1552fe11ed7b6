"""Activation shards: fixed blocks of a dataset's draws, extracted once; a sample's activations are rows of them.

A dataset's draws are its usable texts in one seeded order (:func:`~cluster_assets.sources.prompts.draw_order`);
every sample of it (any size, any replicate) is a run of consecutive draws.  Shard ``k`` is the
block of draws ``[k * shard_prompts, (k + 1) * shard_prompts)``, extracted once for a model, SAE,
hook and forward batching, and shared by every sample that covers any of it: a larger sample or
another replicate extracts only the shards it lacks.  A sample's activations are rows of its
shards (:class:`~cluster_assets.storage.formats.ShardedActivations`): its prompts in draw order,
each shard's part one run of rows, read one shard at a time by every later stage.

Prompts are batched within windows of ``batch_window`` consecutive draws (``shard_prompts`` is a
multiple of it, so a window never straddles two shards): a prompt's batch, and so the last bits of
its activations, depend on its window alone -- the same bytes whatever the shard size and
whichever sample extracted the shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from cluster_assets.sources.extraction import ExtractionTimings, extract_activations
from cluster_assets.sources.prompts import draw_token_lists


class ShardError(ValueError):
    """Shard settings that cannot work, or shards that do not hold the sample's prompts."""


@dataclass(frozen=True)
class ShardPlan:
    """Which shards a sample's prompts lie in.  order: (usable texts,) corpus row of each draw;
    draws: (prompts,) the draw of each of the sample's prompts."""

    order: np.ndarray
    draws: np.ndarray
    shard_prompts: int

    @property
    def shards(self) -> list[int]:
        return np.unique(self.draws // self.shard_prompts).tolist()

    def rows(self, shard: int) -> np.ndarray:
        """Corpus rows of the shard's draws, in draw order (the last shard may be short)."""
        return self.order[shard * self.shard_prompts : (shard + 1) * self.shard_prompts]


def plan_shards(order: np.ndarray, prompt_ids: np.ndarray, shard_prompts: int, batch_window: int) -> ShardPlan:
    """The shards holding the prompts ``prompt_ids`` (corpus rows) of a sample drawn in ``order``."""
    if shard_prompts < 1 or batch_window < 1 or shard_prompts % batch_window:
        raise ShardError(
            f"source.shard_prompts ({shard_prompts}) must be a positive multiple of source.batch_window ({batch_window}), "
            "so that no batching window straddles two shards"
        )
    position = np.full(int(max(order.max(initial=-1), np.max(prompt_ids, initial=-1))) + 1, -1, dtype=np.int64)
    position[order] = np.arange(order.size)
    draws = position[np.asarray(prompt_ids, dtype=np.int64)]
    if (draws < 0).any():
        missing = np.asarray(prompt_ids)[draws < 0][:5].tolist()
        raise ShardError(f"prompts {missing} are not among the dataset's draws: the prompts and the corpus disagree")
    return ShardPlan(order, draws, shard_prompts)


def extract_shard(
    model,
    sae,
    hook_name: str,
    texts: list[str],
    plan: ShardPlan,
    shard: int,
    tokenizer,
    max_tokens: int,
    batch_size: int,
    batch_tokens: int | None,
    batch_window: int,
    dtype: npt.DTypeLike = np.float32,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[sp.csr_array, pl.DataFrame, ExtractionTimings]:
    """Activations of every prompt of one shard, in draw then position order, and its token table."""
    rows = plan.rows(shard)
    lists, _ = draw_token_lists(texts, rows, tokenizer, max_tokens)
    values, tokens, timing = extract_activations(
        model, sae, hook_name, lists, rows, batch_size, batch_tokens, dtype, progress, window=batch_window
    )
    return values, pl.DataFrame(tokens), timing


def sample_rows(tokens: pl.DataFrame, prompt_ids: np.ndarray) -> tuple[int, int]:
    """The rows ``[start, stop)`` of a shard's token table that belong to the sample's prompts
    ``prompt_ids``: one run, since a sample is a run of consecutive draws."""
    rows = np.flatnonzero(np.isin(tokens["prompt_id"].to_numpy(), np.asarray(prompt_ids)))
    if not rows.size:
        return 0, 0
    start, stop = int(rows[0]), int(rows[-1]) + 1
    if stop - start != rows.size:
        raise ShardError("the sample's prompts are not consecutive draws of the shard: the sample and its shards were cut differently")
    return start, stop


def check_sample_tokens(tokens: pl.DataFrame, prompts: pl.DataFrame, plan: ShardPlan) -> None:
    """Raise :class:`ShardError` unless ``tokens`` (a sample's rows gathered from its shards) are
    every prompt's ``token_ids`` at positions ``0..n_tokens-1``, prompts in draw order."""
    ordered = prompts[np.argsort(plan.draws, kind="stable")]
    lengths = ordered["n_tokens"].to_numpy()
    expected_positions = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    same = (
        np.array_equal(tokens["prompt_id"].to_numpy(), np.repeat(ordered["prompt_id"].to_numpy(), lengths))
        and np.array_equal(tokens["position"].to_numpy(), expected_positions)
        and np.array_equal(tokens["token_id"].to_numpy(), ordered["token_ids"].explode().drop_nulls().to_numpy())
    )
    if not same:
        raise ShardError("the shards' tokens differ from the prompts' token_ids: the sample and its shards were cut differently")
