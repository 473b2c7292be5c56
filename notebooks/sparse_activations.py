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
# # Sparsity-inducing activations at the edge of chaos (Price et al. 2024)
#
# The shifted ReLU $\max(0, x-\tau)$ and soft thresholding $\mathrm{sign}(x)\max(0, |x|-\tau)$
# zero a large fraction of pre-activations. At their edge-of-chaos initialisation the variance
# map $V(q) = \sigma_w^2\,\mathbb{E}\,\phi(\sqrt q z)^2 + \sigma_b^2$ touches the diagonal at
# $q^*$ with slope 1 and stays above it: $q^*$ repels from above, so deep networks' variances
# blow up. Clipping the activation's magnitude at $m$ bends the map below the diagonal,
# $V'(q^*) < 1$: a stable fixed point again. Moments are computed exactly (truncated Gaussian
# formulas); the Hermite expansion's error for these kinked functions is printed below.
#
# The computation lives in `widelimits.reproduce.sparse_activations`; `WIDELIMITS_SIZE` and
# `WIDELIMITS_OUT` as in the other notebooks.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import sparse_activations

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = sparse_activations.run(size=size, out=out)

# %%
for i, name in enumerate(result["names"]):
    print(f"{name:10s} tau = {result['taus'][i]:.3f}: sigma_w^2 = {result['sw2'][i]:.4f}, "
          f"sigma_b^2 = {result['sb2'][i]:.4f}, V'(q*) = {result['slope'][i]:.4f}; "
          f"Hermite rel. error of E phi^2 = {result['hermite_error'][i]:.1e}")

# %%
for path in sparse_activations.plot(result, out):
    display(Image(filename=path))
