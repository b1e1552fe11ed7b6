"""Shard planning and gathering on made-up data (the model-side tests are in tests/defs/test_shards.py)."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from cluster_assets.sources.shards import ShardError, check_sample_tokens, plan_shards, sample_rows


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


def test_a_sample_is_one_run_of_rows_of_each_shard_and_its_tokens_are_checked():
    rng = np.random.default_rng(1)
    order = np.array([7, 3, 9, 1, 5, 8])  # the draws; shards of 3
    lengths = {7: 2, 3: 3, 9: 1, 1: 4, 5: 2, 8: 1}
    shards = [_shard(order[i : i + 3], [lengths[p] for p in order[i : i + 3]], rng)[1] for i in (0, 3)]
    chosen = np.array([3, 9, 1])  # draws 1..3: the end of shard 0 and the start of shard 1
    plan = plan_shards(order, np.sort(chosen), shard_prompts=3, batch_window=1)
    assert plan.shards == [0, 1]
    assert sample_rows(shards[0], chosen) == (2, 6) and sample_rows(shards[1], chosen) == (0, 4)
    tokens = pl.concat([shards[0][2:6], shards[1][0:4]])
    assert tokens["prompt_id"].to_list() == [3, 3, 3, 9, 1, 1, 1, 1]  # draw order, then position
    prompts = pl.DataFrame(
        {
            "prompt_id": np.sort(chosen),
            "n_tokens": [lengths[p] for p in np.sort(chosen)],
            "token_ids": [[p * 100 + k for k in range(lengths[p])] for p in np.sort(chosen)],
        }
    )
    check_sample_tokens(tokens, prompts, plan)
    wrong = prompts.with_columns(
        pl.when(pl.col("prompt_id") == 3).then(pl.lit([300, 301])).otherwise(pl.col("token_ids")).alias("token_ids")
    )
    wrong = wrong.with_columns(pl.col("token_ids").list.len().alias("n_tokens"))
    with pytest.raises(ShardError, match="cut differently"):  # prompt 3 cut to 2 tokens here, 3 in the shard
        check_sample_tokens(tokens, wrong, plan)
    with pytest.raises(ShardError, match="not consecutive draws"):  # prompts 7 and 9 with 3 between them
        sample_rows(shards[0], np.array([7, 9]))
