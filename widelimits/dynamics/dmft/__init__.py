"""The feature-learning (mean-field / muP) limit of gradient descent: dynamical mean field theory
(Bordelon & Pehlevan 2022, "Self-consistent dynamical field theory of kernel evolution in wide
neural networks").

``dmft(net, x, y, eta=..., steps=..., key=...)`` solves the DMFT of the mean-field spec
``net = nets.meanfield_mlp(width, depth, activation, gamma0)``; ``estimate_memory`` (exported as
``dynamics.dmft_memory``) predicts its peak memory. Inside: the entry point checks the arguments
and reads the spec (a registered view), then calls one solver (two-layer causal sweep, deep
sampled single-site processes with response functions, deep linear operator equations), which
share the result type and the continuation in time.
"""

from ._common import DMFTResult as DMFTResult
from ._dmft import dmft as dmft, estimate_memory as estimate_memory

__all__ = ["DMFTResult", "dmft", "estimate_memory"]
