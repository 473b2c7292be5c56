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
# # ResNet depth limits (Hayou & Yang 2023; Hayou 2022)
#
# ReLU ResNets $x_{l+1} = x_l + L^{-1/2} W_l \phi(x_l)$ with $W_{ij} \sim N(0, 1/n)$. Their
# covariance approaches the solution of the ODE $dq/dt = E_{N(0, q_t)}[\phi(u)\phi(v)]$
# whichever of the width $n$ and depth $L$ grows first; at fixed width the depth limit is an
# SDE, and for a linear $\phi$ the squared norm is log-normal,
# $\log(\|X_1\|^2/\|X_0\|^2) \sim N(1 - 2/n, 4/n)$.
#
# The computation lives in `widelimits.reproduce.resnet_depth_limit` (shared with
# `python -m widelimits reproduce resnet_depth_limit` and the tests). `WIDELIMITS_SIZE` picks the size
# (`full`, `quick` (the default), `smoke`) and `WIDELIMITS_OUT` the output folder (default
# `figures`). Finished pieces are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import resnet_depth_limit

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = resnet_depth_limit.run(size=size, out=out)

# %% [markdown]
# Rate of the infinite-width depth-L recursion, and of the finite networks' fluctuations:

# %%
fit, wfit = result["recursion_fit"], result["width_fit"]
print(f"recursion error ~ L^({fit.exponent:.3f} ± {fit.stderr:.3f})")
print(f"per-network deviation ~ n^({wfit.exponent:.3f} ± {wfit.stderr:.3f})")
for n, (m, v) in result["sde_exact"].items():
    s = result["sde"][n]
    print(f"width {n}: log-norm mean {s.mean():.3f} (exact {m:.3f}), variance {s.var():.3f} "
          f"(exact {v:.3f})")

# %%
for path in resnet_depth_limit.plot(result, out):
    display(Image(filename=path))
