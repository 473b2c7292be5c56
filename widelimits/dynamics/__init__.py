"""Training dynamics of wide networks, one idea per subpackage:

* ``lazy``: the kernel (lazy) limit in closed form — gradient flow and descent on the MSE loss,
  infinite ensembles and exact GP inference, the function-space flow of any loss (Jacot et al.
  2018; Lee et al. 2019).
* ``training``: jit/vmap training of finite networks with optax (``train``, ensembles,
  resumable checkpoints), their Taylor models (``linearize``, ``quadratic``) and the centred,
  scaled model of lazy training (``Centered``).
* ``dmft``: the feature-learning (mean-field / muP) limit, dynamical mean field theory of a
  ``nets.meanfield_mlp`` spec (Bordelon & Pehlevan 2022).

Every public name is re-exported here (``dynamics.train``, ``dynamics.gradient_descent_mse``,
``dynamics.dmft``, ...). The solvable paper models (grokking, uv) live in ``widelimits.models``.
"""

from .dmft import DMFTResult as DMFTResult, dmft as dmft, estimate_memory as dmft_memory
from .lazy import (
    EnsemblePredictor as EnsemblePredictor,
    Gaussian as Gaussian,
    MSEPredictor as MSEPredictor,
    cross_entropy as cross_entropy,
    gp_inference as gp_inference,
    gradient_descent_mse as gradient_descent_mse,
    gradient_descent_mse_ensemble as gradient_descent_mse_ensemble,
    gradient_flow as gradient_flow,
    max_learning_rate as max_learning_rate,
    mse as mse,
)
from .training import (
    Centered as Centered,
    Linearized as Linearized,
    Quadratic as Quadratic,
    TrainResult as TrainResult,
    linearize as linearize,
    quadratic as quadratic,
    train as train,
)

__all__ = [
    # lazy: closed-form kernel-limit dynamics
    "EnsemblePredictor", "Gaussian", "MSEPredictor", "cross_entropy", "gp_inference",
    "gradient_descent_mse", "gradient_descent_mse_ensemble", "gradient_flow",
    "max_learning_rate", "mse",
    # training: finite networks and their Taylor models
    "Centered", "Linearized", "Quadratic", "TrainResult", "linearize", "quadratic", "train",
    # dmft: the feature-learning limit
    "DMFTResult", "dmft", "dmft_memory",
]
