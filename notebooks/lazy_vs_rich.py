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
# # Lazy vs rich training (Chizat, Oyallon & Bach 2019)
#
# Train the centred, scaled model $\alpha\,[h(\theta) - h(\theta_0)]$ (`dynamics.Centered`) on
# the loss divided by $\alpha^2$ (gradient descent with learning rate $\eta/\alpha^2$) for a
# fixed number of steps.
# Theorem 2.3 of the paper: the parameters move by $O(1/\alpha)$, they stay $O(1/\alpha^2)$ from
# those of the linearised model, and the function-space gap to the linearised model is
# $O(1/\alpha)$; so the tangent kernel changes by $O(1/\alpha)$ — large $\alpha$ is lazy (kernel
# regime), small $\alpha$ rich (the kernel moves by $O(1)$).
#
# The computation lives in `widelimits.reproduce.lazy_vs_rich`. `WIDELIMITS_SIZE` picks the size
# (`full`, `quick` — the default — or `smoke`) and `WIDELIMITS_OUT` the output folder.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import lazy_vs_rich

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = lazy_vs_rich.run(size=size, out=out)

# %% [markdown]
# Fitted exponents over $\alpha \ge$ `alpha_fit` (theory: −1, −1, −1, −2):

# %%
for name, fit in result["fits"].items():
    print(f"{name:>14}: exponent {fit.exponent:+.4f} ± {fit.stderr:.4f}")

# %%
for path in lazy_vs_rich.plot(result, out):
    display(Image(filename=path))
