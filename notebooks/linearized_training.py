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
# # Wide networks evolve as linear models (Lee et al. 2019)
#
# An erf MLP with two hidden layers (NTK parameterization) is trained by full-batch gradient
# descent on a small synthetic regression set. Each initialisation is trained three ways: the
# network, its linearisation $f_{\rm lin}(\theta) = f(\theta_0) + J(\theta_0)(\theta - \theta_0)$ at
# the same initialisation, and the infinite-width closed form (analytic NTK) started from the
# same initial outputs. The network approaches its linearisation as $N^{-1}$ (smooth activation,
# fixed training time; Lee et al. prove $O(N^{-1/2})$) and the infinite-width limit as
# $N^{-1/2}$ (the fluctuation of the initial NTK).
#
# The computation lives in `widelimits.reproduce.linearized_training` (shared with
# `python -m widelimits reproduce linearized_training` and the tests). `WIDELIMITS_SIZE` picks
# the size (`full`: widths 64 to 2048; `quick`, the default: 64 to 512; `smoke`) and
# `WIDELIMITS_OUT` the output folder (default `figures`). Finished widths are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import linearized_training

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = linearized_training.run(size=size, out=out)

# %% [markdown]
# Relative gaps at the end of training (mean over initialisations) and the fitted exponents:

# %%
for w, width in enumerate(result["widths"]):
    print(f"width {width:5d}: |f_net - f_lin| / |f_lin| = {result['gap_lin'][w].mean():.2e}, "
          f"|f_net - f_inf| / |f_inf| = {result['gap_limit'][w].mean():.2e}")
for name in ("fit_lin", "fit_limit"):
    fit = result[name]
    print(f"{name}: exponent {fit.exponent:.2f} +- {fit.stderr:.2f}")

# %%
for path in linearized_training.plot(result, out):
    display(Image(filename=path))
