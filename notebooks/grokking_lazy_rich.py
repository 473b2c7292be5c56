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
# # Grokking as the transition from lazy to rich training (Kumar et al. 2024, Figs. 1b, 3a)
#
# A two-layer network $f(x) = \frac{\alpha}{N}\sum_i \phi(w_i\cdot x)$ with
# $\phi(h) = h + \frac{\epsilon}{2}h^2$ and readouts fixed to one, trained centred
# ($f(W) - f(W_0)$) by full-batch gradient descent with learning rate $\eta_0 N/\alpha^2$ on
# the target $y = \frac12(\beta_*\cdot x)^2$, $x \sim \mathcal N(0, I/D)$. The function depends
# on the weights only through $\bar w = \langle w_i\rangle$ and $M = \langle w_i w_i^\top\rangle$:
# $f(x) = \alpha\,\bar w\cdot x + \frac{\alpha\epsilon}{2} x^\top M x$, and gradient descent closes
# exactly on $(\bar w, M)$ (`widelimits.models.grokking.gradient_descent`).
#
# The output scale $\alpha$ sets the speed of feature learning ($\propto 1/\alpha$): the network
# first fits the training set with its initial features (lazy, like its linearisation), and
# generalises only once $M$ aligns with $\beta_*\beta_*^\top$ (rich). The delay
# $t_\text{test} - t_\text{train}$ (first steps with error below 0.1) grows with $\alpha$.
#
# The computation lives in `widelimits.reproduce.grokking_lazy_rich` (shared with
# `python -m widelimits reproduce grokking_lazy_rich` and the tests). `WIDELIMITS_SIZE` picks
# the size (`full`: the paper's D = 100, N = 500; `quick`, the default: D = 40, N = 200;
# `smoke`) and `WIDELIMITS_OUT` the output folder (default `figures`). Finished runs are saved
# and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import grokking_lazy_rich

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = grokking_lazy_rich.run(size=size, out=out)

# %% [markdown]
# First steps at which the train and test errors fall below 0.1, and the grokking amount:

# %%
f1, sw = result["fig1"], result["sweep"]
print(f"Fig. 1b (alpha = 1): t_train = {f1['t_train']:.0f}, t_test = {f1['t_test']:.0f}; "
      f"initial-NTK regression test error {float(f1['krr_test']):.3f}")
for a, tr, te, g in zip(sw["alphas"], sw["t_train"], sw["t_test"], sw["grokking"], strict=True):
    print(f"alpha = {a:8.4g}: t_train = {tr:7.0f}, t_test = {te:7.0f}, grokking = {g:7.0f}")

# %%
for path in grokking_lazy_rich.plot(result, out):
    display(Image(filename=path))
