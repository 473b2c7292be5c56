"""The demo figure (``widelimits.reproduce.kernel_gallery``) and the command line."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

from widelimits import nets
from widelimits.__main__ import main
from widelimits.reproduce import REGISTRY, kernel_gallery

from ._repro import assert_png


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_results):
    out = tmp_path_factory.mktemp("kernel_gallery")
    result = smoke_results("kernel_gallery", out)
    return result, kernel_gallery.plot(result, out), out


def test_figures_written(smoke):
    result, paths, out = smoke
    assert len(paths) == 2
    for path in paths:
        assert_png(path)
    assert (out / "kernel_gallery.npz").exists()


def test_wide_network_matches_nngp(smoke):
    """The widest ensemble's covariance is within 5 standard errors of the analytic NNGP at
    every angle (fixed keys: deterministic). Standard errors come from the ensemble itself."""
    fin = smoke[0]["finite"]
    wide = int(np.argmax(fin["widths"]))
    se = fin["se"][:, wide]
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    z = (fin["mean"][:, wide] - fin["nngp"]) / se
    worst = np.unravel_index(np.argmax(np.abs(z)), z.shape)
    assert np.all(np.abs(z) < 5), (
        f"width {fin['widths'][wide]}, {fin['labels'][worst[0]]}, angle "
        f"{fin['angles'][worst[1]]:.3f}: z = {z[worst]:.2f}")
    np.testing.assert_allclose(fin["z"][:, wide], z)


def test_circle_kernels(smoke):
    circ = smoke[0]["circle"]
    a, d, n = len(circ["activations"]), len(circ["depths"]), len(circ["angles"])
    for name in ("nngp", "ntk"):
        k = circ[name]
        assert k.shape == (a, d, n) and circ[name + "0"].shape == (a, d)
        assert np.all(np.isfinite(k))
        # Kernels on the circle depend on cos(γ) only; γ = 0 (middle angle) gives the variance.
        np.testing.assert_allclose(k, k[..., ::-1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(k[..., n // 2], circ[name + "0"], rtol=1e-5)
        assert np.all(np.abs(k) <= circ[name + "0"][..., None] * (1 + 1e-5))


def test_load_roundtrip(smoke, tmp_path):
    result, _, out = smoke
    loaded = kernel_gallery.load(out / "kernel_gallery.npz")
    np.testing.assert_array_equal(loaded["finite"]["mean"], result["finite"]["mean"])
    assert loaded["circle"]["labels"] == result["circle"]["labels"]
    assert len(kernel_gallery.plot(loaded, tmp_path)) == 2


def test_ensemble_covariance_chunks_and_specs():
    """Per-network results do not depend on the chunk size; specs with different parameters
    are refused."""
    x = kernel_gallery.circle(np.linspace(-np.pi, np.pi, 5))
    net = nets.mlp(8, 0, out_width=4, b_std=0.1)  # one Dense layer: cheap to compile
    key = jax.random.key(3)
    a = kernel_gallery.ensemble_covariance(net, x, 6, key, chunk=4, progress=False)
    b = kernel_gallery.ensemble_covariance(net, x, 6, key, chunk=8, progress=False)
    assert a.shape == (6, 5)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="identical"):
        kernel_gallery.ensemble_covariance([net, nets.mlp(8, 1)], x, 6, key)


def test_bad_size():
    with pytest.raises(ValueError, match="smoke"):
        kernel_gallery.run(size="medium")


def test_cli_unknown_id():
    proc = subprocess.run([sys.executable, "-m", "widelimits", "reproduce", "nonexistent"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "nonexistent" in proc.stderr
    for figure_id in REGISTRY:
        assert figure_id in proc.stderr


def test_cli_list(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for figure_id in REGISTRY:
        assert figure_id in listed
