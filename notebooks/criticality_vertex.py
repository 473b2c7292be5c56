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
# # Depth-to-width ratio and the four-point vertex (Roberts, Yaida & Hanin 2022)
#
# For an MLP with $\mathrm{Var}\,W = C_W/n$, $\mathrm{Var}\,b = C_b$, a unit of layer $l$ has
# kernel $K^{(l+1)} = C_b + C_W\langle\sigma^2\rangle_{K^{(l)}}$ and excess kurtosis
# $3V^{(l)}/(n K^{(l)2}) + O(1/n^2)$ with the four-point vertex
# $V^{(l+1)} = \chi_\parallel^2 V^{(l)} + C_W^2[\langle\sigma^4\rangle - \langle\sigma^2\rangle^2]$,
# $V^{(1)} = 0$, $\chi_\parallel = dK^{(l+1)}/dK^{(l)}$. At criticality the deviation from the
# Gaussian process grows like depth/width: ReLU ($C_W = 2$) has $V/K^2 = 5(l-1)$ (and the exact
# finite-width law $3(1+5/n)^{l-1} - 3$), tanh ($C_W = 1$) has $V/(K^2 l) \to 2/3$.
#
# The computation lives in `widelimits.reproduce.criticality_vertex`. `WIDELIMITS_SIZE` picks
# the size (`full`: $10^6$ networks per width; `quick`, the default; `smoke`) and
# `WIDELIMITS_OUT` the output folder. Finished ensembles are saved and resumed.

# %%
import os

import numpy as np
from IPython.display import Image, display

from widelimits.reproduce import criticality_vertex

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = criticality_vertex.run(size=size, out=out)

# %% [markdown]
# Initial slope of the excess kurtosis in $x = (l-1)/n$ (ReLU, expected 15) or $x = l/n$ (tanh,
# compared with the same fit of the recursion's values), and the largest |z| per width against
# ReLU's exact law / tanh's recursion:

# %%
for act, (a, se, a_rec) in result["slopes"].items():
    print(f"{act}: slope {a:.3f} ± {se:.3f} (same fit to the prediction: {a_rec:.3f})")
    for width, r in sorted(result["results"][act].items()):
        print(f"  n = {width:4d}: max |z| over layers = {np.max(np.abs(r['z'])):.2f}")

# %%
for path in criticality_vertex.plot(result, out):
    display(Image(filename=path))
