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
# # NTK convergence (Jacot et al. 2018, Fig. 1)
#
# A depth-4 ReLU network ($L = 4$: three hidden layers of width $n$), NTK parameterization,
# bias scale $\beta = 0.1$. For two widths and several initialisations we compute the empirical
# NTK $\Theta(x_0, x(\gamma))$ with $x_0 = (1, 0)$ and $x(\gamma) = (\cos\gamma, \sin\gamma)$,
# at initialisation and after 200 steps of gradient descent (learning rate 1; `dynamics.train`
# with `optax.sgd`) on the least-squares cost with target $f^*(x) = x_1 x_2$ on four points of
# the circle, against the analytic infinite-width NTK. The wide network's kernels hug the limit
# and barely move during training; the narrow network's scatter and move.
#
# The computation lives in `widelimits.reproduce.ntk_convergence` (shared with
# `python -m widelimits reproduce ntk_convergence` and the tests). `WIDELIMITS_SIZE` picks the
# size (`full`: widths 500 and 10000 as in the paper; `quick`, the default: widths 100 and
# 1000; `smoke`) and `WIDELIMITS_OUT` the output folder (default `figures`). Finished widths are
# saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import ntk_convergence

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = ntk_convergence.run(size=size, out=out)

# %% [markdown]
# Relative deviation from the limit (at $t = 0$ and after training) and relative movement of
# the kernel during training, averaged over initialisations:

# %%
for w, width in enumerate(result["widths"]):
    dev0, dev_t = result["deviation"][w]
    print(f"width {width:6d}: deviation {dev0:.3f} -> {dev_t:.3f}, "
          f"moved {result['movement'][w]:.4f}")

# %%
for path in ntk_convergence.plot(result, out):
    display(Image(filename=path))
