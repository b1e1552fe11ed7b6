import shutil

import pytest
import torch

from cluster_assets.sources import model as model_mod
from cluster_assets.sources.model import HubUnavailableError, ensure_embedded_cache, load_hub_model
from cluster_assets.sources.sae import load_hub_sae


def test_embedded_hooked_activation_matches_plain_transformers(embedded_cache, embedded_model):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(embedded_cache), dtype=torch.float32).eval()
    tokens = torch.tensor([embedded_model.tokenizer("Paris is the capital of France.", add_special_tokens=False)["input_ids"]])
    captured = {}
    handle = hf.model.layers[3].mlp.register_forward_hook(lambda mod, inp, out: captured.setdefault("mlp", out))
    with torch.no_grad():
        hf(tokens)
        _, cache = embedded_model.run_with_cache(tokens, stop_at_layer=4, names_filter=["blocks.3.hook_mlp_out"])
    handle.remove()
    diff = (cache["blocks.3.hook_mlp_out"] - captured["mlp"]).abs().max().item()
    assert diff < 1e-4
    assert captured["mlp"].abs().max().item() > 1e-2  # a real, non-trivial activation


def test_embedded_model_is_real(embedded_model):
    tokens = torch.tensor([embedded_model.tokenizer("The capital of France is", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = embedded_model(tokens)
    assert embedded_model.tokenizer.decode(logits[0, -1].argmax()).strip() == "Paris"


def test_corrupt_cache_is_rebuilt(embedded_cache, tmp_path):
    broken = tmp_path / "smollm2"
    shutil.copytree(embedded_cache, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert not model_mod._cache_is_valid(broken)
    ensure_embedded_cache(broken)
    assert model_mod._cache_is_valid(broken)
    assert (broken / "model.safetensors").stat().st_size == (embedded_cache / "model.safetensors").stat().st_size


def test_hub_mode_fails_fast_offline_without_a_cache(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 and an empty cache: the real loading code raises at once, naming the way out."""
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(HubUnavailableError, match=r"local Hugging Face cache.*embedded"):
        load_hub_model("EleutherAI/pythia-70m-deduped", "cpu")
    with pytest.raises(HubUnavailableError, match=r"local Hugging Face cache.*embedded"):
        load_hub_sae("pythia-70m-deduped-mlp-sm", "blocks.3.hook_mlp_out", "cpu")
