"""Artifacts: verified manifests, atomic writes, dead writers' leftovers, concurrent writers, permissions."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from cluster_assets.storage import ArtifactStore, VerificationError
from cluster_assets.storage.artifacts import MANIFEST
from cluster_assets.storage.atomic import owned_temporaries


def _write(store, name="a", payload=b"x" * 1000):
    art = store.artifact("stage", name)
    with store.write(art, {"summary": {"n": 1}}) as folder:
        (folder / "data.bin").write_bytes(payload)
        (folder / "sub").mkdir()
        (folder / "sub" / "more.npy").write_bytes(payload[::-1])
    return art


def test_manifest_records_every_file_and_verifies(tmp_path):
    art = _write(ArtifactStore(tmp_path))
    files = art.manifest()["files"]
    assert set(files) == {"data.bin", "sub/more.npy"} and files["data.bin"]["bytes"] == 1000
    assert art.problems() == [] and art.verify() is art


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_bytes(b"y" + p.read_bytes()[1:]), "data.bin: content changed"),
        (lambda p: p.write_bytes(p.read_bytes()[:500]), "data.bin: 500 bytes, expected 1000"),
        (lambda p: p.unlink(), "data.bin: missing"),
    ],
)
def test_damaged_files_are_named(tmp_path, damage, expected):
    art = _write(ArtifactStore(tmp_path))
    art.verify()  # cached as good ...
    damage(art.path / "data.bin")  # ... then changed on disk
    assert any(expected in p for p in art.problems())
    with pytest.raises(VerificationError, match=expected):
        art.verify()


def test_manifest_without_checksums_is_not_trusted(tmp_path):
    art = _write(ArtifactStore(tmp_path))
    manifest = json.loads((art.path / MANIFEST).read_text())
    del manifest["files"]
    (art.path / MANIFEST).write_text(json.dumps(manifest))
    assert "lists no file checksums" in art.problems()[0]


def test_discard_removes_the_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    art = _write(store)
    store.discard(art)
    assert not art.exists and not art.path.exists()
    assert not list(owned_temporaries(art.path.parent))


def test_a_failed_write_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.artifact("stage", "b")
    with pytest.raises(RuntimeError), store.write(art, {}) as folder:
        (folder / "half.bin").write_bytes(b"1")
        raise RuntimeError("killed halfway")
    assert not art.exists and list((tmp_path / "stage").iterdir()) == []


WRITER = textwrap.dedent("""
    import sys, time
    from cluster_assets.storage import ArtifactStore
    store = ArtifactStore(sys.argv[1])
    art = store.artifact("stage", sys.argv[2])
    with store.write(art, {}) as folder:
        (folder / "data.bin").write_bytes(b"partial")
        print("writing", flush=True)
        time.sleep(float(sys.argv[3]))
""")


def _writer(tmp_path, name, seconds):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, str(seconds)], stdout=subprocess.PIPE, text=True)


def test_dead_writers_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead, live = _writer(tmp_path, "dead", 600), _writer(tmp_path, "live", 600)
    try:
        assert dead.stdout.readline().strip() == "writing" and live.stdout.readline().strip() == "writing"
        assert len(list(owned_temporaries(tmp_path / "stage"))) == 2
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        removed = ArtifactStore(tmp_path).clean_stale()
        left = [p.name for p, _ in owned_temporaries(tmp_path / "stage")]
        assert len(removed) == 1 and f"~{dead.pid}~" in removed[0].name and not removed[0].exists()
        assert len(left) == 1 and f"~{live.pid}~" in left[0]
    finally:
        for p in (dead, live):
            p.kill()
            p.wait(timeout=30)


def test_two_writers_of_one_artifact_at_once(tmp_path):
    """Content-addressed writes race safely: both finish, one complete folder stays, it verifies.
    The collision is forced: each writer waits, its folder complete, until the other's is too, so
    the second rename always meets the first's folder (one writer wins, the other yields)."""
    code = textwrap.dedent("""
        import os, sys, time
        from pathlib import Path
        from cluster_assets.storage import ArtifactStore
        store, barrier = ArtifactStore(sys.argv[1]), Path(sys.argv[2])
        art = store.artifact("stage", "same")
        writer = store.write(art, {})
        with writer as folder:
            (folder / "data.bin").write_bytes(b"identical content" * 1000)
            (barrier / str(os.getpid())).touch()
            deadline = time.time() + 60
            while len(list(barrier.iterdir())) < 2 and time.time() < deadline:  # both temporaries exist
                time.sleep(0.01)
            met = len(list(barrier.iterdir())) == 2
        print(art.verify().path, writer.won, met)
    """)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "store"), str(barrier)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    (path_a, won_a, met_a), (path_b, won_b, met_b) = (o[0].split() for o in outs)
    assert met_a == met_b == "True", outs  # each writer's folder was complete while the other's was too
    assert path_a == path_b and sorted([won_a, won_b]) == ["False", "True"], outs
    art = ArtifactStore(tmp_path / "store").artifact("stage", "same")
    assert art.problems() == [] and sorted(p.name for p in (tmp_path / "store" / "stage").iterdir()) == [art.hash]


def test_folders_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        art = _write(ArtifactStore(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(art.path.stat().st_mode) == 0o755
    assert stat.S_IMODE((art.path / MANIFEST).stat().st_mode) == 0o644
    assert stat.S_IMODE((art.path / "data.bin").stat().st_mode) == 0o644
