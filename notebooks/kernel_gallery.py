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
# # Kernel gallery: infinite-width kernels on the unit circle
#
# Inputs on the unit circle, $x(\gamma) = (\cos\gamma, \sin\gamma)$, as in Jacot et al. 2018
# (Fig. 1). For MLPs with $L$ hidden layers in the NTK parameterization
# ($w_\mathrm{std} = \sqrt 2$, $b_\mathrm{std} = 0.1$) we plot
#
# 1. the infinite-width NNGP (Neal 1996; Lee et al. 2018) and NTK (Jacot et al. 2018)
#    $K(x(0), x(\gamma))$, normalised by $K(x(0), x(0))$, for several activations and depths;
# 2. the output covariance $\mathrm{Cov}[f(x(0)), f(x(\gamma))]$ of ensembles of random *finite*
#    depth-2 ReLU and erf networks of widths 64 and 1024 against the analytic NNGP, with
#    $\pm 2$ standard-error bars: the wide ensemble sits on the limit, the narrow one carries an
#    $O(1/\text{width})$ bias and scatters more.
#
# The computation lives in `widelimits.reproduce.kernel_gallery` (shared with
# `python -m widelimits reproduce kernel_gallery` and the tests). The environment variable
# `WIDELIMITS_SIZE` picks the size (`full`, `quick` — the default — or `smoke`) and
# `WIDELIMITS_OUT` the output folder (default `figures`).

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import kernel_gallery

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = kernel_gallery.run(size=size, out=out)

# %% [markdown]
# ## Figures

# %%
paths = kernel_gallery.plot(result, out)
for path in paths:
    display(Image(filename=path))

# %% [markdown]
# ## Finite width against the limit: z-scores
# $z = (\text{ensemble mean} - \text{NNGP}) / \text{standard error}$, largest $|z|$ over angles.

# %%
fin = result["finite"]
for a, label in enumerate(fin["labels"]):
    for w, width in enumerate(fin["widths"]):
        print(f"{label:>5}, width {width:>5}: max |z| = {abs(fin['z'][a, w]).max():.2f}")
