"""Training of finite networks: full-batch training with an optax optimizer as compiled chunks of
``lax.scan`` (``train``: ensembles of members in one program, empirical NTKs along the way,
resumable checkpoints), and the Taylor models of a network around its initial parameters
(``linearize``, Lee et al. 2019, eq. 5; ``quadratic``, Zhu et al. 2022, eq. 3) and the centred,
scaled model of lazy training (``Centered``, Chizat, Oyallon & Bach 2019) that ``train`` runs like
any network.
"""

from ._centered import Centered as Centered
from ._taylor import (
    Linearized as Linearized,
    Quadratic as Quadratic,
    linearize as linearize,
    quadratic as quadratic,
)
from ._train import TrainResult as TrainResult, train as train

__all__ = ["Centered", "Linearized", "Quadratic", "TrainResult", "linearize", "quadratic", "train"]
