"""Training dynamics in the infinite-width limits (kernel gradient flow, DMFT) and jit/vmap
simulation of finite networks. This subpackage is empty in 0.1.0; see the CHANGELOG."""

__all__: list[str] = []

# Kernel-limit training dynamics: closed forms, infinite ensembles, function-space flow.
from ._ensemble import (  # noqa: E402
    EnsemblePredictor as EnsemblePredictor,
    Gaussian as Gaussian,
    gp_inference as gp_inference,
    gradient_descent_mse_ensemble as gradient_descent_mse_ensemble,
)
from ._function_space import gradient_flow as gradient_flow  # noqa: E402
from ._gradient_flow import (  # noqa: E402
    MSEPredictor as MSEPredictor,
    gradient_descent_mse as gradient_descent_mse,
    max_learning_rate as max_learning_rate,
)
from ._losses import cross_entropy as cross_entropy, mse as mse  # noqa: E402

__all__ += ["EnsemblePredictor", "Gaussian", "MSEPredictor", "cross_entropy", "gp_inference",
            "gradient_descent_mse", "gradient_descent_mse_ensemble", "gradient_flow",
            "max_learning_rate", "mse"]

# Finite networks: linearised / quadratic models and compiled (ensemble) training.
from ._taylor import (  # noqa: E402
    Linearized as Linearized,
    Quadratic as Quadratic,
    linearize as linearize,
    quadratic as quadratic,
)
from ._train import TrainResult as TrainResult, train as train  # noqa: E402

__all__ += ["Linearized", "Quadratic", "TrainResult", "linearize", "quadratic", "train"]

# Solvable toy model of the catapult mechanism (Lewkowycz et al. 2020).
from ._toy_models import (  # noqa: E402
    uv_apply as uv_apply,
    uv_init as uv_init,
    uv_ntk as uv_ntk,
    uv_reduced_dynamics as uv_reduced_dynamics,
)

__all__ += ["uv_apply", "uv_init", "uv_ntk", "uv_reduced_dynamics"]

# Polynomial two-layer network of the grokking (lazy -> rich) study (Kumar et al. 2024).
from ._grokking import (  # noqa: E402
    GrokRun as GrokRun,
    GrokStats as GrokStats,
    grok_apply as grok_apply,
    grok_gd as grok_gd,
    grok_ntk as grok_ntk,
    grok_population_mse as grok_population_mse,
    grok_stats as grok_stats,
    grok_stats_apply as grok_stats_apply,
    grok_target as grok_target,
)

__all__ += ["GrokRun", "GrokStats", "grok_apply", "grok_gd", "grok_ntk", "grok_population_mse",
            "grok_stats", "grok_stats_apply", "grok_target"]

# Feature-learning (mean-field / muP) limit: dynamical mean field theory.
from ._dmft import (  # noqa: E402
    DMFTResult as DMFTResult,
    dmft as dmft,
    estimate_memory as dmft_memory,
)

__all__ += ["DMFTResult", "dmft", "dmft_memory"]
