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
# # DMFT of a two-layer ReLU network vs wide networks (Bordelon & Pehlevan 2022)
#
# A two-layer ReLU network in the mean-field (muP) parameterization,
# $h = W^0 x/\sqrt{D}$, $f = w\cdot\phi(h)/(\gamma_0 N)$, all weights $\mathcal N(0, 1)$
# (`nets.meanfield_mlp`), trained by full-batch gradient descent on
# $L = \frac12 \langle (f_\mu - y_\mu)^2\rangle_\mu$ with learning rate $\eta\gamma_0^2 N$
# (`nets.meanfield_learning_rate`). As $N \to \infty$ its training follows the dynamical mean
# field theory (`dynamics.dmft`); $\gamma_0$ sets how far the features move. $P = 25$ Gaussian
# inputs in $D = 40$ dimensions with a random linear teacher $y = \beta\cdot x/\sqrt{D}$,
# $T = 200$ steps of $\eta = 0.075$, $\gamma_0 \in \{0.2, 1, 2, 3\}$.
#
# The computation lives in `widelimits.reproduce.dmft_two_layer` (shared with
# `python -m widelimits reproduce dmft_two_layer` and the tests). `WIDELIMITS_SIZE` picks the
# size (`full`: $N = 3000$ and 2000 DMFT samples as in the paper; `quick`, the default:
# $N = 1000$; `smoke`) and `WIDELIMITS_OUT` the output folder (default `figures`). Finished
# $\gamma_0$ values are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import dmft_two_layer

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = dmft_two_layer.run(size=size, out=out)

# %% [markdown]
# Final training loss (DMFT and networks, mean over seeds), relative change of the feature
# kernel $\|\Phi(T,T) - \Phi(0,0)\|_F / \|\Phi(0,0)\|_F$ (the networks' kernels from
# `kernels.feature_kernels`), and the kernel alignment (`compare.alignment`, the cosine
# similarity of Cristianini et al. 2001) between the DMFT's and the networks' final kernels:

# %%
for i, g in enumerate(result["gammas"]):
    print(f"gamma0 = {g:3.1f}: loss DMFT {result['dmft_loss'][i, -1]:.4f}, "
          f"networks {result['net_loss'][i, :, -1].mean():.4f}; kernel change DMFT "
          f"{result['change_dmft'][i]:.3f}, networks {result['change_net'][i].mean():.3f}; "
          f"alignment {result['align_dmft_net'][i].mean():.4f}")

# %%
for path in dmft_two_layer.plot(result, out):
    display(Image(filename=path))
