"""widelimits: infinite-width and kernel theory of neural networks in JAX.

``from widelimits import nets, kernels, dynamics, compare`` — define a network once as a spec;
get its finite version (``net.init``/``net.apply``), its infinite-width NNGP/NTK
(``kernels.analytic``), its training dynamics in the kernel and feature-learning limits
(``dynamics``) and comparisons of finite widths with those limits (``compare``). ``signal``
(signal propagation, criticality), ``finite`` (finite-width output distributions) and
``depth`` (residual depth limits) hold the depth and 1/n theory; ``models`` holds the solvable
models of the reproduced papers (grokking, uv).
"""

from . import (
    compare as compare,
    datasets as datasets,
    depth as depth,
    dynamics as dynamics,
    finite as finite,
    kernels as kernels,
    models as models,
    nets as nets,
    signal as signal,
)

__version__ = "0.4.0"
__all__ = ["compare", "datasets", "depth", "dynamics", "finite", "kernels", "models", "nets", "signal",
           "__version__"]
