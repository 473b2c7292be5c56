"""reproduce._common.resume / checkpoint: the resumable result files of the reproductions (thin
wrappers over widelimits._resume, the package's one resumable format)."""

import os

import numpy as np

from widelimits.reproduce._common import checkpoint, resume


def test_checkpoint_round_trip_and_stamp(tmp_path):
    path = os.fspath(tmp_path / "piece.npz")
    assert resume(path, seed=0) == {}
    done = {"a_8": np.arange(3.0), "b": np.eye(2)}
    checkpoint(path, done, seed=3, angles=np.linspace(0, 1, 5), dtype="float32")
    back = resume(path, seed=3, angles=np.linspace(0, 1, 5), dtype="float32")
    assert sorted(back) == ["a_8", "b"]
    for k, v in done.items():
        np.testing.assert_array_equal(back[k], v)
    # any stamp that differs, or is missing from the file, discards the pieces
    assert resume(path, seed=4, angles=np.linspace(0, 1, 5), dtype="float32") == {}
    assert resume(path, seed=3, angles=np.linspace(0, 1, 6), dtype="float32") == {}
    assert resume(path, seed=3, angles=np.linspace(0, 1, 5), dtype="float64") == {}
    assert resume(path, seed=3, depth=2, angles=np.linspace(0, 1, 5), dtype="float32") == {}
    assert not os.path.exists(path + ".partial.npz")


def test_checkpoint_is_atomic(tmp_path, monkeypatch):
    # A save that dies midway (here: np.savez raising) leaves the previous file readable.
    path = os.fspath(tmp_path / "piece.npz")
    checkpoint(path, {"x": np.ones(2)}, seed=1)

    def dies(file, *args, **arrays):  # file: a path or an open file (widelimits._resume.save)
        if hasattr(file, "write"):
            file.write(b"truncated")
        else:
            with open(file, "wb") as fh:
                fh.write(b"truncated")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies)
    try:
        checkpoint(path, {"x": np.ones(2), "y": np.zeros(3)}, seed=1)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    back = resume(path, seed=1)
    assert sorted(back) == ["x"]


def test_rerun_saved_checks_the_pieces_and_passes_the_seed(tmp_path):
    import pytest

    from widelimits.reproduce._common import rerun_saved

    path = os.fspath(tmp_path / "fig_quick.npz")
    checkpoint(path, {"loss_8": np.ones(2)}, seed=7)
    calls = []
    run = lambda size, folder, seed: calls.append((size, folder, seed)) or "result"  # noqa: E731
    assert rerun_saved(path, run, "quick", {"width 8": "loss_8"}, "fig.load") == "result"
    assert calls == [("quick", os.fspath(tmp_path), 7)]
    with pytest.raises(ValueError, match=r"fig.load: .* lacks \['width 16'\] of size 'quick'"):
        rerun_saved(path, run, "quick", {"width 8": "loss_8", "width 16": "loss_16"}, "fig.load")
    assert len(calls) == 1
