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
    texts: list[str],
    n_prompts: int | None,
    max_tokens: int,
    seed: int,
    tokenizer,
    dataset: str = "",
    replicate: int = 0,
    replicates: int = 1,
    n_tokens: int | None = None,
) -> tuple[pl.DataFrame, SamplingReport]:
    """Sample ``n_prompts`` prompts (or prompts worth ``n_tokens`` tokens) and cut them to ``max_tokens``.

    One seeded permutation of the usable texts is cut into consecutive blocks: replicate ``r``
    (0-based, of ``replicates``) is the ``r``-th block -- of ``n_prompts`` texts, or of as many
    texts as it takes for their (cut) tokens to reach ``n_tokens`` -- so replicates never share a
    text and replicate 0 is the same sample whatever the number of replicates.  ``prompt_id`` is
    the text's row in the corpus (stable across runs and sweep points).  ``token_ids`` are the
    model tokens analysed (no special tokens added), and ``text`` is their decoding.  Raises
    :class:`ParameterError` (``n_prompts`` / ``n_tokens``) when the corpus is too small.
    """
    order, report = draw_order(texts, seed)
    if report.n_usable == 0:
        raise ParameterError("n_prompts", f"dataset {dataset!r} yields no usable text ({report.n_texts} texts, {report.n_empty} empty)")
    dropped = f"(after dropping {report.n_empty} empty, {report.n_duplicates} duplicate and {report.n_reserved_for_sae} SAE-training texts)"
    if n_tokens is None:
        assert n_prompts is not None
        shortfall = too_few_texts(n_prompts, replicates, report.n_usable, dataset)
        if shortfall:
            raise ParameterError("n_prompts", f"{shortfall} {dropped}")
        chosen = order[replicate * n_prompts : (replicate + 1) * n_prompts]
    else:
        chosen = token_budget_block(texts, order, tokenizer, n_tokens, max_tokens, replicate, replicates, dataset, dropped)
    chosen = np.sort(chosen)
    cut, truncated = draw_token_lists(texts, chosen, tokenizer, max_tokens)
    frame = pl.DataFrame(
        {
            "prompt_id": chosen.astype(np.int64),
            "text": tokenizer.batch_decode(cut),
            "n_tokens": [len(ids) for ids in cut],
            "truncated": truncated,
            "token_ids": cut,
        },
        schema=PROMPT_SCHEMA,
    )
    return frame.filter(pl.col("n_tokens") > 0), report


def draw_order(texts: list[str], seed: int) -> tuple[np.ndarray, SamplingReport]:
    """The dataset's draws: its usable texts' corpus rows in one seeded permutation.  Every sample
    of the dataset with this ``seed`` is a block of consecutive draws (:func:`sample_prompts`)."""
    rows, report = usable_texts(texts)
    return np.asarray(rows, dtype=np.int64)[np.random.default_rng(seed).permutation(len(rows))], report


def draw_token_lists(texts: list[str], rows: np.ndarray, tokenizer, max_tokens: int) -> tuple[list[list[int]], list[bool]]:
    """The model tokens of the texts at corpus ``rows`` (no special tokens), cut to ``max_tokens``
    (a prompt's ``token_ids``), and whether each text was longer."""
    if not len(rows):
        return [], []
    encoded = tokenizer([texts[i] for i in rows], add_special_tokens=False)["input_ids"]
    return [ids[:max_tokens] for ids in encoded], [len(ids) > max_tokens for ids in encoded]


#: Texts tokenised at a time while walking the permutation for a token budget.
TOKENIZE_CHUNK = 512


def token_budget_block(
    texts: list[str],
    order: np.ndarray,
    tokenizer,
    n_tokens: int,
    max_tokens: int,
    replicate: int,
    replicates: int,
    dataset: str,
    dropped: str,
) -> np.ndarray:
    """The corpus rows of replicate ``replicate``: the consecutive texts of ``order`` whose cut
    tokens first reach ``n_tokens`` after the blocks of the replicates before it.  Checks that all
    ``replicates`` blocks fit in the corpus."""
    lengths: list[int] = []
    blocks: list[int] = []  # the block of each text walked so far
    total, block = 0, 0
    for start in range(0, order.size, TOKENIZE_CHUNK):
        chunk = [texts[i] for i in order[start : start + TOKENIZE_CHUNK]]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if block == replicates:
                break
            lengths.append(min(len(ids), max_tokens))
            blocks.append(block)
            total += lengths[-1]
            if total >= n_tokens:  # this block reached the budget: the next text starts the next one
                block, total = block + 1, 0
        if block == replicates:
            break
    if block < replicates:
        have = sum(lengths)
        reps = f" x {replicates} disjoint replicates = {replicates * n_tokens}" if replicates > 1 else ""
        raise ParameterError(
            "n_tokens",
            f"{n_tokens} tokens{reps} is more than the {have} tokens (cut to max_tokens {max_tokens}) "
            f"in the {order.size} usable texts of dataset {dataset!r} {dropped}",
        )
    return order[: len(blocks)][np.asarray(blocks) == replicate]
