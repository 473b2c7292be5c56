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
# # The catapult mechanism (Lewkowycz et al. 2020; Zhu et al. 2022)
#
# Gradient descent on $L = \frac{1}{2m}\sum_i (f(x_i) - y_i)^2$ with learning rate $\eta$. With
# $\lambda_0 = \lambda_{\max}(\Theta_0)/m$ (top eigenvalue of the empirical NTK on the $m$
# training inputs) the linearised model is stable iff $\eta\lambda_0 < 2$. Wide nonlinear models
# show three phases: **lazy** ($\eta\lambda_0 < 2$: the loss decreases monotonically and the
# kernel stays put), **catapult** ($2 < \eta\lambda_0 < 4$ for the uv model
# $f(x) = v^\top u x/\sqrt{n}$ and for the quadratic model of a ReLU network: the loss spikes,
# the kernel's top eigenvalue drops until $\eta\lambda < 2$, then training converges) and
# **divergence** (beyond 4; later for the ReLU network itself). The linearised model, whose
# kernel is constant, diverges as soon as $\eta\lambda_0 > 2$.
#
# The computation lives in `widelimits.reproduce.catapult` (shared with
# `python -m widelimits reproduce catapult` and the tests). `WIDELIMITS_SIZE` picks the size
# (`full`, `quick` — the default — or `smoke`) and `WIDELIMITS_OUT` the output folder.
# Finished models are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import catapult

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = catapult.run(size=size, out=out)

# %% [markdown]
# The phase found at each $\eta\lambda_0$ (L = lazy, C = catapult, D = diverged,
# U = unconverged within the horizon) and the largest $\eta\lambda_0$ that still converged:

# %%
for model in catapult.MODELS:
    r = result[model]
    phases = "".join(str(p)[0].upper() for p in r["phase"])
    ok = r["rates"][r["phase"] != "diverged"]
    print(f"{model:>11}: {phases}   largest convergent ηλ0 = {ok.max():g}")

# %%
for path in catapult.plot(result, out):
    display(Image(filename=path))
