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
# # Edge of chaos (Schoenholz et al. 2017, Figs. 1 and 5)
#
# Mean-field signal propagation in deep tanh networks with weight and bias variances
# $\sigma_w^2, \sigma_b^2$: the length map has a fixed point $q^*$, and the slope
# $\chi_1 = \sigma_w^2 \mathbb{E}\,\phi'(\sqrt{q^*} z)^2$ of the correlation map at $c = 1$
# separates the ordered phase ($\chi_1 < 1$: all inputs become correlated) from the chaotic one
# ($\chi_1 > 1$). Correlations approach their fixed point over $\xi_c = -1/\ln\chi_c$ layers,
# which diverges on the edge-of-chaos curve. Networks train only up to depths of a few
# $\xi_c$ (about $6\xi_c$ in the paper); we check this on a synthetic binary task.
#
# The computation lives in `widelimits.reproduce.edge_of_chaos` (shared with
# `python -m widelimits reproduce edge_of_chaos` and the tests); `WIDELIMITS_SIZE` picks the
# size (`full`, `quick` (default), `smoke`) and `WIDELIMITS_OUT` the output folder.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import edge_of_chaos

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = edge_of_chaos.run(size=size, out=out)

# %% [markdown]
# The edge-of-chaos curve $\sigma_w^2(\sigma_b^2)$ and the trainable depth against $\xi_c$:

# %%
for sb2, sw2 in list(zip(result["eoc_sb2"], result["eoc_sw2"], strict=True))[::10]:
    print(f"sigma_b^2 = {sb2:.3f}: edge of chaos at sigma_w^2 = {sw2:.4f}")
for sw2, xi, depth in zip(result["sw2"], result["xi_c_train"], result["trainable_depth"],
                          strict=True):
    print(f"sigma_w^2 = {sw2:.2f}: xi_c = {xi:7.2f}, 6 xi_c = {6 * xi:7.1f}, "
          f"deepest trained depth = {depth}")

# %%
for path in edge_of_chaos.plot(result, out):
    display(Image(filename=path))
