"""An SAE measured the way the field measures it: sae-lens' own evals, on held-out text of each dataset.

``run_evals`` (``sae_lens.evals``) splices the SAE's reconstruction into the model and compares
the next-token loss with the clean model's and with the hook zero-ablated (CE loss recovered,
``ce_loss_score``), the KL divergence from the clean logits, the explained variance, L0 and each
feature's firing density (dead: never fires; dense: fires on more than ``dense_above`` of tokens).

The tokens are each dataset's analysis split (texts the SAE was never trained on), joined with the
end-of-text token and cut into rows of ``context_size``; the separators are left out of every
metric (sae-lens' ``exclude_special_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from cluster_assets.config.models import DatasetEntry, SAEEvaluation
from cluster_assets.core.sae_quality import SAEEval, SAEEvals
from cluster_assets.sources.corpora import load_texts, usable_texts
from cluster_assets.sources.numerics import fixed_threads, threads


class TokenRows:
    """The part of sae-lens' ``ActivationsStore`` its evals read: fixed-length token batches,
    served in order and restarted by ``reset_input_dataset``."""

    def __init__(self, rows: torch.Tensor, batch_prompts: int):
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError(f"need a (rows, context) token tensor with at least one row, got shape {tuple(rows.shape)}")
        self.rows, self.store_batch_size_prompts, self.context_size = rows, batch_prompts, int(rows.shape[1])
        self._at = 0

    def get_batch_tokens(self, batch_size: int | None = None) -> torch.Tensor:
        size = batch_size or self.store_batch_size_prompts
        batch = self.rows[self._at : self._at + size]
        self._at += size
        if batch.shape[0] == 0:
            raise IndexError("the evaluation rows are used up")
        return batch

    def reset_input_dataset(self) -> None:
        self._at = 0


def eval_rows(texts: Sequence[str], tokenizer: Any, settings: SAEEvaluation) -> torch.Tensor:
    """(rows, context_size) int64 token rows from the analysis split of ``texts``, in corpus order,
    joined by the end-of-text token; only whole rows, at most ``tokens_per_dataset`` tokens."""
    separator = tokenizer.eos_token_id
    if separator is None:
        raise ValueError("the tokenizer has no end-of-text token to join evaluation texts with")
    rows, _ = usable_texts(list(texts), for_sae=False)
    wanted = settings.tokens_per_dataset // settings.context_size * settings.context_size
    stream: list[int] = []
    for start in range(0, len(rows), 256):
        for ids in tokenizer([texts[i] for i in rows[start : start + 256]], add_special_tokens=False)["input_ids"]:
            stream += [*ids, separator]
        if len(stream) >= wanted:
            break
    n = min(len(stream), wanted) // settings.context_size
    if n == 0:
        raise ValueError(f"the corpus has fewer than {settings.context_size} tokens of analysis text to evaluate on")
    return torch.tensor(stream[: n * settings.context_size], dtype=torch.long).reshape(n, settings.context_size)


def evaluate(
    sae: Any, model: Any, hook_name: str, rows: torch.Tensor, settings: SAEEvaluation, dataset: str = ""
) -> tuple[SAEEval, np.ndarray]:
    """sae-lens' ``run_evals`` of ``sae`` spliced in at ``hook_name``, on every row of ``rows``; and
    the (d_sae,) float64 firing density of each feature on those tokens."""
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.training.activation_scaler import ActivationScaler

    batches = rows.shape[0] // settings.batch_prompts  # whole batches only: every row weighs the same
    if batches < 1:
        raise ValueError(f"{rows.shape[0]} evaluation rows are fewer than one batch of {settings.batch_prompts}")
    store = TokenRows(rows.to(model.cfg.device), settings.batch_prompts)
    sae.cfg.metadata.hook_name = hook_name  # where run_evals splices the reconstruction in
    config = EvalConfig(
        batch_size_prompts=settings.batch_prompts,
        n_eval_reconstruction_batches=batches,
        n_eval_sparsity_variance_batches=batches,
        compute_kl=True,
        compute_ce_loss=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
    )
    # run_evals reads only these rows' batches from its store (get_batch_tokens, reset_input_dataset, two sizes);
    # its sums split by torch's thread count, as training's do, so it runs on training's fixed count
    with torch.no_grad(), fixed_threads(threads(str(model.cfg.device), training=True)):
        metrics, features = run_evals(sae, cast(Any, store), model, ActivationScaler(), config, exclude_special_tokens=True)
    density = np.asarray(features["feature_density"], dtype=np.float64)
    performance, behaviour = metrics["model_performance_preservation"], metrics["model_behavior_preservation"]
    scores = SAEEval(
        dataset=dataset,
        tokens=int(batches * settings.batch_prompts * rows.shape[1]),
        ce_loss_clean=float(performance["ce_loss_without_sae"]),
        ce_loss_with_sae=float(performance["ce_loss_with_sae"]),
        ce_loss_zero_ablation=float(performance["ce_loss_with_ablation"]),
        loss_recovered=float(performance["ce_loss_score"]),
        kl_div_with_sae=float(behaviour["kl_div_with_sae"]),
        kl_div_zero_ablation=float(behaviour["kl_div_with_ablation"]),
        explained_variance=float(metrics["reconstruction_quality"]["explained_variance"]),
        l0=float(metrics["sparsity"]["l0"]),
        dead_fraction=float((density == 0).mean()),
        dense_fraction=float((density > settings.dense_above).mean()),
    )
    return scores, density


def evaluate_datasets(
    sae: Any,
    model: Any,
    hook_name: str,
    datasets: Sequence[DatasetEntry],
    settings: SAEEvaluation,
    corpus_cache: str | Path | None,
    log: Callable[[str], None] = print,
) -> SAEEvals:
    """The evals of every dataset, on its held-out (analysis-split) text."""
    if not datasets:
        raise ValueError("no datasets to evaluate the SAE on (offline, only the registry's offline datasets are in use)")
    evals, densities = [], []
    for entry in datasets:
        rows = eval_rows(load_texts(entry, corpus_cache), model.tokenizer, settings)
        e, density = evaluate(sae, model, hook_name, rows, settings, entry.name)
        evals.append(e)
        densities.append(density)
        log(
            f"SAE on {entry.name}: loss recovered {e.loss_recovered:.3f}, explained variance {e.explained_variance:.3f}, "
            f"silent on this dataset {e.dead_fraction:.1%}"
        )
    return SAEEvals(evals, np.stack(densities) if densities else np.zeros((0, 0)))
