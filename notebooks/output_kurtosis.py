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
# # Output kurtosis at finite width (Antognini 2019)
#
# A one-hidden-layer network $f(x) = \frac{1}{\sqrt N}\sum_{i=1}^N v_i\,\phi(u_i\cdot x + b_i)$
# with Gaussian weights is a sum of $N$ iid centred terms, so its excess kurtosis is exactly
# $$\gamma_4 = \frac{1}{N}\Big[\frac{E v^4}{(E v^2)^2}\frac{E h^4}{(E h^2)^2} - 3\Big]
#   = \frac{3}{N}\Big(\frac{E h^4}{(E h^2)^2} - 1\Big)\ \text{(Gaussian } v).$$
# We draw large ensembles of networks (`finite.output_samples`) for ReLU, tanh and GELU at widths
# $N = 2 \dots 128$ and compare their sample kurtosis with the formula, and the histogram of the
# standardised output at a small width with the Gaussian and Edgeworth densities
# $\varphi(y)[1 + \gamma_4 He_4(y)/24 + \dots]$.
#
# The computation lives in `widelimits.reproduce.output_kurtosis` (shared with
# `python -m widelimits reproduce output_kurtosis` and the tests). `WIDELIMITS_SIZE` picks the
# size (`full`: $10^6$ networks per point; `quick`, the default; `smoke`) and `WIDELIMITS_OUT` the
# output folder (default `figures`). Finished points are saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import output_kurtosis

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = output_kurtosis.run(size=size, out=out)

# %% [markdown]
# Sample vs exact excess kurtosis (z = difference / standard error) and the fitted constant of
# the $1/N$ law:

# %%
for a, act in enumerate(result["activations"]):
    for w, width in enumerate(result["widths"]):
        print(f"{act:5s} N = {width:4d}: {result['kurtosis'][a, w]:8.4f} ± "
              f"{result['stderr'][a, w]:.4f}  exact {result['exact'][a, w]:8.4f}  "
              f"z = {result['z'][a, w]:+.2f}")
    slope, se, exact = result["slope"][act]
    print(f"  N x kurtosis: fit {slope:.3f} ± {se:.3f}, exact {exact:.3f}")

# %%
for path in output_kurtosis.plot(result, out):
    display(Image(filename=path))
