"""Bad input gets a clear ValueError/TypeError naming the argument, the value and the expectation."""

import jax.numpy as jnp
import numpy as np
import pytest

from widelimits import kernels, nets

X = np.random.default_rng(0).normal(size=(4, 3))
NET = nets.mlp(8, 2)


@pytest.mark.parametrize("make, exc, match", [
    (lambda: nets.Dense(0), ValueError, r"Dense: width must be a positive int, got 0"),
    (lambda: nets.Dense(-3), ValueError, r"width must be a positive int, got -3"),
    (lambda: nets.Dense(2.5), TypeError, r"width must be a positive int, got 2.5"),
    (lambda: nets.Dense(4, w_std=-1.0), ValueError, r"w_std must be a finite number >= 0, got -1.0"),
    (lambda: nets.Dense(4, b_std=-0.1), ValueError, r"b_std must be a finite number >= 0"),
    (lambda: nets.Dense(4, w_std=float("nan")), ValueError, r"w_std must be a finite number"),
    (lambda: nets.Dense(4, parameterization="mean_field"), ValueError,
     r"parameterization must be one of \('ntk', 'standard'\), got 'mean_field'"),
    (lambda: nets.Dense(4, weights="uniform"), ValueError, r"weights must be one of"),
    (lambda: nets.RectifiedMonomial(0), ValueError, r"degree must be >= 1, got 0"),
    (lambda: nets.Monomial(1.5), TypeError, r"degree must be an int, got 1.5"),
    (lambda: nets.Elementwise(3), TypeError, r"func must be callable, got 3"),
    (lambda: nets.serial(nets.Dense(2), "relu"), TypeError, r"argument 1 must be a widelimits"),
    (lambda: nets.residual(nets.Dense(2), scale=-1.0), ValueError, r"scale must be a finite"),
    (lambda: nets.mlp(8, -1), ValueError, r"depth must be an int >= 0, got -1"),
    (lambda: nets.mlp(8, 2, activation="relu"), TypeError, r"activation must be an activation"),
])
def test_bad_specs(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((NET, X[0]), {}, ValueError, r"x1 must have shape \(n, d\) or channels-last .*got shape \(3,\)"),
    ((NET, X, X[None]), {}, ValueError,
     r"same shape after the batch axis; x1 has shape \(n1, 3\), x2 has shape \(1, 4, 3\)"),
    ((NET, X, X[:, :2]), {}, ValueError,
     r"same shape after the batch axis; x1 has shape \(n1, 3\), x2 has shape \(4, 2\)"),
    ((NET, np.where(X > 1, np.nan, X)), {}, ValueError, r"x1 contains \d+ non-finite value"),
    ((NET, X, np.full((2, 3), np.inf)), {}, ValueError, r"x2 contains 6 non-finite value"),
    ((NET, X.astype(int)), {}, TypeError, r"x1 must be a floating-point array, got dtype int"),
    ((NET, X), {"batch_size": 0}, ValueError, r"batch_size must be a positive int or None, got 0"),
    (("mlp", X), {}, TypeError, r"net must be a widelimits network spec"),
    ((nets.serial(nets.Relu(), nets.Dense(1)), X), {}, ValueError,
     r"activation serial\[0\]\. \(Relu\(\)\) receives an input that is not a centred Gaussian"),
    ((nets.serial(nets.Dense(4), nets.Relu(), nets.Tanh()), X), {}, ValueError,
     r"activation serial\[2\]\. \(Tanh\(\)\) receives an input that is not"),
    ((nets.serial(nets.Dense(4), nets.Relu(), nets.LayerNorm()), X), {}, ValueError,
     r"LayerNorm .* receives an input that is not a centred Gaussian"),
    ((nets.serial(nets.Dense(4), nets.residual(nets.Dense(4), nets.Relu())), X), {}, ValueError,
     r"block of .* must end in a Dense layer"),
    ((nets.serial(nets.Dense(4), nets.parallel(nets.Relu(), nets.Tanh())), X), {}, ValueError,
     r"sums branches \[0, 1\] whose outputs are not fresh Gaussian"),
])
def test_bad_kernel_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        kernels.analytic(*args, **kwargs)


def test_unsupported_layer_and_activation():
    class Custom(nets.Activation):
        def fn(self, x):
            return x

    with pytest.raises(TypeError, match=r"no infinite-width rule for Custom.*Elementwise"):
        kernels.dual(Custom())
    with pytest.raises(TypeError, match=r"expected an activation spec"):
        kernels.dual(nets.Dense(3))


def test_residual_feature_mismatch_at_init():
    net = nets.serial(nets.Dense(4), nets.residual(nets.Dense(5)))
    with pytest.raises(ValueError, match=r"block maps 4 input features to 5"):
        net.init(__import__("jax").random.key(0), (2, 3))


def test_apply_with_wrong_features():
    net = nets.Dense(4)
    p = net.init(__import__("jax").random.key(0), (2, 3))
    with pytest.raises(ValueError, match=r"x has 5 features .* weights expect 3"):
        net.apply(p, jnp.ones((2, 5)))


def test_overflowing_kernel_raises_instead_of_returning_inf():
    # exp's kernel grows like exp(exp(...)) with depth; in float32 it overflows.
    x = jnp.ones((3, 2), jnp.float32) * 3.0
    with pytest.raises(ValueError, match="overflowed to inf/NaN in float32"):
        kernels.analytic(nets.mlp(4, 4, nets.Exp(), w_std=1.5), x)
