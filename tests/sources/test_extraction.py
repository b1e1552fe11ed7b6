"""Extraction against a dense reference on a tiny HookedSAETransformer built from a config."""

import numpy as np
import pytest
import torch

from cluster_assets.sources.extraction import (
    collect_hook_activations,
    encode_sparse,
    extract_activations,
    hook_activations,
    iter_extraction,
    length_batches,
    pad_batch,
)


def consecutive(n: int, batch_size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


@pytest.fixture(scope="module")
def tiny_model():
    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=16, d_head=4, n_heads=4, d_mlp=32, d_vocab=50, n_ctx=32, act_fn="gelu", normalization_type="LN"
    )
    return HookedSAETransformer(cfg).eval()


def _saes():
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    torch.manual_seed(1)
    topk = TopKSAE(TopKSAEConfig(d_in=16, d_sae=64, k=5))
    standard = StandardSAE(StandardSAEConfig(d_in=16, d_sae=64))
    with torch.no_grad():
        for sae in (topk, standard):
            for p in sae.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
    return {"topk": topk, "standard": standard}


@pytest.mark.parametrize("kind", ["topk", "standard"])
@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_sparse_extraction_equals_dense_reference(tiny_model, kind, batch_size):
    sae = _saes()[kind]
    rng = np.random.default_rng(0)
    token_lists = [rng.integers(1, 50, size=int(n)).tolist() for n in rng.integers(1, 20, size=9)]
    batches = list(iter_extraction(tiny_model, sae, "blocks.1.hook_mlp_out", token_lists, consecutive(len(token_lists), batch_size)))
    # dense reference: same padded batches and real-token rows, full dense sae.encode, then compare every entry
    for b, start in zip(batches, range(0, len(token_lists), batch_size)):
        tokens, mask = pad_batch(token_lists[start : start + batch_size], 0)
        with torch.no_grad():
            hooked = hook_activations(tiny_model, tokens, "blocks.1.hook_mlp_out")
            dense = sae.encode(hooked[mask]).numpy()
            # encoding the padded 3-D batch differs only by matmul rounding
            np.testing.assert_allclose(sae.encode(hooked)[mask].numpy(), dense, rtol=1e-5, atol=1e-5)
        got = b.activations.toarray()
        assert b.activations.has_sorted_indices or b.activations.nnz == 0
        np.testing.assert_array_equal(got != 0, dense != 0)
        np.testing.assert_array_equal(got, dense)
        assert (got != 0).sum() > 0
        rows, cols = np.nonzero(mask.numpy())
        np.testing.assert_array_equal(b.prompt_index, rows + start)
        np.testing.assert_array_equal(b.position, cols)
        np.testing.assert_array_equal(b.token_ids, tokens[mask].numpy())


def test_padding_does_not_change_real_token_activations(tiny_model):
    sae = _saes()["topk"]
    lists = [[5, 6, 7, 8, 9, 10], [11, 12]]
    batched = next(iter_extraction(tiny_model, sae, "blocks.2.hook_mlp_out", lists, [np.arange(2)])).activations.toarray()
    alone = next(iter_extraction(tiny_model, sae, "blocks.2.hook_mlp_out", lists[1:], [np.arange(1)])).activations.toarray()
    np.testing.assert_allclose(batched[6:], alone, rtol=1e-5, atol=1e-6)


def test_topk_shortcut_matches_encode_on_random_inputs():
    sae = _saes()["topk"]
    x = torch.randn(200, 16)
    np.testing.assert_array_equal(encode_sparse(sae, x).toarray(), sae.encode(x).detach().numpy())


def test_bad_hook_name(tiny_model):
    with pytest.raises(ValueError, match="hook name"):
        list(iter_extraction(tiny_model, _saes()["topk"], "mlp_out", [[1, 2]], [np.arange(1)]))


@pytest.mark.parametrize("rescale", [False, True])
def test_topk_torch_path_matches_encode(rescale):
    """Off the CPU float32 kernel (here: a float64 SAE) the torch top-k path must agree too."""
    sae = _saes()["topk"].to(torch.float64)
    sae.cfg.rescale_acts_by_decoder_norm = rescale
    x = torch.randn(100, 16, dtype=torch.float64)
    np.testing.assert_array_equal(encode_sparse(sae, x).toarray(), sae.encode(x).detach().numpy())


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("n_rows", [0, 1, 511, 1300])
def test_topk_cpu_blocks_match_one_dense_encode(n_rows, rescale):
    """Row blocks of the CPU encoder (several, with an uneven last one) give sae.encode's exact numbers,
    also for SAEs that rank by decoder-norm-scaled pre-activations (what sae-lens' TopK trainer saves)."""
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(3)
    sae = TopKSAE(TopKSAEConfig(d_in=48, d_sae=256, k=12, rescale_acts_by_decoder_norm=rescale))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(n_rows, 48)
    got = encode_sparse(sae, x)
    assert got.has_sorted_indices and got.shape == (n_rows, 256)
    np.testing.assert_array_equal(got.toarray(), sae.encode(x).detach().numpy())


def test_stack_rows_equals_vstack_then_row_indexing():
    import scipy.sparse as sp

    from cluster_assets.sources.extraction import stack_rows

    rng = np.random.default_rng(0)
    parts = [
        sp.csr_array(sp.random(n, 30, density=0.2, random_state=i, format="csr", dtype=np.float32)) for i, n in enumerate([5, 0, 7, 3])
    ]
    rows = rng.permutation(15)
    want = sp.csr_array(sp.vstack(parts, format="csr"))[rows]
    got = stack_rows(parts, rows)
    np.testing.assert_array_equal(got.toarray(), want.toarray())
    assert got.dtype == np.float32 and got.has_sorted_indices


@pytest.mark.parametrize(("batch_size", "batch_tokens"), [(4, None), (4, 30), (100, 12), (1, 1)])
def test_length_batches_cover_every_prompt_once_within_the_budget(batch_size, batch_tokens):
    lengths = np.random.default_rng(0).integers(1, 20, size=23)
    batches = length_batches(lengths, batch_size, batch_tokens)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(lengths.size))
    for b in batches:
        assert 1 <= b.size <= batch_size
        padded = b.size * lengths[b].max()
        assert batch_tokens is None or padded <= batch_tokens or b.size == 1  # a prompt longer than the budget runs alone
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first: similar lengths share a batch


@pytest.mark.parametrize("window", [1, 4, 5, 23, 64])
def test_windowed_batches_stay_inside_their_window_and_skip_empty_prompts(window):
    lengths = np.random.default_rng(1).integers(0, 20, size=23)  # some prompts are empty
    batches = length_batches(lengths, 3, 40, window)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.flatnonzero(lengths > 0))
    for b in batches:
        assert len(set((b // window).tolist())) == 1  # one window's prompts only
    # a window's batches are those of the window alone: what comes before or after it changes nothing
    alone = length_batches(lengths[window : 2 * window], 3, 40)
    inside = [b - window for b in batches if window <= b[0] < 2 * window]
    assert [b.tolist() for b in inside] == [b.tolist() for b in alone]


class _IdTokenizer:
    """Token texts for a model built from a config (it has no tokenizer): ``<id>``."""

    pad_token_id = 0
    padding_side = "right"

    def decode(self, ids: list[int]) -> str:
        return "".join(f"<{i}>" for i in ids)


def test_extraction_and_collection_do_not_depend_on_the_batching(tiny_model, monkeypatch):
    """Whatever the batches, the rows come back in prompt then position order with the same values
    (up to the rounding of differently shaped matmuls) -- checked against one prompt at a time."""
    monkeypatch.setattr(tiny_model, "tokenizer", _IdTokenizer())
    sae = _saes()["topk"]
    rng = np.random.default_rng(5)
    lists = [rng.integers(1, 50, size=int(n)).tolist() for n in rng.integers(1, 20, size=11)]
    hook = "blocks.1.hook_mlp_out"
    alone = [hook_activations(tiny_model, pad_batch([ids], 0)[0], hook)[0] for ids in lists]
    reference = torch.cat(alone)
    want_positions = np.concatenate([np.arange(len(ids)) for ids in lists])
    want_prompts = np.repeat(np.arange(len(lists)) * 10, [len(ids) for ids in lists])
    for batch_size, batch_tokens in [(1, None), (4, None), (8, 24), (64, 4096)]:
        collected = collect_hook_activations(tiny_model, hook, lists, batch_size, batch_tokens)
        np.testing.assert_allclose(collected.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
        values, tokens, _ = extract_activations(tiny_model, sae, hook, lists, np.arange(len(lists)) * 10, batch_size, batch_tokens)
        np.testing.assert_array_equal(tokens["prompt_id"], want_prompts)
        np.testing.assert_array_equal(tokens["position"], want_positions)
        np.testing.assert_array_equal(tokens["token_id"], np.concatenate(lists))
        assert tokens["token"][:2] == [f"<{i}>" for i in lists[0][:2]]
        np.testing.assert_allclose(values.toarray(), sae.encode(reference).detach().numpy(), rtol=1e-4, atol=1e-5)
