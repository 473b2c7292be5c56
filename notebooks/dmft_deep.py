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
# # Deep mean-field networks vs their DMFT (Bordelon & Pehlevan 2022)
#
# Depth-$L$ mean-field (muP) MLPs, $h^1 = W^0 x/\sqrt{D}$, $h^{l+1} = W^l\phi(h^l)/\sqrt{N}$,
# $f = w\cdot\phi(h^L)/(\gamma_0 N)$ (`nets.meanfield_mlp`), trained by full-batch gradient
# descent with learning rate $\eta\gamma_0^2 N$, at widths $N = 2 \dots 2000$, against the
# $N\to\infty$ limit (`dynamics.dmft`): (a) $\phi(h) = \tanh(0.8h)/0.8$, $L = 3$, with the sampled
# DMFT including the response functions $A, B$ (exact per-sample Jacobians, whose cost grows as
# $(TP)^3$: the full size is the paper's $P = 10$, $T = 100$, the quick one smaller), drawn next
# to the gradient-independence approximation ($A = B = 0$), which misses the networks' loss;
# (b) deep linear networks with the exact closed-form operator DMFT ($L = 5$ in the full size).
# The final per-layer feature kernels of the networks (`kernels.feature_kernels`) align with the
# DMFT's as $N$ grows (`compare.alignment`, the cosine similarity of the kernel matrices).
#
# The computation lives in `widelimits.reproduce.dmft_deep`. `WIDELIMITS_SIZE` picks the size
# (`full`, `quick` (default), `smoke`) and `WIDELIMITS_OUT` the output folder.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import dmft_deep

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = dmft_deep.run(size=size, out=out)

# %% [markdown]
# Alignment of the final feature kernels with the DMFT's (mean over seeds and layers), and the
# gap between the networks' and the DMFT's final loss, per width:

# %%
for e in dmft_deep.EXPERIMENTS:
    for i, w in enumerate(result["widths"]):
        print(f"{e:6s} N = {w:5d}: alignment {result[e + '_align'][i].mean():.4f}, "
              f"final-loss gap {result[e + '_loss_gap'][i].mean():.4f}")

# %%
for path in dmft_deep.plot(result, out):
    display(Image(filename=path))
