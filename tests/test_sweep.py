import pytest

from cluster_assets.sweep import ConfigFileError, content_hash, load_registry, load_sweep


def _write(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return path


def test_repo_sweep_has_at_least_two_points_and_validates():
    points = load_sweep("cluster_assets/config/sweep.yaml")
    assert len(points) >= 2
    assert points["short_prompts"].prompts.max_tokens < points["base"].prompts.max_tokens
    assert points["short_prompts"].prompts.n_prompts == points["base"].prompts.n_prompts  # defaults merged


@pytest.mark.parametrize(
    "text, match",
    [
        ("points: {a: {prompts: {n_prompt: 3}}}", r"sweep point 'a'.*prompts.n_prompt"),
        ("points: {a: {prompts: {n_prompts: 0}}}", r"sweep point 'a'.*prompts.n_prompts"),
        ("points: {a: {merge_everything: {}}}", r"sweep point 'a'.*merge_everything"),
        ("points: {}", "no sweep points"),
        ("pionts: {a: {}}", "unknown top-level keys"),
    ],
)
def test_bad_sweep_files_name_the_point_and_field(tmp_path, text, match):
    with pytest.raises(ConfigFileError, match=match):
        load_sweep(_write(tmp_path, text))


def test_bad_registry_entry(tmp_path):
    with pytest.raises(ConfigFileError, match="dataset 'x'.*licence"):
        load_registry(_write(tmp_path, "datasets: {x: {loader: hub, offline: false}}"))


def test_content_hash_is_stable_and_order_independent():
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
