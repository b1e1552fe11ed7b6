"""Deterministic prompt sampling: clean, dedupe, seeded choice, cut to a token budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cluster_assets.sources.corpora import is_sae_training_text

PROMPT_SCHEMA = {
    "prompt_id": pl.Int64,
    "text": pl.String,
    "n_tokens": pl.Int32,
    "truncated": pl.Boolean,
    "token_ids": pl.List(pl.Int32),
}


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


def sample_prompts(texts: list[str], n_prompts: int, max_tokens: int, seed: int, tokenizer, dataset: str = "") -> tuple[pl.DataFrame, SamplingReport]:
    """Sample ``n_prompts`` prompts with a seeded generator and cut them to ``max_tokens``.

    ``prompt_id`` is the text's row in the corpus (stable across runs and sweep points).
    ``token_ids`` are the model tokens actually analysed (no special tokens added), and
    ``text`` is their decoding.  Raises if the corpus has fewer usable texts than asked.
    """
    rows, report = usable_texts(texts)
    if report.n_usable == 0:
        raise ValueError(f"dataset {dataset!r} yields no usable text ({report.n_texts} texts, {report.n_empty} empty)")
    if n_prompts > report.n_usable:
        raise ValueError(
            f"dataset {dataset!r} has {report.n_usable} usable texts (after dropping {report.n_empty} empty, "
            f"{report.n_duplicates} duplicate and {report.n_reserved_for_sae} SAE-training texts); n_prompts={n_prompts} is too many"
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(np.asarray(rows)[rng.permutation(len(rows))[:n_prompts]])
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
    frame = frame.filter(pl.col("n_tokens") > 0)
    return frame, report
