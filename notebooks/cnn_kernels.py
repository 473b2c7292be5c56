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
# # CNN kernels vs FC kernels on the digits (Novak et al. 2019; Arora et al. 2019; Shankar et al. 2020)
#
# Kernel regression on one-hot labels, $\hat y(x_*) = K_{*X}(K_{XX} + \lambda I)^{-1} Y$ with
# $\lambda = 10^{-4}\,\mathrm{tr}\,K_{XX}/n$, with the infinite-width NNGP and NTK
# (`kernels.analytic`) of a fully connected ReLU net on the flattened pixels, a CNN with a
# Flatten readout (the CNN-GP of Novak et al.), the same CNN with global average pooling
# (CNN-GAP) and the Myrtle-5 network of Shankar et al. (`nets.myrtle(5)`), on nested
# class-balanced training sets of the 8x8 digits shipped with the package
# (`datasets.digits()`). Finite CNN-GAP networks of a few widths, trained by gradient descent
# with `dynamics.train` (centred, NTK parameterization), are compared with the NTK after the
# same number of steps: their distance falls as width$^{-1/2}$.
#
# The literature's ordering on CIFAR-10 is CNN-GAP > CNN-flatten ≈ FC. The computation lives
# in `widelimits.reproduce.cnn_kernels` (shared with `python -m widelimits reproduce
# cnn_kernels [--quick] [--data FILE.npz --zca --flip]` and the tests). `WIDELIMITS_SIZE`
# picks the size (`full`: up to 1000 training images; `quick`, the default: up to 80;
# `smoke`) and `WIDELIMITS_OUT` the output folder (default `figures`). Finished pieces are
# saved and resumed.

# %%
import os

from IPython.display import Image, display

from widelimits.reproduce import cnn_kernels

size = os.environ.get("WIDELIMITS_SIZE", "quick")
out = os.environ.get("WIDELIMITS_OUT", "figures")
result = cnn_kernels.run(size=size, out=out)

# %% [markdown]
# Test accuracy per training-set size, then the finite networks at their training sizes:

# %%
print("n:", " ".join(f"{n:6d}" for n in result["train_sizes"]))
for name, acc in result["accuracy"].items():
    print(f"{name:18s}", " ".join(f"{a:6.3f}" for a in acc))
for width, fin in result["finite"].items():
    print(f"finite CNN-GAP, width {width}: accuracy {fin['acc']}, NTK after as many steps "
          f"{fin['acc_kernel_t']}, distance to it {fin['distance'].round(3)}")

# %% [markdown]
# The ordering at the largest training size (accuracy differences for NNGP and NTK, with the
# standard error of a difference on this test set):

# %%
for key, value in result["ordering"].items():
    print(f"{key}: {value}")

# %%
for path in cnn_kernels.plot(result, out):
    display(Image(filename=path))
