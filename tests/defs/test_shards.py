"""Activation shards on the real embedded model: a sample's activations are the same bytes whatever
the shard size and as one extraction of the whole sample, and so is everything computed from them;
another replicate or a larger sample extracts only the shards it lacks; a killed run keeps the
shards it finished."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml

from cluster_assets.defs.stages import SHARDS
from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.extraction import extract_activations
from cluster_assets.sources.numerics import model_numerics
from cluster_assets.sources.prompts import draw_order
from cluster_assets.storage.formats import ActivationsFormat, PromptsFormat, SAEFormat
from tests.conftest import FIXTURES, ROOT, Graph, fixture_project, tiny_resources
from tests.engines import wait_for


def sweep_file(tmp_path: Path, **points) -> Path:
    """The fixture sweep's defaults with the given points."""
    defaults = yaml.safe_load((FIXTURES / "sweep.yaml").read_text())["defaults"]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"defaults": defaults, "points": points}))
    return path


@pytest.fixture(scope="module")
def sae_root(tmp_path_factory, embedded_cache):
    """An artifact root holding only the tiny SAE: each test copies it into its own root."""
    root = tmp_path_factory.mktemp("sae_only")
    with dg.DagsterInstance.ephemeral() as instance:
        assert Graph(fixture_project(), tiny_resources(root), instance).sae().success
    return root


def graph_in(root: Path, sae_root: Path, instance, project=None, **source) -> Graph:
    if not (root / "sae").exists():
        shutil.copytree(sae_root / "sae", root / "sae")
    return Graph(project or fixture_project(), tiny_resources(root, **source), instance)


def activations_of(graph: Graph, dataset: str, point: str, *more: str):
    result = graph.materialize(["prompts", "activations", *more], graph.key(dataset, point))
    assert result.success
    return graph.metadata(result, "prompts"), graph.metadata(result, "activations"), *(graph.metadata(result, m) for m in more)


def csr_bytes(values) -> tuple[bytes, bytes, bytes]:
    return values.data.tobytes(), values.indices.tobytes(), values.indptr.tobytes()


def files(md) -> dict:
    return json.loads((Path(md["path"].value) / "manifest.json").read_text())["files"]


def test_a_samples_activations_do_not_depend_on_the_shard_size_and_equal_one_extraction(tmp_path, sae_root, embedded_model, monkeypatch):
    """The same forward batches (sets of draws), address, rows and memberships at three shard sizes,
    and the bytes of one extraction of the whole sample.  The batches are checked directly: on some numerics
    a row's bytes do not depend on its batch, and then equal bytes alone would show nothing."""
    from cluster_assets.sources import extraction, shards

    ran: list[frozenset] = []
    rows_of = {}

    def recording_extract(model, sae, hook, lists, rows, *args, **kwargs):
        rows_of["current"] = np.asarray(rows)
        return extract_activations(model, sae, hook, lists, rows, *args, **kwargs)

    def recording_iter(model, sae, hook, lists, batches, *args, **kwargs):
        ran.extend(frozenset(rows_of["current"][b].tolist()) for b in batches)
        return real_iter(model, sae, hook, lists, batches, *args, **kwargs)

    real_iter = extraction.iter_extraction
    monkeypatch.setattr(shards, "extract_activations", recording_extract)
    monkeypatch.setattr(extraction, "iter_extraction", recording_iter)
    seen, batches, streamed = {}, {}, {}
    with dg.DagsterInstance.ephemeral() as instance:
        for shard_prompts in (4, 8, 24):  # base@2 (draws 12..23) lies in 3, 2 and 1 shards
            ran.clear()
            graph = graph_in(tmp_path / str(shard_prompts), sae_root, instance, shard_prompts=shard_prompts)
            pmd, amd, mmd = activations_of(graph, "kjv", "base@2", "memberships")
            assert amd["shards"].value == {4: 3, 8: 2, 24: 1}[shard_prompts] and amd["reused"].value is False
            stored = ActivationsFormat().load(Path(amd["path"].value))
            assert len(list(stored.blocks())) == amd["shards"].value  # read one shard at a time
            gathered = stored.gather()
            seen[shard_prompts] = (amd["artifact"].value, csr_bytes(gathered.values), gathered.tokens.hash_rows().to_list())
            batches[shard_prompts] = set(ran)
            streamed[shard_prompts] = (mmd["artifact"].value, files(mmd))
    assert len({repr(v) for v in seen.values()}) == 1  # one address, the same rows
    assert len({json.dumps(v) for v in streamed.values()}) == 1, streamed  # memberships streamed over 3, 2 or 1 shards: one result
    frame = PromptsFormat().load(Path(pmd["path"].value))
    corpora = tiny_resources(tmp_path)["source"].resolved_cache() / "corpora"
    order, _ = draw_order(load_texts(fixture_project().dataset("kjv"), corpora), 0)
    in_draw_order = order[np.isin(order, frame["prompt_id"].to_numpy())]
    assert in_draw_order.size == 12 and set(in_draw_order) == set(order[12:24])  # the second block of 12 draws
    window_of = {int(row): draw // 4 for draw, row in enumerate(order)}
    # the batches holding the sample's prompts (a shard of 8 or 24 draws also holds draws before 12)
    mine = {size: {b for b in ran_at if b & set(in_draw_order.tolist())} for size, ran_at in batches.items()}
    assert mine[4] == mine[8] == mine[24] and set().union(*mine[4]) == set(in_draw_order.tolist()), mine
    assert all(len({window_of[r] for r in b}) == 1 for b in mine[4])  # no batch straddles a window
    unwindowed = extraction.length_batches(frame["n_tokens"].to_numpy(), 8, 4096)
    assert any(len({window_of[r] for r in frame["prompt_id"].to_numpy()[b]}) > 1 for b in unwindowed)  # the check can fail
    # one extraction of the whole sample, its prompts in draw order, batched within windows of 4 draws
    sae = SAEFormat().load(next((sae_root / "sae").iterdir()))
    lists = [frame.filter(frame["prompt_id"] == p)["token_ids"].item().to_list() for p in in_draw_order]
    with model_numerics("cpu"):
        values, tokens, _ = extract_activations(embedded_model, sae, "blocks.3.hook_mlp_out", lists, in_draw_order, 8, 4096, window=4)
    draw = {int(p): i for i, p in enumerate(in_draw_order)}
    rows = np.lexsort((tokens["position"], [draw[int(p)] for p in tokens["prompt_id"]]))  # the sample's rows: draw, then position
    assert csr_bytes(gathered.values) == csr_bytes(values[rows])
    assert gathered.tokens["token_id"].to_list() == tokens["token_id"][rows].tolist()
    assert gathered.tokens["prompt_id"].to_list() == [int(p) for p in tokens["prompt_id"][rows]]


def test_another_replicate_and_a_larger_sample_extract_only_the_shards_they_lack(tmp_path, sae_root):
    sweep = sweep_file(
        tmp_path, base={"prompts": {"replicates": 2}}, larger={"prompts": {"n_prompts": 24}}, by_tokens={"prompts": {"n_tokens": 450}}
    )
    project = fixture_project(sweep=sweep)
    with dg.DagsterInstance.ephemeral() as instance:
        graph = graph_in(tmp_path / "root", sae_root, instance, project=project)  # 8 draws a shard
        counts = {}
        for point in ("base", "base@2", "larger", "by_tokens"):  # draws 0..11, 12..23, 0..23, 0..(450 tokens' worth)
            pmd, amd = activations_of(graph, "kjv", point)
            counts[point] = (amd["shards"].value, amd["shards_extracted"].value)
            if point == "base":
                base = ActivationsFormat().load(Path(amd["path"].value)).gather()
            if point == "larger":
                larger = ActivationsFormat().load(Path(amd["path"].value)).gather()
        assert {p: counts[p] for p in ("base", "base@2", "larger")} == {"base": (2, 2), "base@2": (2, 1), "larger": (3, 0)}
        # a token budget past draw 23 (prompts are cut to 16 tokens) extracts only the shards beyond the first three
        assert pmd["tokens"].value >= 450 and counts["by_tokens"][0] >= 4, (pmd["tokens"].value, counts)
        assert counts["by_tokens"][1] == counts["by_tokens"][0] - 3
        assert len(list((tmp_path / "root" / SHARDS).iterdir())) == counts["by_tokens"][0]
    # the larger sample holds the base sample's rows, byte for byte
    rows = np.flatnonzero(np.isin(larger.tokens["prompt_id"].to_numpy(), base.tokens["prompt_id"].to_numpy()))
    assert rows.size == base.n_tokens and csr_bytes(larger.values[rows]) == csr_bytes(base.values)


KILLABLE = textwrap.dedent("""
    import sys
    import dagster as dg
    from tests.conftest import Graph, fixture_project, tiny_resources
    graph = Graph(fixture_project(sweep=sys.argv[2]), tiny_resources(sys.argv[1], shard_prompts=4), dg.DagsterInstance.ephemeral())
    graph.materialize(["prompts", "activations"], graph.key("kjv", "many"))
""")


def test_a_killed_extraction_keeps_its_finished_shards_and_the_rerun_extracts_only_the_rest(tmp_path, sae_root):
    root, sweep = tmp_path / "root", sweep_file(tmp_path, many={"prompts": {"n_prompts": 160}})  # 40 shards of 4 draws
    shutil.copytree(sae_root / "sae", root / "sae")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(root), str(sweep)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    shards = root / SHARDS
    try:
        finished = lambda: shards.is_dir() and any(not p.name.startswith(".") for p in shards.iterdir())  # noqa: E731
        wait_for(finished, 240, "the first shard to be written", interval=0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    kept = [p for p in shards.iterdir() if not p.name.startswith(".")]
    assert 1 <= len(kept) < 40, len(kept)
    assert all((p / "manifest.json").exists() for p in kept)  # each complete
    with dg.DagsterInstance.ephemeral() as instance:
        graph = graph_in(root, sae_root, instance, project=fixture_project(sweep=sweep), shard_prompts=4)
        _, amd = activations_of(graph, "kjv", "many")
    assert (amd["shards"].value, amd["shards_extracted"].value) == (40, 40 - len(kept))
    assert not [p for p in shards.iterdir() if p.name.startswith(".")]  # the killed writer's temporary is gone
    # and the same bytes as an uninterrupted run
    with dg.DagsterInstance.ephemeral() as instance:
        fresh = graph_in(tmp_path / "fresh", sae_root, instance, project=fixture_project(sweep=sweep), shard_prompts=4)
        _, uninterrupted = activations_of(fresh, "kjv", "many")
    assert files(amd) == files(uninterrupted)


def test_shard_settings_that_straddle_a_batching_window_fail_naming_both(tmp_path, sae_root):
    with dg.DagsterInstance.ephemeral() as instance:
        graph = graph_in(tmp_path, sae_root, instance, shard_prompts=6)  # batch_window 4
        result = graph.materialize(["prompts", "activations"], graph.key("kjv", "base"), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "source.shard_prompts (6)" in message and "source.batch_window (4)" in message
