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
# # Trained functions vs the infinite-width Gaussian limit (Jacot et al. 2018, Fig. 2)
#
# The depth-4 ReLU network of the NTK-convergence figure (three hidden layers of width $n$, NTK
# parameterization, bias scale $\beta = 0.1$) is trained by full-batch gradient descent
# (learning rate 1) on four points of the unit circle with targets $f^*(x) = x_1 x_2$. At infinite
# width the trained function is a Gaussian process whose mean and covariance follow in closed
# form from the NNGP and NTK kernels (Lee et al. 2019, eqs. 15-16); we draw its 10 %, 50 % and
# 90 % quantiles and the trained functions $f(x(\gamma))$, $x(\gamma) = (\cos\gamma, \sin\gamma)$,
# of several initialisations for two widths.
#
# The computation lives in `widelimits.reproduce.ntk_function_dynamics` (shared with
# `python -m widelimits reproduce ntk_function_dynamics` and the tests). `WIDELIMITS_SIZE` picks
# the size (`full`: widths 50 and 1000, 10 initialisations, 1000 steps as in the paper; `quick`,
# the default: widths 50 and 400, 6 initialisations, 500 steps; `smoke`) and `WIDELIMITS_OUT`
# the output folder (default `figures`). Finished widths are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import ntk_function_dynamics

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = ntk_function_dynamics.run(size=size, out=out)

# %% [markdown]
# Fraction of the trained curves' points inside the limit's 10-90 % band (0.8 for the limit
# itself) and the final training losses:

# %%
for w, width in enumerate(result["widths"]):
    print(f"width {width:5d}: {100 * result['inside'][w]:.0f} % inside the band, final loss "
          f"{result['loss'][w, :, -1].mean():.2e} (limit ensemble: {result['limit_loss'][-1]:.2e})")

# %%
for path in ntk_function_dynamics.plot(result, out):
    display(Image(filename=path))
