"""A pre-populated Hugging Face cache for the hub path, built offline: small random weights saved
under the real repository ids and file layout that ``HookedSAETransformer.from_pretrained`` and
``SAE.from_pretrained`` read, so the real loading code runs end to end with the hub switched off.

- ``EleutherAI/pythia-70m-deduped``: a GPT-NeoX of the same architecture, 4 layers of width 64
  (the hook is ``blocks.3.hook_mlp_out``), with the embedded model's BPE tokenizer (its files
  are the only tokenizer available offline; the vocabulary size follows it);
- ``ctigges/pythia-70m-deduped__mlp-sm_processed``: the release ``pythia-70m-deduped-mlp-sm``'s
  folder ``3-mlp-sm`` with a standard (ReLU) SAE of width 128 in sae-lens' format.
"""

from __future__ import annotations

from pathlib import Path

MODEL_REPO = "EleutherAI/pythia-70m-deduped"
SAE_REPO = "ctigges/pythia-70m-deduped__mlp-sm_processed"
SAE_FOLDER = "3-mlp-sm"
COMMIT = "0" * 40
D_MODEL, D_SAE = 64, 128


def _snapshot(hub: Path, repo: str) -> Path:
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def build_hub_cache(hub: Path, tokenizer_dir: Path) -> Path:
    """Write both repositories into ``hub`` (a ``HF_HUB_CACHE`` folder); return it."""
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
    GPTNeoXForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=D_SAE))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
        sae.b_enc.zero_()  # about half the features fire on a token
    sae.cfg.metadata.hook_name = "blocks.3.hook_mlp_out"
    sae.cfg.metadata.model_name = "pythia-70m-deduped"
    sae.save_model(str(_snapshot(hub, SAE_REPO) / SAE_FOLDER))
    return hub
