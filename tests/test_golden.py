"""A stage whose output changes must say so with a version bump (see tests/golden.py)."""

import json

from tests.golden import GOLDEN, RECORD_COMMAND, run_in_child, verdicts


def test_golden_run_matches_or_names_the_stage_to_bump(embedded_cache):
    golden = json.loads(GOLDEN.read_text())
    problems = verdicts(golden, run_in_child())
    assert not problems, "\n".join(problems)


def test_verdicts_name_the_stage_whose_output_changed():
    """The verdict logic on a hand-made golden: a changed output without a bump is named, its
    downstream is not blamed, a bump asks for a re-record."""
    golden = {
        "numerics": "cpu-x86-reference-2",
        "cpu": "AMD EPYC",
        "libraries": {"polars": "1"},
        "artifacts": {
            "memberships[kjv|base]": {"versions": ["format-v1"], "files": {"f.npz": "a"}, "inputs": []},
            "coactivation[kjv|base]": {"versions": ["format-v1"], "files": {"c.npz": "b"}, "inputs": ["memberships[kjv|base]"]},
            "clusters[kjv|base]": {"versions": ["format-v2"], "files": {"k.parquet": "c"}, "inputs": []},
        },
    }
    assert verdicts(golden, json.loads(json.dumps(golden))) == []
    now = json.loads(json.dumps(golden)) | {"cpu": "Intel Xeon"}
    now["artifacts"]["memberships[kjv|base]"]["files"]["f.npz"] = "changed"
    now["artifacts"]["coactivation[kjv|base]"]["files"]["c.npz"] = "changed too"
    now["artifacts"]["clusters[kjv|base]"] |= {"versions": ["format-v3"], "files": {"k.parquet": "new"}}
    [bumped, changed] = verdicts(golden, now)  # in label order
    assert changed.startswith("memberships[kjv|base]: memberships's output changed (f.npz)") and "Bump its code_version" in changed
    assert "recorded on CPU 'AMD EPYC', this run on 'Intel Xeon'" in changed  # a CPU-dependent path is named as a suspect
    assert bumped.startswith("clusters[kjv|base]: clusters was bumped") and RECORD_COMMAND in bumped
