import polars as pl
import pytest

from cluster_assets.core.params import ParameterError
from cluster_assets.sources.corpora import is_sae_training_text
from cluster_assets.sources.prompts import sample_prompts


class WordTokenizer:
    """A transparent stand-in tokenizer: one token per whitespace-separated word."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.inverse: dict[int, str] = {}

    def __call__(self, texts, add_special_tokens=False):
        out = []
        for t in texts:
            ids = []
            for w in t.split():
                if w not in self.vocab:
                    self.vocab[w] = len(self.vocab)
                    self.inverse[self.vocab[w]] = w
                ids.append(self.vocab[w])
            out.append(ids)
        return {"input_ids": out}

    def batch_decode(self, lists):
        return [" ".join(self.inverse[i] for i in ids) for ids in lists]


def _corpus():
    texts = [" ".join(f"w{i}_{j}" for j in range(i % 40 + 1)) for i in range(600)]
    return [*texts, "", "   ", "\n\t", *texts[:20]]  # empties and duplicates


def test_sampling_is_deterministic_and_respects_max_tokens():
    texts = _corpus()
    a, report = sample_prompts(texts, 50, 10, seed=3, tokenizer=WordTokenizer())
    b, _ = sample_prompts(texts, 50, 10, seed=3, tokenizer=WordTokenizer())
    c, _ = sample_prompts(texts, 50, 10, seed=4, tokenizer=WordTokenizer())
    assert a.equals(b)
    assert not a["prompt_id"].equals(c["prompt_id"])
    assert a.height == 50 and a["n_tokens"].max() <= 10
    assert (a["token_ids"].list.len() == a["n_tokens"]).all()
    assert a.filter(pl.col("truncated"))["n_tokens"].min() == 10
    assert report.n_empty == 3 and report.n_duplicates == 20
    assert a["prompt_id"].is_unique().all()


def test_sampled_prompts_avoid_the_sae_training_split():
    texts = _corpus()
    frame, report = sample_prompts(texts, 100, 50, seed=0, tokenizer=WordTokenizer())
    assert not any(is_sae_training_text(texts[i]) for i in frame["prompt_id"])
    assert report.n_reserved_for_sae > 0


def test_real_tokenizer_cuts_to_max_tokens(embedded_cache):
    from cluster_assets.sources.model import load_tokenizer

    tok = load_tokenizer(embedded_cache)
    texts = ["The quick brown fox jumps over the lazy dog. " * 5, "Short text here."] * 20 + [
        f"Sentence {i} about nothing in particular." for i in range(100)
    ]
    frame, _ = sample_prompts(texts, 30, 8, seed=0, tokenizer=tok)
    assert frame["n_tokens"].max() <= 8
    for ids, text in zip(frame["token_ids"].to_list(), frame["text"].to_list()):
        assert tok.decode(ids) == text


@pytest.mark.parametrize("texts, n, match", [(["", "  "], 1, "no usable text"), (_corpus(), 10_000, "10000 prompts is more than the")])
def test_bad_corpus_or_count(texts, n, match):
    with pytest.raises(ParameterError, match=match) as err:
        sample_prompts(texts, n, 10, seed=0, tokenizer=WordTokenizer(), dataset="x")
    assert err.value.field == "n_prompts"


def test_replicates_draw_disjoint_prompts_and_keep_the_first_sample():
    texts = _corpus()
    tok = WordTokenizer()
    alone, _ = sample_prompts(texts, 20, 10, seed=3, tokenizer=tok)
    samples = [sample_prompts(texts, 20, 10, seed=3, tokenizer=tok, replicate=r, replicates=3)[0] for r in range(3)]
    ids = [set(s["prompt_id"].to_list()) for s in samples]
    assert all(len(i) == 20 for i in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert samples[0].equals(alone)  # adding replicates leaves replicate 1 as it was
    with pytest.raises(ParameterError, match=r"20 prompts x 1000 disjoint replicates = 20000 is more than the \d+ usable texts"):
        sample_prompts(texts, 20, 10, seed=3, tokenizer=tok, replicate=0, replicates=1000)


def test_token_budget_samples_are_disjoint_and_reach_the_budget():
    texts, tok = _corpus(), WordTokenizer()
    samples = [sample_prompts(texts, None, 10, seed=5, tokenizer=tok, replicate=r, replicates=3, n_tokens=400)[0] for r in range(3)]
    ids = [set(s["prompt_id"].to_list()) for s in samples]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    for s in samples:
        # a block takes texts until its tokens reach the budget: the last text may overshoot by less than max_tokens
        assert 400 <= s["n_tokens"].sum() < 400 + 10
    alone = sample_prompts(texts, None, 10, seed=5, tokenizer=tok, n_tokens=400)[0]
    assert alone.equals(samples[0])
    with pytest.raises(ParameterError, match=r"400 tokens x 100 disjoint replicates = 40000 is more than the \d+ tokens") as err:
        sample_prompts(texts, None, 10, seed=5, tokenizer=tok, replicate=0, replicates=100, n_tokens=400)
    assert err.value.field == "n_tokens"
