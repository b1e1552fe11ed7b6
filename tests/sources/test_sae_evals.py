"""The SAE's evals are sae-lens' own, on the real embedded model: an SAE that reconstructs its input
exactly recovers all of the loss, one that reconstructs zero recovers none, and a random SAE fails
the quality check with a message naming the metric, the dataset and the threshold."""

import numpy as np
import pytest
import torch

from cluster_assets.config import load_registry
from cluster_assets.config.models import SAEEvaluation
from cluster_assets.core.sae_quality import SAEEval, SAEEvals, SAEQualityThresholds, quality_problems
from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.sae_evals import TokenRows, eval_rows, evaluate
from tests.conftest import FIXTURES

HOOK = "blocks.3.hook_mlp_out"
SETTINGS = SAEEvaluation(tokens_per_dataset=256, context_size=32, batch_prompts=4)


def _sae(d_in: int, d_sae: int, seed: int = 0):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    return StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))


def _identity_sae(d: int):
    """relu(x) - relu(-x) = x: encode with [I, -I], decode with [I; -I], exactly."""
    sae = _sae(d, 2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def plain_rows(embedded_model):
    """(8, 32) token rows of running text with no special token in them (every position is scored)."""
    texts = load_texts(load_registry(FIXTURES / "datasets.yaml")["kjv"], None)
    ids = embedded_model.tokenizer(" ".join(texts[:60]), add_special_tokens=False)["input_ids"][: 8 * 32]
    return torch.tensor(ids).reshape(8, 32)


def test_an_exact_reconstruction_recovers_all_the_loss_and_a_zero_one_none(embedded_model, plain_rows):
    d = embedded_model.cfg.d_model
    exact, density = evaluate(_identity_sae(d), embedded_model, HOOK, plain_rows, SETTINGS, "kjv")
    assert density.shape == (2 * d,) and exact.dead_fraction == float((density == 0).mean())
    assert exact.loss_recovered == pytest.approx(1.0, abs=1e-6) and exact.ce_loss_with_sae == pytest.approx(exact.ce_loss_clean, abs=1e-6)
    assert exact.explained_variance == pytest.approx(1.0, abs=1e-6) and exact.kl_div_with_sae == pytest.approx(0.0, abs=1e-6)
    assert exact.ce_loss_zero_ablation > exact.ce_loss_clean and exact.tokens == 8 * 32
    zero = _identity_sae(d)
    with torch.no_grad():
        zero.W_dec.zero_()  # the reconstruction is 0: the same as ablating the hook
    ablated, _ = evaluate(zero, embedded_model, HOOK, plain_rows, SETTINGS, "kjv")
    assert ablated.loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert ablated.ce_loss_with_sae == pytest.approx(ablated.ce_loss_zero_ablation, abs=1e-6)
    assert ablated.kl_div_with_sae == pytest.approx(ablated.kl_div_zero_ablation, abs=1e-6)


def test_a_random_sae_fails_the_quality_check_naming_metric_dataset_and_threshold(embedded_model):
    texts = load_texts(load_registry(FIXTURES / "datasets.yaml")["kjv"], None)
    rows = eval_rows(texts, embedded_model.tokenizer, SETTINGS)
    assert rows.shape == (8, 32)
    random, density = evaluate(_sae(embedded_model.cfg.d_model, 256, seed=1), embedded_model, HOOK, rows, SETTINGS, "kjv")
    assert random.ce_loss_zero_ablation - random.ce_loss_clean > 0.1 and random.loss_recovered < 0.85
    problems = quality_problems(SAEEvals([random], density[None]), SAEQualityThresholds())
    assert any(
        p.startswith("kjv: loss_recovered ") and p.endswith("is below the threshold 0.85 (sae_quality.min_loss_recovered)")
        for p in problems
    ), problems


def test_quality_thresholds_apply_to_every_dataset_and_unset_ones_are_skipped():
    def row(dataset, **values):
        base = dict(tokens=1, ce_loss_clean=1, ce_loss_with_sae=1, ce_loss_zero_ablation=2, kl_div_with_sae=0, kl_div_zero_ablation=1)
        base |= dict(loss_recovered=0.9, explained_variance=0.5, l0=8, dead_fraction=0.5, dense_fraction=0.3)
        return SAEEval(dataset=dataset, **(base | values))

    alive = np.array([[0.1, 0.0, 0.2, 0.0], [0.0, 0.3, 0.1, 0.0]])  # feature 3 fires on neither dataset
    good, weak = row("a"), row("b", loss_recovered=0.5)
    assert SAEEvals([good, good], alive).dead_everywhere == 0.25
    assert quality_problems(SAEEvals([good, good], alive), SAEQualityThresholds(max_dead_fraction=0.25)) == []
    # silent on one dataset is not dead: only a feature that fires on no dataset counts
    assert quality_problems(SAEEvals([good, weak], alive), SAEQualityThresholds(max_dead_fraction=0.2)) == [
        "b: loss_recovered 0.5 is below the threshold 0.85 (sae_quality.min_loss_recovered)",
        "every dataset (a, b): dead_fraction 0.25 (features that fire on none) is above the threshold 0.2 (sae_quality.max_dead_fraction)",
    ]
    strict = SAEQualityThresholds(min_explained_variance=0.8, max_dense_fraction=0.1, max_dead_fraction=1.0)
    assert [p.split(" ")[1] for p in quality_problems(SAEEvals([good], alive[:1]), strict)] == ["explained_variance", "dense_fraction"]
    # where ablating the hook barely moves the loss, loss recovered is a ratio of noise: said, not passed
    flat = row("c", ce_loss_zero_ablation=1.001, loss_recovered=18.5)
    assert quality_problems(SAEEvals([flat], alive[:1]), SAEQualityThresholds(max_dead_fraction=1.0)) == [
        "c: loss_recovered is not measurable: zero-ablating the hook changes the loss by only 0.001 nats (under 0.01)"
    ]


def test_token_rows_serve_batches_in_order_and_restart():
    store = TokenRows(torch.arange(12).reshape(6, 2), batch_prompts=4)
    assert store.get_batch_tokens().tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]] and store.get_batch_tokens(2).shape == (2, 2)
    with pytest.raises(IndexError):
        store.get_batch_tokens()
    store.reset_input_dataset()
    assert store.get_batch_tokens(1).tolist() == [[0, 1]] and store.context_size == 2
