"""widelimits: infinite-width and kernel theory of neural networks in JAX.

``from widelimits import nets, kernels`` — define a network once as a spec; get its finite
version (``net.init``/``net.apply``) and its infinite-width NNGP/NTK (``kernels.analytic``).
"""

from . import kernels as kernels, nets as nets

__version__ = "0.1.0"
__all__ = ["kernels", "nets", "__version__"]
