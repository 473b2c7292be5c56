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
# # Beyond iid weights (Nait Saada, Naderi & Tanner 2024; Day, Kahn & Roberts 2023)
#
# Orthogonal, low-rank (rank $n/4$) and structured-sparse (density $1/4$) weight ensembles,
# scaled so that $E W_{ij}^2 = \sigma_w^2 / n_{in}$, share the Gaussian NNGP: the empirical
# NNGP (and NTK) of each converges with width to the single analytic limit
# `kernels.analytic`, which ignores the ensemble. Their finite-width fluctuations differ: for
# a deep critical tanh network we plot $n\,\mathrm{Var}(\hat K_l)/E[\hat K_l]^2$ against
# depth, with the Gaussian leading-order prediction $2 + V_l/K_l^2$ (the four-point vertex
# recursion of Roberts, Yaida & Hanin, `finite.vertex_recursion`).
#
# The computation lives in `widelimits.reproduce.beyond_iid` (shared with
# `python -m widelimits reproduce beyond_iid` and the tests). `WIDELIMITS_SIZE` picks the size
# (`full`, `quick` (the default), `smoke`) and `WIDELIMITS_OUT` the output folder (default
# `figures`). Finished pieces are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import beyond_iid

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = beyond_iid.run(size=size, out=out)

# %% [markdown]
# Fitted exponents of the per-network deviation from the limit (≈ -1/2 for every ensemble):

# %%
for (ens, kind), fit in result["fits"].items():
    print(f"{ens:10s} {kind}: {fit.exponent:+.3f} ± {fit.stderr:.3f}")
for ens, ratio in result["fl_ratio"].items():
    print(f"{ens:10s} n Var(K)/K² at layers 1, mid, last: {ratio[0]:.2f}, "
          f"{ratio[len(ratio) // 2]:.2f}, {ratio[-1]:.2f}")

# %%
for path in beyond_iid.plot(result, out):
    display(Image(filename=path))
