"""Weight initialisation: Xavier/Glorot and Kaiming/He, uniform and normal, drawn with ``jax.random``.

Every helper takes the shape, optionally the backend (default: ``jtape.default_backend()``), and
``seed=`` (an int: ``jax.random.PRNGKey(seed)``) or ``key=`` (a ``jax.random`` key); with neither
it takes the next key of the process default generator (``jtape.random.seed(n)``). It returns a
new leaf Tensor. The values are drawn with jax and then put on the backend, so a NumpyBackend
gets exactly the values a JaxBackend does. The four scaled initialisers are
``jax.nn.initializers.variance_scaling`` with plain (untruncated) normals, as PyTorch's are.
Fans follow PyTorch's convention: for a weight ``[out, in]``, fan_in = in and fan_out = out; for
a conv kernel ``[Cout, Cin, KH, KW]``, fan_in = Cin·KH·KW and fan_out = Cout·KH·KW (jax's
``in_axis=1, out_axis=0``: the receptive field is the product of the other dims).

Why these scales: a unit with n inputs of variance 1 and weights of variance σ² has output
variance n·σ². Xavier keeps the variance of activations *and* gradients steady through a linear
or tanh layer: σ² = 2 / (fan_in + fan_out). Kaiming corrects for ReLU zeroing half its inputs:
σ² = gain² / fan with gain² = 2. A uniform U(-b, b) has variance b²/3, so b = √3 · σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax

from ..tensor import creation, random
from ..tensor.defaults import resolve
from ..tensor.dtype import DataType
from ..tensor.tensor import Tensor


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (rank >= 2; dims after the first two are the
    receptive field)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fans: got shape {shape}; expected rank >= 2 ([out, in] or [Cout, Cin, KH, KW])")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activations' variance for ``nonlinearity`` (PyTorch's values)."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: got {nonlinearity!r}; expected linear, conv2d, sigmoid, tanh, relu, "
                     f"leaky_relu or selu")


def _tensor(values: Any, backend: Any, dtype: DataType) -> Tensor:
    backend = resolve(backend)
    raw = random.on_backend(values, backend, dtype)
    raw.requires_grad = True
    return Tensor(raw, backend)


def _draw(initializer: Any, shape: Sequence[int], backend: Any, seed: int | None, key: Any,
          dtype: DataType | str) -> Tensor:
    dt = DataType.of(dtype)
    return _tensor(initializer(random.key(seed, key), tuple(shape), random.draw_dtype(dt)), backend, dt)


def uniform(shape: Sequence[int], backend: Any = None, *, low: float = 0.0, high: float = 1.0,
            seed: int | None = None, key: Any = None, dtype: DataType | str = "float32") -> Tensor:
    """Samples of U(low, high)."""
    def draw(k: Any, shp: tuple, dt: Any) -> Any:
        return jax.random.uniform(k, shp, dt, minval=low, maxval=high)
    return _draw(draw, shape, backend, seed, key, dtype)


def normal(shape: Sequence[int], backend: Any = None, *, mean: float = 0.0, std: float = 1.0,
           seed: int | None = None, key: Any = None, dtype: DataType | str = "float32") -> Tensor:
    """Samples of N(mean, std²)."""
    def draw(k: Any, shp: tuple, dt: Any) -> Any:
        return mean + std * jax.random.normal(k, shp, dt)
    return _draw(draw, shape, backend, seed, key, dtype)


def zeros(shape: Sequence[int], backend: Any = None, *, seed: int | None = None, key: Any = None,
          dtype: DataType | str = "float32") -> Tensor:
    """Zeros (``seed`` and ``key`` are accepted, and ignored, so it fits wherever an initializer does)."""
    return creation.zeros(tuple(shape), resolve(backend), dtype)


def _scaled(shape: Sequence[int], scale: float, mode: str, distribution: str) -> Any:
    fans(shape)  # the rank check, with its message
    return jax.nn.initializers.variance_scaling(scale, mode, distribution, in_axis=1, out_axis=0)


def xavier_uniform(shape: Sequence[int], backend: Any = None, *, gain: float = 1.0, seed: int | None = None,
                   key: Any = None, dtype: DataType | str = "float32") -> Tensor:
    """Glorot uniform: U(-b, b) with b = gain · √(6 / (fan_in + fan_out))
    (``variance_scaling(gain², "fan_avg", "uniform")``)."""
    return _draw(_scaled(shape, gain ** 2, "fan_avg", "uniform"), shape, backend, seed, key, dtype)


def xavier_normal(shape: Sequence[int], backend: Any = None, *, gain: float = 1.0, seed: int | None = None,
                  key: Any = None, dtype: DataType | str = "float32") -> Tensor:
    """Glorot normal: N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out))
    (``variance_scaling(gain², "fan_avg", "normal")``)."""
    return _draw(_scaled(shape, gain ** 2, "fan_avg", "normal"), shape, backend, seed, key, dtype)


def _kaiming(shape: Sequence[int], a: float, mode: str, nonlinearity: str, distribution: str) -> Any:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: got mode={mode!r}; expected 'fan_in' or 'fan_out'")
    return _scaled(shape, calculate_gain(nonlinearity, a) ** 2, mode, distribution)


def kaiming_uniform(shape: Sequence[int], backend: Any = None, *, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "relu", seed: int | None = None, key: Any = None,
                    dtype: DataType | str = "float32") -> Tensor:
    """He uniform: U(-b, b) with b = √3 · gain / √fan (gain √2 for ReLU; ``a`` is leaky_relu's slope)
    (``variance_scaling(gain², mode, "uniform")``)."""
    return _draw(_kaiming(shape, a, mode, nonlinearity, "uniform"), shape, backend, seed, key, dtype)


def kaiming_normal(shape: Sequence[int], backend: Any = None, *, a: float = 0.0, mode: str = "fan_in",
                   nonlinearity: str = "relu", seed: int | None = None, key: Any = None,
                   dtype: DataType | str = "float32") -> Tensor:
    """He normal: N(0, σ²) with σ = gain / √fan (``variance_scaling(gain², mode, "normal")``)."""
    return _draw(_kaiming(shape, a, mode, nonlinearity, "normal"), shape, backend, seed, key, dtype)


# Short aliases, as in Keras.
glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
he_uniform, he_normal = kaiming_uniform, kaiming_normal
