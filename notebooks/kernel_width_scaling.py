# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Kernel width scaling: $\|K_n - K_\infty\|_F / \|K_\infty\|_F \propto n^{-1/2}$
#
# Finite-width NNGP and NTK of ReLU MLPs fluctuate around their infinite-width limits; the
# relative Frobenius deviation decays as $n^{-1/2}$. `widelimits.compare.kernel_convergence`
# measures it over widths and seeds and fits the exponent with its standard error. The
# computation lives in `widelimits.reproduce.kernel_width_scaling`; `WIDELIMITS_SIZE`
# (`full`, `quick` — the default — or `smoke`) and `WIDELIMITS_OUT` (default `figures`) as in
# the other notebooks.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import kernel_width_scaling

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = kernel_width_scaling.run(size=size, out=out)

# %%
for depth, res in zip(result["depths"], result["results"], strict=True):
    for kind, fit in res.fits.items():
        print(f"depth {depth}, {kind}: exponent {fit.exponent:.3f} ± {fit.stderr:.3f}")

# %%
for path in kernel_width_scaling.plot(result, out):
    display(Image(filename=path))
