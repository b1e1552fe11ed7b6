"""The embedded SAE's quality against training tokens, measured as the pipeline measures it.

Trains the SAE of a resources file (``CLUSTER_ASSETS_RESOURCES``' format; default: the demo's
settings) on the registry's ``sae_training`` datasets, streamed from the model exactly as the
``sae`` asset trains it, and scores ``--checkpoints`` snapshots on the way and the final SAE with
sae-lens' evals on every dataset's held-out text (the ``sae_evals`` asset), with
``--eval-tokens`` tokens per dataset.  A snapshot is the SAE at that point of one run, under that
run's learning-rate schedule: a lower bound on a separate run of that length.

    python benchmarks/sae_quality.py [--resources cluster_assets/config/resources_research.yaml]
        [--checkpoints 3] [--eval-tokens 8192] [--set training_tokens=800000 ...]

Prints one row per snapshot: samples seen, each dataset's loss recovered and explained
variance, the fraction of features that fire on no dataset, and the seconds so far.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

import cluster_assets  # noqa: F401  (the numerics are chosen before torch does any work)
from cluster_assets.config.files import load_registry
from cluster_assets.config.models import SAEEvaluation
from cluster_assets.defs.resources import ActivationSource, SAETraining
from cluster_assets.sources.sae_evals import evaluate_datasets
from cluster_assets.sources.sae_training import train_embedded_sae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=Path, help="a resources YAML file (its source.sae_training section)")
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override SAETraining fields")
    args = parser.parse_args()
    training = (yaml.safe_load(args.resources.read_text())["source"]["sae_training"] if args.resources else {}) | {
        field: yaml.safe_load(value) for field, value in (item.split("=", 1) for item in args.set)
    }
    source = ActivationSource(device="cpu", sae_training=SAETraining(**training))
    registry, model = load_registry(), source.model()
    entries, settings = registry.training_entries(), SAEEvaluation(tokens_per_dataset=args.eval_tokens)
    print(f"SAE training: {source.sae_training.model_dump()}")
    names = [e.name for e in entries]
    print(f"{'samples':>9} " + " ".join(f"{'LR ' + n[:10]:>14} {'EV ' + n[:10]:>14}" for n in names) + f" {'dead':>7} {'seconds':>8}")
    t0 = time.perf_counter()

    def score(samples: int, sae) -> None:
        evals = evaluate_datasets(sae, model, source.hook_name, entries, settings, source.resolved_cache() / "corpora", log=lambda _: None)
        cells = " ".join(f"{e.loss_recovered:>14.3f} {e.explained_variance:>14.3f}" for e in evals.evals)
        print(f"{samples:>9} {cells} {evals.dead_everywhere:>7.2%} {time.perf_counter() - t0:>8.0f}", flush=True)

    trained = train_embedded_sae(model, source.sae_plan(entries), log=lambda _: None, checkpoints=args.checkpoints, on_checkpoint=score)
    score(trained.samples_seen, trained.sae)
    print(f"collect {trained.collect_seconds:.0f} s, stream and train {trained.train_seconds:.0f} s (snapshot scoring included)")


if __name__ == "__main__":
    main()
