"""The embedded SAE's training data: the SAE split cut into pieces, and hook activations streamed
from the real model in blocks that are the model's activations of the pieces, pass after pass in
new seeded orders."""

import pytest
import torch

from cluster_assets.config import load_registry
from cluster_assets.sources import sae_training
from cluster_assets.sources.corpora import is_sae_training_text, load_texts
from cluster_assets.sources.extraction import collect_hook_activations
from cluster_assets.sources.sae_training import SAEPlan, activation_stream, train_embedded_sae, training_token_lists
from tests.conftest import FIXTURES

HOOK = "blocks.3.hook_mlp_out"
TRAINING = dict(d_sae=64, k=4, training_tokens=1024, tokens_per_dataset=600, batch_size=128, lr=2e-3, seed=0)


def _plan(cache_dir, batch_size=16, **training):
    entry = load_registry(FIXTURES / "datasets.yaml")["kjv"]
    return SAEPlan(HOOK, [entry], {**TRAINING, **training}, batch_size, 4096, cache_dir / "corpora", "cpu")


def _sae_split_text(stem: str) -> str:
    """``stem`` with a suffix that puts it in the SAE split."""
    return next(t for i in range(1000) if is_sae_training_text(t := f"{stem} {i}"))


def test_long_texts_are_cut_into_consecutive_pieces(embedded_model):
    tokenizer = embedded_model.tokenizer
    texts = [_sae_split_text("word " * 300), _sae_split_text("short text")]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert len(ids[0]) > 200
    pieces = training_token_lists(texts, tokenizer, n_tokens=10_000, max_tokens=50)
    assert all(2 <= len(p) <= 50 for p in pieces) and len(pieces) >= 5
    kept = [row[: len(row) - 1] if len(row) % 50 == 1 else row for row in ids]  # a last 1-token piece is dropped
    assert [t for p in pieces for t in p] == [t for row in kept for t in row]
    capped = training_token_lists(texts, tokenizer, n_tokens=70, max_tokens=50)
    assert [len(p) for p in capped] == [50, 20]
    analysis_text = next(t for i in range(1000) if not is_sae_training_text(t := f"word {i}"))
    assert training_token_lists([analysis_text], tokenizer, 100) == []


def test_the_stream_is_the_models_activations_of_the_pieces_in_seeded_orders(embedded_model, cache_dir, monkeypatch):
    texts = load_texts(load_registry(FIXTURES / "datasets.yaml")["kjv"], cache_dir / "corpora")
    lists = training_token_lists(texts, embedded_model.tokenizer, n_tokens=400, max_tokens=24)
    total = sum(map(len, lists))
    blocks = 3 * total // 100  # into the third pass
    plan = _plan(cache_dir)
    forwarded: list[int] = []  # tokens the model ran on
    collect = sae_training.collect_hook_activations

    def counting(model, hook, token_lists, *args):
        forwarded.append(sum(map(len, token_lists)))
        return collect(model, hook, token_lists, *args)

    monkeypatch.setattr(sae_training, "collect_hook_activations", counting)

    def stream(plan, chunk):
        monkeypatch.setattr(sae_training, "STREAM_CHUNK_PIECES", chunk)
        it = activation_stream(embedded_model, plan, lists, 100, seed=3, log=lambda _: None)
        return torch.cat([next(it) for _ in range(blocks)])

    got = stream(plan, 7)
    assert got.shape == (blocks * 100, embedded_model.cfg.d_model)
    assert sum(forwarded) == total  # the model ran on each piece once: later passes read the first's activations back
    gen = torch.Generator().manual_seed(3)
    orders = [torch.randperm(len(lists), generator=gen).tolist() for _ in range(3)]
    assert orders[0] != orders[1] != orders[2]  # each pass takes the pieces in a new order
    expected = collect_hook_activations(embedded_model, HOOK, [lists[i] for i in orders[0]], 1)
    # the same tokens in the same order; the padded forward batches round differently in the last bits
    torch.testing.assert_close(got[:total], expected, rtol=1e-4, atol=1e-4)
    first = {i: piece for i, piece in zip(orders[0], torch.split(got[:total], [len(lists[i]) for i in orders[0]]), strict=True)}
    for n, order in enumerate(orders[1:], start=1):  # a later pass: each piece's rows of the first pass, bit for bit
        rows = got[n * total : (n + 1) * total]
        assert torch.equal(rows, torch.cat([first[i] for i in order])[: rows.shape[0]])
    assert torch.equal(stream(plan, 7), got)  # and the same bytes every time


def test_streamed_training_needs_a_full_mixing_buffer(embedded_model, cache_dir):
    with pytest.raises(ValueError, match=r"fewer than one mixing buffer \(sae_training.batch_size x sae_training.buffer_batches = 12800\)"):
        train_embedded_sae(embedded_model, _plan(cache_dir, dead_feature_window=2, buffer_batches=100), log=lambda _: None)
    plan = _plan(cache_dir, dead_feature_window=2, buffer_batches=2, training_tokens=1000)
    trained = train_embedded_sae(embedded_model, plan, log=lambda _: None)
    assert trained.sae.cfg.d_sae == 64 and trained.samples_seen == 1024  # sae-lens trains whole batches until it reaches 1000
    assert trained.training_tokens_collected < trained.tokens_per_dataset["kjv"] <= 600


def test_checkpoints_leave_the_training_unchanged(embedded_model, cache_dir):
    """Snapshots for a quality curve are taken beside the training: the SAE trained with them is
    the same bytes as without, and each snapshot is an SAE of the samples seen so far."""
    plan, seen = _plan(cache_dir, dead_feature_window=2, buffer_batches=2), []

    def params(sae) -> list[torch.Tensor]:
        return [p.detach().clone() for p in sae.parameters()]

    plain = params(train_embedded_sae(embedded_model, plan, log=lambda _: None).sae)
    snapped = train_embedded_sae(
        embedded_model, plan, log=lambda _: None, checkpoints=3, on_checkpoint=lambda n, sae: seen.append((n, sae))
    )
    assert all(torch.equal(a, b) for a, b in zip(plain, params(snapped.sae), strict=True))
    assert [n for n, _ in seen] == [256, 512, 768]
    assert not torch.equal(params(seen[0][1])[0], plain[0])  # an earlier SAE, not the final one
