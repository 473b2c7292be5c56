"""Solvable models of the papers this library reproduces, one public module each:

* ``models.grokking``: the two-layer polynomial network of the grokking study (Kumar, Bordelon,
  Gershman & Pehlevan 2024), whose gradient descent closes exactly on two sufficient statistics.
* ``models.uv``: the two-layer linear "uv" model of the catapult mechanism (Lewkowycz et al.
  2020), whose gradient descent closes on two numbers.

>>> from widelimits import models
>>> sorted(models.__all__)
['grokking', 'uv']
"""

from . import grokking as grokking, uv as uv

__all__ = ["grokking", "uv"]
