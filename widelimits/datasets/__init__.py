"""Small data sets shipped with the package and the image preprocessing of the kernel papers.

* ``digits()``: the 1797 8x8 handwritten digits of scikit-learn's ``load_digits`` (UCI "Optical
  Recognition of Handwritten Digits", test set; CC BY 4.0), as channels-last images in [0, 1].
* ``zca_whiten``, ``flip_augment``: ZCA whitening and horizontal-flip augmentation as in
  Shankar et al. 2020, "Neural kernels without tangents".

>>> from widelimits import datasets
>>> sorted(datasets.__all__)
['digits', 'flip_augment', 'zca_whiten']
"""

from ._digits import digits as digits
from ._preprocess import flip_augment as flip_augment, zca_whiten as zca_whiten

__all__ = ["digits", "flip_augment", "zca_whiten"]
