"""A pre-populated Hugging Face cache for the hub path, built offline: small random weights saved
under the real repository ids and file layout that ``HookedSAETransformer.from_pretrained`` and
``SAE.from_pretrained`` read, so the real loading code runs end to end with the hub switched off.

- ``EleutherAI/pythia-70m-deduped``: a GPT-NeoX of the same architecture, 4 layers of width 64
  (the hook is ``blocks.3.hook_mlp_out``), with the embedded model's BPE tokenizer (its files
  are the only tokenizer available offline; the vocabulary size follows it);
- ``ctigges/pythia-70m-deduped__mlp-sm_processed``: the release ``pythia-70m-deduped-mlp-sm``'s
  folder ``3-mlp-sm`` with a standard (ReLU) SAE in sae-lens' format: of width 128, or of the
  registry's width (``WIDE_D_SAE``, 32,768) with encoder biases set so that the features'
  firing rates spread over two orders of magnitude, as a trained SAE's do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MODEL_REPO = "EleutherAI/pythia-70m-deduped"
SAE_REPO = "ctigges/pythia-70m-deduped__mlp-sm_processed"
SAE_FOLDER = "3-mlp-sm"
COMMIT = "0" * 40
D_MODEL, D_SAE = 64, 128
WIDE_D_SAE = 32_768  # the real release's width
#: The wide SAE's firing rates (on the calibration tokens) are log-uniform in this range.
WIDE_RATES = (1e-4, 2e-2)


def _snapshot(hub: Path, repo: str) -> Path:
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _mlp_out_samples(model, vocab_size: int, generator) -> torch.Tensor:
    """(tokens, d_model) outputs of the hooked layer's MLP on random token sequences, centred
    per token as TransformerLens' weight processing centres what the MLP writes."""
    import torch

    seen = []
    handle = model.gpt_neox.layers[3].mlp.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    with torch.no_grad():
        model(torch.randint(0, vocab_size, (16, 64), generator=generator))
    handle.remove()
    out = seen[0].reshape(-1, D_MODEL)
    return out - out.mean(dim=1, keepdim=True)


def build_hub_cache(hub: Path, tokenizer_dir: Path, d_sae: int = D_SAE) -> Path:
    """Write both repositories into ``hub`` (a ``HF_HUB_CACHE`` folder) with an SAE of width
    ``d_sae``; return it."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model_dir = _snapshot(hub, MODEL_REPO)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=D_MODEL,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=4 * D_MODEL,
        max_position_embeddings=256,
        rotary_pct=0.25,
        use_parallel_residual=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=d_sae))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
        sae.b_enc.zero_()  # about half the features fire on a token
        if d_sae > D_SAE:  # sparse, heavy-tailed firing: each feature's bias puts its rate on WIDE_RATES
            generator = torch.Generator().manual_seed(0)
            pre = _mlp_out_samples(model, len(tokenizer), generator) @ sae.W_enc
            lo, hi = (torch.log(torch.tensor(v)) for v in WIDE_RATES)
            rates = torch.exp(lo + (hi - lo) * torch.rand(d_sae, generator=generator))
            at = ((1 - rates) * (pre.shape[0] - 1)).round().long()  # each feature's quantile of its pre-activations
            sae.b_enc.copy_(-pre.sort(dim=0).values[at, torch.arange(d_sae)])
    sae.cfg.metadata.hook_name = "blocks.3.hook_mlp_out"
    sae.cfg.metadata.model_name = "pythia-70m-deduped"
    sae.save_model(str(_snapshot(hub, SAE_REPO) / SAE_FOLDER))
    return hub
