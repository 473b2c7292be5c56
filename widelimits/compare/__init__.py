"""Comparisons of finite-width runs with their infinite-width limits: deviations vs width and
fitted power laws, kernel alignment."""

from ._alignment import alignment as alignment
from ._convergence import (
    KernelConvergence as KernelConvergence,
    PowerLaw as PowerLaw,
    fit_power_law as fit_power_law,
    kernel_convergence as kernel_convergence,
    plot_kernel_convergence as plot_kernel_convergence,
)
from ._trajectories import (
    Trajectories as Trajectories,
    plot_trajectories as plot_trajectories,
    trajectories as trajectories,
)

__all__ = ["alignment"]
__all__ += ["KernelConvergence", "PowerLaw", "fit_power_law", "kernel_convergence",
            "plot_kernel_convergence"]
__all__ += ["Trajectories", "plot_trajectories", "trajectories"]
