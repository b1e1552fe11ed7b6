"""Deterministic prompt sampling: clean, dedupe, seeded choice, cut to a token budget."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.core.params import ParameterError
from cluster_assets.sources.corpora import SamplingReport, usable_texts
from cluster_assets.storage.formats import PROMPT_SCHEMA


def too_few_texts(n_prompts: int, replicates: int, usable: int, dataset: str) -> str | None:
    """Why ``replicates`` disjoint samples of ``n_prompts`` cannot come from ``usable`` texts (None if they can)."""
    if n_prompts * replicates <= usable:
        return None
    need = f"{n_prompts} prompts" + (f" x {replicates} disjoint replicates = {n_prompts * replicates}" if replicates > 1 else "")
    return f"{need} is more than the {usable} usable texts of dataset {dataset!r}"


def sample_prompts(
    texts: list[str], n_prompts: int, max_tokens: int, seed: int, tokenizer, dataset: str = "", replicate: int = 0, replicates: int = 1
) -> tuple[pl.DataFrame, SamplingReport]:
    """Sample ``n_prompts`` prompts with a seeded generator and cut them to ``max_tokens``.

    Replicate ``r`` (0-based, of ``replicates``) takes the ``r``-th block of ``n_prompts`` in one
    seeded permutation of the usable texts, so replicates never share a text and replicate 0
    is the same sample whatever the number of replicates.  ``prompt_id`` is the text's row in
    the corpus (stable across runs and sweep points).  ``token_ids`` are the model tokens
    analysed (no special tokens added), and ``text`` is their decoding.  Raises
    :class:`ParameterError` (``n_prompts``) when the corpus has too few usable texts.
    """
    rows, report = usable_texts(texts)
    if report.n_usable == 0:
        raise ParameterError("n_prompts", f"dataset {dataset!r} yields no usable text ({report.n_texts} texts, {report.n_empty} empty)")
    shortfall = too_few_texts(n_prompts, replicates, report.n_usable, dataset)
    if shortfall:
        raise ParameterError(
            "n_prompts",
            f"{shortfall} (after dropping {report.n_empty} empty, {report.n_duplicates} duplicate "
            f"and {report.n_reserved_for_sae} SAE-training texts)",
        )
    rng = np.random.default_rng(seed)
    block = rng.permutation(len(rows))[replicate * n_prompts : (replicate + 1) * n_prompts]
    chosen = np.sort(np.asarray(rows)[block])
    chosen_texts = [texts[i] for i in chosen]
    encoded = tokenizer(chosen_texts, add_special_tokens=False)["input_ids"]
    cut = [ids[:max_tokens] for ids in encoded]
    frame = pl.DataFrame(
        {
            "prompt_id": chosen.astype(np.int64),
            "text": tokenizer.batch_decode(cut),
            "n_tokens": [len(ids) for ids in cut],
            "truncated": [len(ids) > max_tokens for ids in encoded],
            "token_ids": cut,
        },
        schema=PROMPT_SCHEMA,
    )
    return frame.filter(pl.col("n_tokens") > 0), report
