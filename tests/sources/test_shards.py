"""Shard planning and gathering on made-up data (the model-side tests are in tests/defs/test_shards.py)."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from cluster_assets.sources.shards import ShardError, assemble_shards, plan_shards


def test_a_sample_lies_in_the_shards_of_its_draws():
    order = np.random.default_rng(0).permutation(50)
    plan = plan_shards(order, np.sort(order[10:22]), shard_prompts=8, batch_window=4)
    assert plan.shards == [1, 2]
    np.testing.assert_array_equal(plan.rows(1), order[8:16])
    np.testing.assert_array_equal(plan.rows(6), order[48:50])  # the last shard is short
    with pytest.raises(ShardError, match=r"source.shard_prompts \(6\).*source.batch_window \(4\)"):
        plan_shards(order, order[:3], shard_prompts=6, batch_window=4)
    with pytest.raises(ShardError, match=r"not among the dataset's draws"):
        plan_shards(order[:40], order[38:42], shard_prompts=8, batch_window=4)


def _shard(prompt_ids, lengths, rng):
    """A shard's rows (prompts in the given order, positions in order) with random sparse values."""
    pid = np.repeat(prompt_ids, lengths)
    pos = np.concatenate([np.arange(n) for n in lengths])
    tokens = pl.DataFrame({"prompt_id": pid, "position": pos.astype(np.int32), "token_id": pid * 100 + pos, "token": ["t"] * pid.size})
    return sp.csr_array(sp.random(pid.size, 16, density=0.3, format="csr", random_state=rng, dtype=np.float32)), tokens


def test_gathering_takes_the_samples_rows_in_prompt_then_position_order_and_checks_them():
    rng = np.random.default_rng(1)
    ids = [np.array([7, 3, 9]), np.array([1, 5])]  # draw order within each shard
    lengths = [np.array([2, 3, 1]), np.array([4, 2])]
    shards = [_shard(i, n, rng) for i, n in zip(ids, lengths)]
    chosen = [9, 1, 3]
    n_tokens = {7: 2, 3: 3, 9: 1, 1: 4, 5: 2}
    prompts = pl.DataFrame(
        {
            "prompt_id": chosen,
            "n_tokens": [n_tokens[p] for p in chosen],
            "token_ids": [[p * 100 + k for k in range(n_tokens[p])] for p in chosen],
        }
    )
    values, table = assemble_shards(shards, prompts)
    assert table["prompt_id"].to_list() == [1] * 4 + [3] * 3 + [9] and table["position"].to_list() == [0, 1, 2, 3, 0, 1, 2, 0]
    dense = np.vstack([v.toarray() for v, _ in shards])
    everything = pl.concat([t for _, t in shards])
    for row, (p, k) in enumerate(zip(table["prompt_id"], table["position"])):
        source = everything.with_row_index().filter((pl.col("prompt_id") == p) & (pl.col("position") == k))["index"].item()
        np.testing.assert_array_equal(values.toarray()[row], dense[source])
    wrong = prompts.with_columns(
        pl.when(pl.col("prompt_id") == 3).then(pl.lit([300, 301])).otherwise(pl.col("token_ids")).alias("token_ids")
    )
    wrong = wrong.with_columns(pl.col("token_ids").list.len().alias("n_tokens"))
    with pytest.raises(ShardError, match="cut differently"):  # prompt 3 cut to 2 tokens here, 3 in the shard
        assemble_shards(shards, wrong)
