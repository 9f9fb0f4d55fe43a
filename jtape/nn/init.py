"""Weight initialisation: Xavier/Glorot and Kaiming/He, uniform and normal, from an explicit seed.

Every helper takes the shape, the backend and ``seed`` (an int for ``np.random.default_rng``;
None draws fresh entropy) and returns a new leaf Tensor. Fans follow PyTorch's convention: for
a weight ``[out, in]``, fan_in = in and fan_out = out; for a conv kernel ``[Cout, Cin, KH, KW]``,
fan_in = Cin·KH·KW and fan_out = Cout·KH·KW.

Why these scales: a unit with n inputs of variance 1 and weights of variance σ² has output
variance n·σ². Xavier keeps the variance of activations *and* gradients steady through a linear
or tanh layer: σ² = 2 / (fan_in + fan_out). Kaiming corrects for ReLU zeroing half its inputs:
σ² = gain² / fan with gain² = 2. A uniform U(-b, b) has variance b²/3, so b = √3 · σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tensor import creation
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


def _tensor(values: np.ndarray, backend: Any, dtype: DataType | str) -> Tensor:
    return creation.from_numpy(values, backend, DataType.of(dtype))


def uniform(shape: Sequence[int], backend: Any, *, low: float = 0.0, high: float = 1.0, seed: int | None = None,
            dtype: DataType | str = "float32") -> Tensor:
    """Samples of U(low, high)."""
    return _tensor(np.random.default_rng(seed).uniform(low, high, tuple(shape)), backend, dtype)


def normal(shape: Sequence[int], backend: Any, *, mean: float = 0.0, std: float = 1.0, seed: int | None = None,
           dtype: DataType | str = "float32") -> Tensor:
    """Samples of N(mean, std²)."""
    return _tensor(np.random.default_rng(seed).normal(mean, std, tuple(shape)), backend, dtype)


def zeros(shape: Sequence[int], backend: Any, *, seed: int | None = None, dtype: DataType | str = "float32") -> Tensor:
    """Zeros (``seed`` is accepted, and ignored, so it fits wherever an initializer does)."""
    return creation.zeros(tuple(shape), backend, dtype)


def xavier_uniform(shape: Sequence[int], backend: Any, *, gain: float = 1.0, seed: int | None = None,
                   dtype: DataType | str = "float32") -> Tensor:
    """Glorot uniform: U(-b, b) with b = gain · √(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, backend, low=-bound, high=bound, seed=seed, dtype=dtype)


def xavier_normal(shape: Sequence[int], backend: Any, *, gain: float = 1.0, seed: int | None = None,
                  dtype: DataType | str = "float32") -> Tensor:
    """Glorot normal: N(0, σ²) with σ = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return normal(shape, backend, std=gain * math.sqrt(2.0 / (fan_in + fan_out)), seed=seed, dtype=dtype)


def _kaiming_std(shape: Sequence[int], a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: got mode={mode!r}; expected 'fan_in' or 'fan_out'")
    fan_in, fan_out = fans(shape)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform(shape: Sequence[int], backend: Any, *, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "relu", seed: int | None = None, dtype: DataType | str = "float32") -> Tensor:
    """He uniform: U(-b, b) with b = √3 · gain / √fan (gain √2 for ReLU; ``a`` is leaky_relu's slope)."""
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, backend, low=-bound, high=bound, seed=seed, dtype=dtype)


def kaiming_normal(shape: Sequence[int], backend: Any, *, a: float = 0.0, mode: str = "fan_in",
                   nonlinearity: str = "relu", seed: int | None = None, dtype: DataType | str = "float32") -> Tensor:
    """He normal: N(0, σ²) with σ = gain / √fan."""
    return normal(shape, backend, std=_kaiming_std(shape, a, mode, nonlinearity), seed=seed, dtype=dtype)


# Short aliases, as in Keras.
glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
he_uniform, he_normal = kaiming_uniform, kaiming_normal
