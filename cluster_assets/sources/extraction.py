"""Batched forward + SAE encode into sparse activations, never a dense all-tokens array.

Per batch of prompts: right-pad, run the model up to the hooked layer
(``stop_at_layer``), encode with the SAE, drop pad positions, and keep only the
non-zero activations as CSR rows (one row per real token, prompt order, position
order).  Only one batch of dense ``tokens x d_sae`` values exists at a time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

from cluster_assets.core.topk import rows_to_csr, topk_relu_rows


def hook_layer(hook_name: str) -> int:
    """``blocks.3.hook_mlp_out`` -> 3."""
    parts = hook_name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"expected a hook name like 'blocks.<layer>.hook_...', got {hook_name!r}")
    return int(parts[1])


def pad_batch(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (batch, max_len) token ids and the boolean mask of real tokens."""
    width = max(len(t) for t in token_lists)
    tokens = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.bool)
    for row, ids in enumerate(token_lists):
        tokens[row, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
        mask[row, : len(ids)] = True
    return tokens, mask


@torch.no_grad()
def hook_activations(model, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
    """(batch, seq, d_model) activations at ``hook_name``; the forward stops right after it."""
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), stop_at_layer=hook_layer(hook_name) + 1, names_filter=[hook_name])
    return cache[hook_name]


@torch.no_grad()
def encode_sparse(sae, x: torch.Tensor) -> sp.csr_array:
    """SAE feature activations of ``x`` (tokens, d_in) as CSR (tokens, d_sae), zeros dropped.

    TopK SAEs take a shortcut that never builds the dense (tokens, d_sae) output: the
    non-zeros are the positive values among the top-k of the pre-activations.  On the CPU
    (float32) the matmul runs in row blocks, each followed by one pass per row
    (:func:`cluster_assets.core.topk.topk_relu_rows`) that adds the bias, selects and
    orders; elsewhere torch's topk does.  The values are the same numbers ``sae.encode``
    produces on the same rows.
    """
    from sae_lens import TopKSAE

    n_tokens = x.shape[0]
    d_sae = sae.cfg.d_sae
    if isinstance(sae, TopKSAE):
        sae_in = sae.process_sae_in(x)
        if sae_in.device.type == "cpu" and sae_in.dtype == torch.float32:
            return _encode_topk_cpu(sae, sae_in)
        hidden_pre = sae.hook_sae_acts_pre(sae_in @ sae.W_enc + sae.b_enc)
        if sae.cfg.rescale_acts_by_decoder_norm:
            hidden_pre = hidden_pre * sae.W_dec.norm(dim=-1)
        values, indices = torch.topk(hidden_pre, k=min(sae.cfg.k, d_sae), dim=-1, sorted=False)
        values = torch.relu(values)
        order = torch.argsort(indices, dim=-1)
        indices = torch.gather(indices, -1, order)
        values = torch.gather(values, -1, order)
        keep = values > 0
        counts = keep.sum(dim=1)
        indptr = np.concatenate([[0], torch.cumsum(counts, 0).cpu().numpy()])
        return sp.csr_array((values[keep].cpu().numpy(), indices[keep].cpu().numpy().astype(np.int32), indptr), shape=(n_tokens, d_sae))
    dense = sae.encode(x)
    csr = dense.to_sparse_csr()
    return sp.csr_array(
        (csr.values().cpu().numpy(), csr.col_indices().cpu().numpy().astype(np.int32), csr.crow_indices().cpu().numpy()),
        shape=(n_tokens, d_sae),
    )


#: Rows per encoder matmul on the CPU: a block's pre-activations (~8 MB at d_sae 4096) stay
#: in cache for the top-k pass, and one buffer serves every block (no fresh pages per batch).
ENCODE_ROWS = 512


def _encode_topk_cpu(sae, sae_in: torch.Tensor) -> sp.csr_array:
    """TopK encode in row blocks of ENCODE_ROWS..2*ENCODE_ROWS - 1 (never a tiny remainder, which
    BLAS would compute by another kernel and so round differently from one matmul over all rows)."""
    n, d_sae = sae_in.shape[0], sae.cfg.d_sae
    k = min(sae.cfg.k, d_sae)
    bounds = np.linspace(0, n, max(1, n // ENCODE_ROWS) + 1).round().astype(np.int64)
    pre = torch.empty((int(np.diff(bounds).max(initial=0)), d_sae), dtype=sae_in.dtype)
    bias = sae.b_enc.detach().numpy()
    # TopK SAEs trained with decoder-norm folding rank (pre-activation x decoder row norm), as sae.encode does
    scale = sae.W_dec.norm(dim=-1).detach().numpy() if sae.cfg.rescale_acts_by_decoder_norm else None
    out_idx = np.empty((n, k), dtype=np.int32)
    out_val = np.empty((n, k), dtype=np.float32)
    out_count = np.zeros(n, dtype=np.int64)
    for start, stop in itertools.pairwise(bounds):
        block = pre[: stop - start]
        torch.matmul(sae_in[start:stop], sae.W_enc, out=block)
        topk_relu_rows(block.numpy(), bias, k, out_idx[start:stop], out_val[start:stop], out_count[start:stop], scale)
    return rows_to_csr(out_idx, out_val, out_count, d_sae)


def _pad_id(model) -> int:
    # any id works (pad positions are causal-masked from real tokens and dropped); prefer the tokenizer's
    tok = getattr(model, "tokenizer", None)
    return int(tok.pad_token_id) if tok is not None and tok.pad_token_id is not None else 0


@dataclass
class ExtractionBatch:
    activations: sp.csr_array  # (real tokens in this batch, d_sae)
    prompt_index: np.ndarray  # (real tokens,) row of the prompt in the input list
    position: np.ndarray  # (real tokens,) token position inside its prompt
    token_ids: np.ndarray  # (real tokens,)
    forward_seconds: float
    encode_seconds: float


def iter_extraction(
    model,
    sae,
    hook_name: str,
    token_lists: Sequence[Sequence[int]],
    batches: Sequence[np.ndarray],
    dtype: npt.DTypeLike = np.float32,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ExtractionBatch]:
    """Yield sparse SAE activations batch by batch; ``batches`` holds indices into ``token_lists``
    (e.g. :func:`length_batches`) and ``prompt_index`` refers back to ``token_lists``."""
    if not token_lists:
        raise ValueError("no prompts to extract")
    pad_id = _pad_id(model)
    done, n = 0, sum(len(b) for b in batches)  # empty prompts are in no batch
    for batch in batches:
        batch = np.asarray(batch, dtype=np.int64)
        tokens, mask = pad_batch([token_lists[i] for i in batch], pad_id)
        t0 = time.perf_counter()
        acts = hook_activations(model, tokens, hook_name)
        t1 = time.perf_counter()
        flat_mask = mask.reshape(-1).to(acts.device)
        real = acts.reshape(-1, acts.shape[-1])[flat_mask]
        csr = encode_sparse(sae, real.to(sae.W_enc.dtype))
        csr.data = csr.data.astype(dtype)
        t2 = time.perf_counter()
        rows, cols = torch.nonzero(mask, as_tuple=True)
        yield ExtractionBatch(
            activations=csr,
            prompt_index=batch[rows.numpy()],
            position=cols.numpy().astype(np.int32),
            token_ids=tokens[mask].numpy().astype(np.int64),
            forward_seconds=t1 - t0,
            encode_seconds=t2 - t1,
        )
        done += batch.size
        if progress is not None:
            progress(done, n)


@dataclass(frozen=True)
class ExtractionTimings:
    forward_seconds: float  # the model forward to the hooked layer
    encode_seconds: float  # SAE encode + sparsification
    assemble_seconds: float  # ordering rows, the token table
    extracted_tokens: int = 0


def stack_rows(parts: Sequence[sp.csr_array], rows: np.ndarray) -> sp.csr_array:
    """The CSRs stacked, then rows taken in the order ``rows`` -- in one pass that copies each row once."""
    indptr = np.concatenate([[0], *(p.indptr[1:] + offset for p, offset in zip(parts, np.cumsum([0, *(p.nnz for p in parts)])))])
    indices = np.concatenate([p.indices for p in parts])
    data = np.concatenate([p.data for p in parts])
    lengths = np.diff(indptr)[rows]
    out_indptr = np.concatenate([[0], np.cumsum(lengths)])
    # the source position of every output entry: its row's start, plus its offset within the row
    source = np.repeat(indptr[rows] - out_indptr[:-1], lengths) + np.arange(out_indptr[-1])
    return sp.csr_array((data[source], indices[source], out_indptr), shape=(rows.size, parts[0].shape[1]))


def length_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, batch_tokens: int | None = None, window: int | None = None
) -> list[np.ndarray]:
    """Batches of prompt indices, longest prompts first, so each batch pads to similar lengths.

    A batch holds at most ``batch_size`` prompts and, with ``batch_tokens``, at most that many
    padded tokens (prompts x its longest prompt; a longer prompt runs alone): on a CPU the
    forward of 16 prompts of 256 tokens runs ~2.5x faster per token than one batch of 64.
    With ``window``, prompts are sorted and batched within each block of ``window`` consecutive
    indices only, so a prompt's batch (and so its activations' last bits) depends on its block alone.
    Empty prompts (no tokens, no activations) are in no batch.
    """
    lengths = np.asarray(lengths)
    if window is not None:
        blocks = range(0, lengths.size, window)
        return [b + start for start in blocks for b in length_batches(lengths[start : start + window], batch_size, batch_tokens)]
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    out, start = [], 0
    while start < order.size:
        size = batch_size if batch_tokens is None else min(batch_size, max(1, batch_tokens // max(int(lengths[order[start]]), 1)))
        out.append(order[start : start + size])
        start += size
    return out


def token_texts(tokenizer, token_ids: np.ndarray) -> list[str]:
    """The text of each token, decoding each distinct id once."""
    unique, inverse = np.unique(token_ids, return_inverse=True)
    vocab = np.array([tokenizer.decode([int(t)]) for t in unique], dtype=object)
    return vocab[inverse.ravel()].tolist()


def extract_activations(
    model,
    sae,
    hook_name: str,
    token_lists: Sequence[Sequence[int]],
    prompt_ids: np.ndarray,
    batch_size: int,
    batch_tokens: int | None = None,
    dtype: npt.DTypeLike = np.float32,
    progress: Callable[[int, int], None] | None = None,
    window: int | None = None,
):
    """Sparse SAE activations of every real token, in prompt then position order, and the token table.

    Prompts run in :func:`length_batches` (padding is what a batch of mixed lengths wastes; with
    ``window``, within blocks of that many prompts); rows are put back in prompt order at the end.
    Returns (CSR (tokens, d_sae), token table columns, timings).
    """
    if not len(token_lists):
        raise ValueError("no prompts to extract")
    batches = length_batches([len(t) for t in token_lists], batch_size, batch_tokens, window)
    forward = encode = 0.0
    parts = []
    for batch in iter_extraction(model, sae, hook_name, token_lists, batches, dtype, progress):
        forward += batch.forward_seconds
        encode += batch.encode_seconds
        parts.append(batch)
    t0 = time.perf_counter()
    prompt_index = np.concatenate([b.prompt_index for b in parts])
    position = np.concatenate([b.position for b in parts])
    rows = np.lexsort((position, prompt_index))  # back to prompt order, then position
    values = stack_rows([b.activations for b in parts], rows)
    token_ids = np.concatenate([b.token_ids for b in parts])[rows]
    tokens = {
        "prompt_id": np.asarray(prompt_ids)[prompt_index[rows]],
        "position": position[rows],
        "token_id": token_ids,
        "token": token_texts(model.tokenizer, token_ids),
    }
    return values, tokens, ExtractionTimings(forward, encode, time.perf_counter() - t0, int(values.shape[0]))


def collect_hook_activations(
    model, hook_name: str, token_lists: Sequence[Sequence[int]], batch_size: int, batch_tokens: int | None = None
) -> torch.Tensor:
    """(real tokens, d_model) float32 activations at the hook, pads dropped, in prompt then
    position order (for SAE training); the forward runs in :func:`length_batches`."""
    pad_id = _pad_id(model)
    per_prompt: list[torch.Tensor | None] = [None] * len(token_lists)
    for batch in length_batches([len(t) for t in token_lists], batch_size, batch_tokens):
        tokens, _ = pad_batch([token_lists[i] for i in batch], pad_id)
        acts = hook_activations(model, tokens, hook_name).float().cpu()
        for row, i in enumerate(batch.tolist()):
            per_prompt[i] = acts[row, : len(token_lists[i])]
    rows = [a for a in per_prompt if a is not None]
    return torch.cat(rows) if rows else torch.zeros((0, model.cfg.d_model))
