"""Shared test fixtures: run every test in float32 and float64 where it asks for ``dtype``."""

import fcntl
import os
import shutil

# Most of the suite's time is XLA compiling many small programs: compile them without the LLVM
# backend's optimisations (about a third faster on 2 CPU cores; results agree to round-off).
# WIDELIMITS_TEST_OPTIMIZED=1 tests the optimised build instead.
if os.environ.get("WIDELIMITS_TEST_OPTIMIZED") != "1":
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        "--xla_backend_optimization_level=0",
                                        "--xla_llvm_disable_expensive_passes=true"]).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)  # float64 available; float32 tests pass f32 arrays


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def rtol_for(dtype, f64=1e-10, f32=1e-4):
    """Relative tolerance matched to the precision under test."""
    return f64 if dtype == jnp.float64 else f32


# The golden-value generators import neural-tangents, which lives only in the pinned
# reference venv (make golden); they are scripts, not tests or doctests.
collect_ignore_glob = ["reference/*.py"]


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, worker_id):
    """``fetch(name, out)``: reproduction ``name`` run at the smoke size into folder ``out``.

    The smoke computation runs once per test session in a folder shared by the pytest-xdist
    workers (under a file lock, so the second asker waits and then loads); ``out`` receives a
    copy of its saved results (not its figures) and ``run("smoke", out)`` is returned, loaded
    from them. A reproduction's own tests and its notebook thus share one computation, and
    each still works on a folder of its own.
    """
    from widelimits.reproduce import REGISTRY

    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "smoke-results"
    shared.mkdir(exist_ok=True)

    def fetch(name, out):
        folder, done = shared / name, shared / f"{name}.done"
        with open(shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not done.exists():  # the first asker computes; the others only copy
                    REGISTRY[name].run("smoke", folder)
                    done.touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        out.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if f.is_file() and f.suffix != ".png":
                shutil.copy2(f, out / f.name)
        return REGISTRY[name].run("smoke", out)

    return fetch
