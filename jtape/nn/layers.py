"""Layers: ``Linear``, ``Conv2D``, ``MaxPool2D``, ``AvgPool2D``, ``Flatten``, ``Dropout``.

Each forward is a few Tensor methods, so on an AutodiffBackend every step of it — the weight's
transpose, the bias reshape, the broadcast add — is an ordinary op on the tape, differentiated
by its own rule. Nothing here is special-cased by the tape.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from ..tensor import random
from ..tensor.args import Int, Pair
from ..tensor.defaults import resolve
from ..tensor.dtype import DataType
from ..tensor.errors import ShapeError
from ..tensor.tensor import Tensor
from . import init
from .module import Module, Parameter

Initializer = Callable[..., Tensor]  # (shape, backend, *, key, dtype) -> Tensor, as in jtape.nn.init


def initial_weight(weight_init: Initializer, shape: tuple, backend: Any, seed: int | None, key: Any,
                   dtype: DataType | str) -> Parameter:
    """A layer's weight from ``weight_init``: given ``key=`` (``key``, ``PRNGKey(seed)``, or the next
    key of the process default generator). An initializer written for seeds only — no ``key``
    parameter — is given ``seed=`` as before."""
    params = inspect.signature(weight_init).parameters
    if "key" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return Parameter(weight_init(shape, backend, key=random.key(seed, key), dtype=dtype))
    return Parameter(weight_init(shape, backend, seed=seed, dtype=dtype))


class Linear(Module):
    """``y = x @ Wᵀ + b`` with ``weight`` [out, in] and ``bias`` [out] (as Born's Linear).

    ``x`` is [..., in]. The weight starts from ``weight_init`` (Xavier uniform by default, from
    ``key=``, ``seed=``, or the process default generator: ``jtape.random``), the bias at zeros.
    ``backend`` defaults to ``jtape.default_backend()`` (PyTorch's order: ``Linear(64, 32)``;
    ``Linear(64, 32, backend)`` works too). On the tape: one AffineOp (one dot, no transposed copy
    of the weight, and the bias, whose gradient is the batch sum) — LinearOp without a bias.
    """

    def __init__(self, in_features: int, out_features: int, backend: Any = None, *, bias: bool = True,
                 seed: int | None = None, key: Any = None, dtype: DataType | str = "float32",
                 weight_init: Initializer = init.xavier_uniform):
        backend = resolve(backend)
        self.in_features, self.out_features = in_features, out_features
        self.weight = initial_weight(weight_init, (out_features, in_features), backend, seed, key, dtype)
        self.bias = Parameter(init.zeros((out_features,), backend, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return x.linear(self.weight, self.bias)     # one op: x @ Wᵀ (+ b), no transposed copy of W

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2D(Module):
    """2-D convolution, NCHW: ``kernel`` is ``weight`` [Cout, Cin / groups, KH, KW], plus a ``bias`` [Cout].

    ``dilation`` spaces the kernel's taps; ``groups`` splits the channels into independent blocks
    (``groups = in_channels``: depthwise). The bias is reshaped to [1, Cout, 1, 1] and added with
    broadcasting (ReshapeOp + AddOp on the tape), so its gradient is g summed over batch, height
    and width. ``backend`` defaults to ``jtape.default_backend()``; the weight's key is drawn as
    ``Linear``'s is.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple, backend: Any = None, *,
                 stride: int | tuple = 1, padding: int | tuple = 0, dilation: int | tuple = 1, groups: int = 1,
                 bias: bool = True, seed: int | None = None, key: Any = None, dtype: DataType | str = "float32",
                 weight_init: Initializer = init.xavier_uniform):
        backend = resolve(backend)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = Pair(min=1).normalize("Conv2D", "kernel_size", kernel_size)
        self.stride = Pair(min=1).normalize("Conv2D", "stride", stride)
        self.padding = Pair(min=0).normalize("Conv2D", "padding", padding)
        self.dilation = Pair(min=1).normalize("Conv2D", "dilation", dilation)
        self.groups = Int(min=1).normalize("Conv2D", "groups", groups)
        if in_channels % self.groups or out_channels % self.groups:
            raise ShapeError(f"Conv2D: got groups={groups} for in_channels={in_channels} and "
                             f"out_channels={out_channels}; expected groups to divide both")
        shape = (out_channels, in_channels // self.groups) + self.kernel_size
        self.weight = initial_weight(weight_init, shape, backend, seed, key, dtype)
        self.bias = Parameter(init.zeros((out_channels,), backend, dtype=dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x.conv2d(self.weight, self.stride, self.padding, self.dilation, self.groups)
        return y if self.bias is None else y + self.bias.reshape(1, self.out_channels, 1, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


class _Pool2D(Module):
    """What both pooling layers hold: the window, its stride (default: the window) and the padding."""

    def __init__(self, kernel_size: int | tuple, stride: int | tuple | None = None, padding: int | tuple = 0):
        name = type(self).__name__
        self.kernel_size = Pair(min=1).normalize(name, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else Pair(min=1).normalize(name, "stride", stride)
        self.padding = Pair(min=0).normalize(name, "padding", padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    """Max pooling over ``kernel_size`` windows (NCHW, padded with -inf by ``padding`` <= kernel_size // 2);
    ``stride`` defaults to the kernel size."""

    def forward(self, x: Tensor) -> Tensor:
        return x.max_pool2d(self.kernel_size, self.stride, self.padding)


class AvgPool2D(_Pool2D):
    """Average pooling over ``kernel_size`` windows (NCHW, zero-padded by ``padding`` <= kernel_size // 2,
    the zeros counted in the mean, as torch's ``count_include_pad=True``); ``stride`` defaults to the
    kernel size."""

    def forward(self, x: Tensor) -> Tensor:
        return x.avg_pool2d(self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    """Merge dims ``start_dim`` … ``end_dim`` (inclusive; negatives count from the end) into one:
    [N, d1, d2, …] becomes [N, d1·d2·…] with the defaults, as torch's ``nn.Flatten``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the rest by 1/(1-p),
    so the expected activation is unchanged; in eval mode, the identity.

    Each call draws a new mask with ``jax.random.bernoulli`` on the device, from the next key of
    a generator: its own when ``seed=`` or ``key=`` was given, else the process default
    (``jtape.random``). The mask (already scaled by 1/(1-p)) is multiplied in (MulOp): the
    gradient is g times the same mask. Under ``jtape.jit`` the generator's key is carried state,
    so every compiled step draws a new mask — the one an eager step would have drawn.
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None, key: Any = None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: got p={p}; expected 0 <= p < 1")
        self.p = p
        # its own stream when given seed= or key=; None: the process default (found again after a copy)
        self.generator = None if seed is None and key is None else random.Generator(seed, key=key)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = jax.random.bernoulli(random.key(generator=self.generator), 1.0 - self.p, tuple(x.shape))
        dt = x.dtype.numpy
        mask = jnp.where(keep, jnp.asarray(1.0 / (1.0 - self.p), dt), jnp.asarray(0.0, dt))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
