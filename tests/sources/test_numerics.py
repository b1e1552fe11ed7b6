"""The model steps write the same bytes whatever torch's intra-op thread count (the real embedded
model, a real SAE trained in each process, extraction with batches as small as one short prompt:
a 5..11-row matmul is where MKL's default kernels differ between thread counts), and in the
reference numerics on another CPU (an Intel CPU without AVX-512, emulated by QEMU)."""

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import pytest

from cluster_assets.sources.numerics import REFERENCE_LIBRARIES, device_class
from tests.conftest import FIXTURES, ROOT
from tests.golden import reference_env

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


class Runs:
    """The model-step scripts of this module, started at once: most of their time is one core's
    (an emulated CPU, or imports), so together they take about as long as the slowest alone."""

    def __init__(self, jobs: dict[str, tuple[list[str], dict[str, str]]]):
        self.procs = {
            name: subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, (cmd, env) in jobs.items()
        }

    def result(self, name: str) -> dict:
        proc = self.procs[name]
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, (name, err[-3000:])
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def runs(embedded_cache, cache_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    jobs = {
        # one thread against several (MKL's and ATen's splits differ from the first extra thread)
        f"threads_{n}": ([sys.executable, "-c", SCRIPT, str(n), str(cache_dir), str(FIXTURES / "datasets.yaml")], env)
        for n in (1, 3)
    }
    jobs["here"] = ([sys.executable, "-c", CROSS_CPU_SCRIPT, str(embedded_cache)], reference_env())
    qemu = shutil.which("qemu-x86_64")
    if qemu is not None and platform.machine() == "x86_64":
        jobs["haswell"] = ([qemu, "-cpu", "Haswell", sys.executable, "-c", CROSS_CPU_SCRIPT, str(embedded_cache)], reference_env())
    started = Runs(jobs)
    yield started
    started.stop()


def test_model_steps_do_not_depend_on_the_torch_thread_count(runs):
    one, three = runs.result("threads_1"), runs.result("threads_3")
    assert (one["threads"], three["threads"]) == (1, 3)  # torch really ran at that many intra-op threads
    assert one["env"]["class"] == device_class("cpu")
    for key in ("sae", "batch_1", "batch_8", "batch_64", "evals", "synthetic"):
        assert one[key] == three[key], (key, one[key], three[key])


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
    for shown in (
        "'class': 'cpu-x86-reference-2'",
        "'sqrt': 'exact'",
        "'mkl_cbwr': 'COMPATIBLE,STRICT'",
        "'cpu_capability': 'AVX2'",
        "'torch_threads': 1",
    ):
        assert shown in done.stdout, (shown, done.stdout)
    done = run("import torch; torch.ones(3, 3) @ torch.ones(3, 3)\n" + ok)
    assert done.returncode != 0 and "NumericsError" in done.stderr and "MKL_CBWR=AUTO,STRICT" in done.stderr, done.stderr[-2000:]
    # the reference mode pins numpy's and OpenBLAS' kernels for every stage: only if they load after cluster_assets
    libraries = "from cluster_assets.sources.numerics import check_libraries; import numpy, scipy.linalg; check_libraries(); print('ok')"
    done = run("import cluster_assets\n" + libraries, CLUSTER_ASSETS_NUMERICS="reference")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    done = run("import numpy\nimport cluster_assets\n" + libraries, CLUSTER_ASSETS_NUMERICS="reference")
    assert done.returncode != 0 and "NumericsError" in done.stderr and "NPY_DISABLE_CPU_FEATURES" in done.stderr, done.stderr[-2000:]


def test_the_reference_numerics_take_a_correctly_rounded_sqrt():
    """torch's CPU sqrt runs in MKL's vector math, whose last bit follows the CPU's
    reciprocal-square-root estimate (Intel and AMD differ): in the reference mode every form of it
    (function, out, in place, 0-d, integers, narrower floats) is the IEEE result, and autograd
    still differentiates it."""
    code = textwrap.dedent("""
        import cluster_assets, numpy as np, torch
        from cluster_assets.sources.numerics import model_numerics
        x = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 0.01 + 1e-5
        ref = np.sqrt(x.numpy().astype(np.float64)).astype(np.float32)  # double rounding is exact for sqrt
        with model_numerics("cpu") as env:
            out, inplace = torch.empty(0), x.clone()
            torch.sqrt(x, out=out)
            inplace.sqrt_()
            y = x[:50].clone().requires_grad_()
            y.sqrt().sum().backward()
            checks = {
                "function": bool((x.sqrt().numpy() == ref).all()),
                "strided": bool((x[::3].sqrt().numpy() == ref[::3]).all()),
                "out": bool((out.numpy() == ref).all()),
                "in place": bool((inplace.numpy() == ref).all()),
                "0-d": torch.tensor(2.25).sqrt().item() == 1.5,
                "integers": torch.tensor([4, 9]).sqrt().tolist() == [2.0, 3.0],
                "bfloat16": torch.tensor([6.25], dtype=torch.bfloat16).sqrt().dtype == torch.bfloat16,
                "negative": bool(torch.tensor([-1.0]).sqrt().isnan().all()),
                "gradient": bool(torch.allclose(y.grad, 0.5 / torch.from_numpy(ref[:50]))),
            }
        print(env["sqrt"], sorted(k for k, ok in checks.items() if not ok))
    """)
    done = subprocess.run([sys.executable, "-c", code], env=reference_env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["exact", "[]"], done.stdout


CROSS_CPU_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import cluster_assets  # first: the numerics are chosen before torch does any work
    import numpy as np
    import torch
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig
    from cluster_assets.config.models import SAEEvaluation
    from cluster_assets.sources.extraction import collect_hook_activations, extract_activations
    from cluster_assets.sources.model import load_tokenizer
    from cluster_assets.sources.numerics import model_numerics
    from cluster_assets.sources.sae import train_topk_sae
    from cluster_assets.sources.sae_evals import evaluate

    digest = lambda *arrays: hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
    hook = "blocks.1.hook_mlp_out"
    # torch's own sqrt (MKL's vector math, before model_numerics replaces it): the witness that the CPU differs
    out = {"torch_sqrt": digest(torch.linspace(1e-5, 1e-2, 100_000).sqrt().numpy())}
    with model_numerics("cpu") as env:
        tokenizer = load_tokenizer(sys.argv[1])
        # the embedded model's architecture (RMSNorm, rotary, grouped-query attention, gated SiLU MLP), small and seeded
        cfg = HookedTransformerConfig(d_model=64, d_head=16, n_heads=4, n_key_value_heads=2, n_layers=2, n_ctx=64, d_mlp=128,
                                      d_vocab=len(tokenizer), act_fn="silu", normalization_type="RMS",
                                      positional_embedding_type="rotary", gated_mlp=True, seed=0)
        model = HookedSAETransformer(cfg, tokenizer=tokenizer).eval()
        gen = torch.Generator().manual_seed(0)
        lists = [torch.randint(1, 2000, (3 + (i * 5) % 30,), generator=gen).tolist() for i in range(96)]
        acts = collect_hook_activations(model, hook, lists, 8, None)
        out["forward"] = digest(acts.numpy())
        batches = (acts[torch.randperm(acts.shape[0], generator=gen)[:64]] for _ in range(10_000))
        sae = train_topk_sae(batches, 64, d_sae=128, k=8, training_tokens=64 * 30, batch_size=64, lr=2e-3, seed=0, dead_feature_window=4)
        out["sae"] = digest(*(p.detach().numpy() for p in sae.parameters()))
        values, _, _ = extract_activations(model, sae, hook, lists, np.arange(len(lists)), 8, None)
        out["activations"] = digest(values.data, values.indices, values.indptr)
        rows = torch.randint(1, 2000, (8, 16), generator=gen)
        scores, density = evaluate(sae, model, hook, rows, SAEEvaluation(tokens_per_dataset=128, context_size=16, batch_prompts=4))
        out["evals"] = repr(scores) + digest(density)
    print(json.dumps(out))
""")


def test_the_reference_numerics_give_the_same_bytes_on_another_cpu(runs):
    """A forward, streamed-style SAE training, extraction and sae-lens' evals, in the reference
    numerics: here, and under ``qemu-x86_64 -cpu Haswell``, which shows the program an Intel CPU
    with AVX2 and no AVX-512 and computes the approximate instructions (reciprocal square root)
    differently from this CPU, as Intel and AMD do.  Without the exact ``sqrt`` every digest
    differs; this is the check that found it."""
    assert platform.machine() == "x86_64", "the reference numerics are x86-64's"
    assert "haswell" in runs.procs, "qemu-x86_64 is missing (`make test` installs Debian's qemu-user where it can)"
    here, haswell = runs.result("here"), runs.result("haswell")
    assert here.pop("torch_sqrt") != haswell.pop("torch_sqrt"), "the emulated CPU computed torch's own sqrt as this one does"
    assert here == haswell, (here, haswell)
