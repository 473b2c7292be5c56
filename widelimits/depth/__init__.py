"""Depth limits of residual networks: the infinite-width covariance ODE (Hayou & Yang 2023),
its finite-depth recursion, Monte Carlo of finite ResNets, and the fixed-width SDE (Hayou 2022)."""

from ._resnet import (
    resnet as resnet,
    resnet_covariance as resnet_covariance,
    resnet_covariance_recursion as resnet_covariance_recursion,
    sample_covariance as sample_covariance,
)
from ._sde import (
    linear_resnet_log_norm as linear_resnet_log_norm,
    linear_sde_log_norm as linear_sde_log_norm,
    sample_sde as sample_sde,
)

__all__ = ["linear_resnet_log_norm", "linear_sde_log_norm", "resnet", "resnet_covariance",
           "resnet_covariance_recursion", "sample_covariance", "sample_sde"]
