"""Training dynamics in the kernel (lazy) limit: closed-form gradient flow and descent on the MSE
loss (``gradient_descent_mse``), infinite ensembles and exact GP inference
(``gradient_descent_mse_ensemble``, ``gp_inference``), the function-space flow of any loss
(``gradient_flow``) and the losses in the normalisation they share (``mse``, ``cross_entropy``).

Jacot et al. 2018 ("Neural tangent kernel"); Lee et al. 2019 ("Wide neural networks of any depth
evolve as linear models under gradient descent"). Conventions (loss ``½ Σ (f − Y)² / Y.size``,
time in steps of size η, ``diag_reg`` in absolute units) are stated in
:func:`gradient_descent_mse`'s module and shared by every function here.
"""

from ._ensemble import (
    EnsemblePredictor as EnsemblePredictor,
    Gaussian as Gaussian,
    gp_inference as gp_inference,
    gradient_descent_mse_ensemble as gradient_descent_mse_ensemble,
)
from ._function_space import gradient_flow as gradient_flow
from ._gradient_flow import (
    MSEPredictor as MSEPredictor,
    gradient_descent_mse as gradient_descent_mse,
    max_learning_rate as max_learning_rate,
)
from ._losses import cross_entropy as cross_entropy, mse as mse

__all__ = ["EnsemblePredictor", "Gaussian", "MSEPredictor", "cross_entropy", "gp_inference",
           "gradient_descent_mse", "gradient_descent_mse_ensemble", "gradient_flow",
           "max_learning_rate", "mse"]
