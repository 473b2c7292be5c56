"""Reproduced figures: one module per figure, shared by the CLI, the notebooks and the tests.

``REGISTRY`` maps a figure id to its module. Each module has
``run(size="full"|"quick"|"smoke", out="figures") -> dict`` (computes the numbers) and
``plot(result, out) -> list[str]`` (writes PNGs, returns their paths).
``python -m widelimits reproduce <id>`` runs one of them.
"""

from . import (
    beyond_iid as beyond_iid,
    catapult as catapult,
    cnn_kernels as cnn_kernels,
    criticality_vertex as criticality_vertex,
    dmft_deep as dmft_deep,
    dmft_two_layer as dmft_two_layer,
    edge_of_chaos as edge_of_chaos,
    grokking_lazy_rich as grokking_lazy_rich,
    kernel_gallery as kernel_gallery,
    kernel_width_scaling as kernel_width_scaling,
    lazy_vs_rich as lazy_vs_rich,
    linearized_training as linearized_training,
    ntk_convergence as ntk_convergence,
    ntk_function_dynamics as ntk_function_dynamics,
    output_kurtosis as output_kurtosis,
    resnet_depth_limit as resnet_depth_limit,
    sparse_activations as sparse_activations,
)
from ._common import SIZES as SIZES

REGISTRY = {
    "beyond_iid": beyond_iid,
    "catapult": catapult,
    "cnn_kernels": cnn_kernels,
    "criticality_vertex": criticality_vertex,
    "dmft_deep": dmft_deep,
    "dmft_two_layer": dmft_two_layer,
    "edge_of_chaos": edge_of_chaos,
    "grokking_lazy_rich": grokking_lazy_rich,
    "kernel_gallery": kernel_gallery,
    "kernel_width_scaling": kernel_width_scaling,
    "lazy_vs_rich": lazy_vs_rich,
    "linearized_training": linearized_training,
    "ntk_convergence": ntk_convergence,
    "ntk_function_dynamics": ntk_function_dynamics,
    "output_kurtosis": output_kurtosis,
    "resnet_depth_limit": resnet_depth_limit,
    "sparse_activations": sparse_activations,
}

__all__ = ["REGISTRY", "SIZES", "beyond_iid", "catapult", "cnn_kernels", "criticality_vertex",
           "dmft_deep", "dmft_two_layer", "edge_of_chaos", "get", "grokking_lazy_rich", "kernel_gallery",
           "kernel_width_scaling", "lazy_vs_rich", "linearized_training", "ntk_convergence",
           "ntk_function_dynamics", "output_kurtosis", "resnet_depth_limit", "sparse_activations"]


def get(figure_id: str):
    """The module registered as ``figure_id``; ``KeyError`` naming the known ids otherwise."""
    try:
        return REGISTRY[figure_id]
    except KeyError:
        raise KeyError(f"unknown figure id {figure_id!r}; known ids: "
                       f"{', '.join(sorted(REGISTRY))}") from None
