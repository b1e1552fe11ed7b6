"""The model steps write the same bytes whatever torch's intra-op thread count: the real embedded
model, a real SAE trained in each process, extraction with batches as small as one short prompt
(a 5..11-row matmul is where MKL's default kernels differ between thread counts)."""

import json
import os
import subprocess
import sys
import textwrap

from cluster_assets.sources.numerics import REFERENCE_LIBRARIES, device_class
from tests.conftest import FIXTURES, ROOT

SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    import cluster_assets  # first: the numerics are chosen before torch does any work
    import torch
    torch.set_num_threads(int(sys.argv[1]))
    from cluster_assets.config.files import load_registry
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.extraction import extract_activations
    from cluster_assets.sources.model import load_embedded_model
    from cluster_assets.sources.numerics import model_numerics
    from cluster_assets.sources.sae_training import SAEPlan, train_embedded_sae
    from cluster_assets.sources.sae_evals import eval_rows, evaluate
    from cluster_assets.sources.synthetic import sample
    from cluster_assets.config.models import GroundTruth, SAEEvaluation

    cache, datasets = sys.argv[2], sys.argv[3]
    hook = "blocks.3.hook_mlp_out"
    with model_numerics("cpu") as env:
        model = load_embedded_model(f"{cache}/models/smollm2", "cpu")
        texts = load_texts(load_registry(datasets)["kjv"], f"{cache}/corpora")[:400]
        ids = [t for t in model.tokenizer(texts, add_special_tokens=False)["input_ids"] if len(t) > 12]
        lists = [t[: 3 + (i * 5) % 30] for i, t in enumerate(ids[:160])]  # 3..32 tokens
        # streamed training with the AuxK loss on (dead_feature_window < steps), pieces of 3..32 tokens
        training = dict(d_sae=256, k=8, training_tokens=4096, tokens_per_dataset=3000, batch_size=256, lr=2e-3, seed=0,
                        dead_feature_window=4, buffer_batches=4)
        plan = SAEPlan(hook, [load_registry(datasets)["kjv"]], training, 16, 4096, f"{cache}/corpora", "cpu")
        sae = train_embedded_sae(model, plan, log=lambda _: None).sae
        digest = lambda *arrays: hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
        out = {"threads": torch.get_num_threads(), "env": env, "sae": digest(*(p.detach().numpy() for p in sae.parameters()))}
        for batch_size in (1, 8, 64):  # 1: every short prompt alone, the smallest matmuls
            values, tokens, _ = extract_activations(model, sae, hook, lists, np.arange(len(lists)), batch_size, 4096)
            out[f"batch_{batch_size}"] = digest(values.data, values.indices, values.indptr, tokens["token_id"])
        settings = SAEEvaluation(tokens_per_dataset=256, context_size=32, batch_prompts=4)
        scores, density = evaluate(sae, model, hook, eval_rows(texts, model.tokenizer, settings), settings)
        out["evals"] = repr(scores) + digest(density)
        synthetic, _ = sample(GroundTruth(groups=6, noise_features=4), 3000)
        out["synthetic"] = digest(synthetic.data, synthetic.indices, synthetic.indptr)
    print(json.dumps(out))
""")


def test_model_steps_do_not_depend_on_the_torch_thread_count(embedded_cache, cache_dir):
    runs = {}
    for threads in (1, 2, 3):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-c", SCRIPT, str(threads), str(cache_dir), str(FIXTURES / "datasets.yaml")]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[threads] = json.loads(done.stdout.strip().splitlines()[-1])
        assert runs[threads]["threads"] == threads  # torch really ran at that many intra-op threads
    assert runs[1]["env"]["class"] == device_class("cpu")
    for key in ("sae", "batch_1", "batch_8", "batch_64", "evals", "synthetic"):
        assert runs[1][key] == runs[2][key] == runs[3][key], (key, {t: r[key] for t, r in runs.items()})


def test_the_promised_numerics_are_what_torch_runs():
    """x86-64: MKL's strict reproducible mode is active in a fresh process (and, in the reference
    mode, ATen's AVX2 kernels on one thread); a process where torch worked before cluster_assets
    was imported is refused with a clear error.  Elsewhere the model steps run on one torch thread."""
    ok = "import cluster_assets, torch; from cluster_assets.sources.numerics import model_numerics\nwith model_numerics('cpu') as e: print(e)"
    chosen = {"MKL_CBWR", "ATEN_CPU_CAPABILITY", "CLUSTER_ASSETS_NUMERICS", *REFERENCE_LIBRARIES}
    base = {k: v for k, v in os.environ.items() if k not in chosen}

    def run(code: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=120, cwd=ROOT)

    done = run(ok)
    assert done.returncode == 0, done.stderr[-2000:]
    if device_class("cpu").endswith("-1thread"):
        assert "'torch_threads': 1" in done.stdout
        return
    assert "'mkl_cbwr': 'AUTO,STRICT'" in done.stdout and "'training_threads': 2" in done.stdout
    done = run(ok, CLUSTER_ASSETS_NUMERICS="reference")
    assert done.returncode == 0, done.stderr[-2000:]
    for shown in ("'class': 'cpu-x86-reference'", "'mkl_cbwr': 'COMPATIBLE,STRICT'", "'cpu_capability': 'AVX2'", "'torch_threads': 1"):
        assert shown in done.stdout, (shown, done.stdout)
    done = run("import torch; torch.ones(3, 3) @ torch.ones(3, 3)\n" + ok)
    assert done.returncode != 0 and "NumericsError" in done.stderr and "MKL_CBWR=AUTO,STRICT" in done.stderr, done.stderr[-2000:]
    # the reference mode pins numpy's and OpenBLAS' kernels for every stage: only if they load after cluster_assets
    libraries = "from cluster_assets.sources.numerics import check_libraries; import numpy, scipy.linalg; check_libraries(); print('ok')"
    done = run("import cluster_assets\n" + libraries, CLUSTER_ASSETS_NUMERICS="reference")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    done = run("import numpy\nimport cluster_assets\n" + libraries, CLUSTER_ASSETS_NUMERICS="reference")
    assert done.returncode != 0 and "NumericsError" in done.stderr and "NPY_DISABLE_CPU_FEATURES" in done.stderr, done.stderr[-2000:]
