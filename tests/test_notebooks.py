"""Every notebook in notebooks/ (jupytext percent format) runs end to end at the smoke size.

Each notebook is converted with jupytext and executed with nbclient in a "python3" kernel whose
kernelspec is written here to launch *this* interpreter (the venv's python), with
``WIDELIMITS_SIZE=smoke`` and ``WIDELIMITS_OUT`` in a temporary folder; the test checks that
the kernel ran in this environment and that PNGs were written. The folder starts with the saved
smoke results of the notebook's reproduction (the ``smoke_results`` fixture, shared with that
reproduction's own tests, which check the computation): the notebook loads them, so the suite
does not compute each smoke reproduction twice. The kernel runs with ``JAX_ENABLE_X64=1``, as
the whole suite does (``conftest.py``): a result computed under another default precision would
be a different run, and is refused or recomputed.
"""

from __future__ import annotations

import json
import pathlib
import sys

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from ._repro import assert_png

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


def _kernel_manager(folder: pathlib.Path) -> AsyncKernelManager:
    """A manager for a "python3" kernel that runs ``sys.executable`` (not whatever ``python``
    is first on PATH)."""
    spec_dir = folder / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (widelimits tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm)


@pytest.mark.xdist_group("notebooks")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, smoke_results):
    out = tmp_path / "figures"
    smoke_results(path.stem, out)
    monkeypatch.setenv("WIDELIMITS_SIZE", "smoke")
    monkeypatch.setenv("WIDELIMITS_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_ENABLE_X64", "1")
    nb = jupytext.read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name}: no markdown intro"
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    km = _kernel_manager(tmp_path)
    client = NotebookClient(nb, km=km, kernel_name="python3",
                            timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:  # nbclient shuts down only kernels it created itself
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)

    prefix = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert prefix == sys.prefix, f"the kernel ran {prefix!r}, not this environment {sys.prefix!r}"
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{path.name} wrote no PNG into {out}"
    assert_png(*pngs)
