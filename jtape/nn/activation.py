"""Activation modules: each calls the backend op of the same name (one recorded op each; Softplus with
its threshold adds a where)."""

from __future__ import annotations

from typing import Any

from ..tensor.errors import ArgumentError
from ..tensor.tensor import Tensor
from ._build import number
from .module import Module


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    """1 / (1 + e⁻ˣ), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(Module):
    """tanh x, elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class SiLU(Module):
    """x · sigmoid(x) (Swish), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return x.silu()


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``dim`` (default: the last)."""

    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GELU(Module):
    """x · Φ(x) (Φ the standard normal CDF); ``approximate="tanh"`` uses
    0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))), as torch's ``GELU(approximate=...)``."""

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ArgumentError(f"GELU: got approximate={approximate!r}; expected 'none' or 'tanh'")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    """x for x >= 0, ``negative_slope`` · x below, elementwise."""

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = number("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return x.leaky_relu(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x for x > 0, ``alpha`` · (eˣ - 1) below, elementwise."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = number("ELU", "alpha", alpha)

    def forward(self, x: Tensor) -> Tensor:
        return x.elu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + e^(β·x)) / β, and x itself where β·x > ``threshold`` (as torch: there the two agree
    to rounding, and x is exact). β = 1 is one ``softplus`` op; other β scale around it."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta = number("Softplus", "beta", beta)
        self.threshold = number("Softplus", "threshold", threshold)
        if self.beta <= 0:
            raise ArgumentError(f"Softplus: got beta={beta}; expected beta > 0")

    def forward(self, x: Tensor) -> Tensor:
        scaled = x if self.beta == 1.0 else x * self.beta
        soft = scaled.softplus() if self.beta == 1.0 else scaled.softplus() / self.beta
        return soft.where(scaled <= self.threshold, x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Identity(Module):
    """Returns its input unchanged (a placeholder where a layer is optional); records nothing.
    Extra arguments to the constructor are accepted and ignored, as in torch."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x

