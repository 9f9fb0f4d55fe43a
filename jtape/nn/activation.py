"""Activation modules: each calls the backend op of the same name (one recorded op each)."""

from __future__ import annotations

from ..tensor.tensor import Tensor
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
