"""``RawTensor``: the raw data holder that backends and the tape pass around."""

from __future__ import annotations

from typing import Any

import jax

from .dtype import DataType
from .shape import Device, Shape


class RawTensor:
    """A backend's array with its shape, dtype and device.

    ``data`` is whatever the backend computes with (a ``jax.Array`` — or a tracer inside
    ``jax.jit`` — for JaxBackend, an ``np.ndarray`` for NumpyBackend). A RawTensor is hashed and
    compared by *identity*, so it can key the gradient map: two tensors with equal values are
    still two different tensors. ``grad`` holds the gradient that ``Tensor.backward()`` left here.
``requires_grad`` (default True) marks whether gradients should flow to this tensor: data and
other constants can opt out (``Tensor.requires_grad_(False)``), and then the tape neither
records ops that only read such tensors nor computes their gradients.

    RawTensor is a JAX pytree (its leaf is ``data``; shape, dtype and device are static), so it
    can cross ``jax.jit`` boundaries.
    """

    # _released: set (never initialised, so creation pays nothing) once Tensor.backward has cleared
    # the tape that held the op producing this tensor (see jtape.autodiff.engine.tensor_backward).
    __slots__ = ("data", "shape", "dtype", "device", "grad", "requires_grad", "_released", "__weakref__")

    def __init__(self, data: Any, shape: Shape, dtype: DataType, device: Device):
        self.data = data
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.grad: RawTensor | None = None
        self.requires_grad = True

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"RawTensor(shape={tuple(self.shape)}, dtype={self.dtype.value}, device={self.device.value})"


def _flatten(t: RawTensor):
    return (t.data,), (t.shape, t.dtype, t.device, t.requires_grad)


def _unflatten(aux, children) -> RawTensor:
    shape, dtype, device, requires_grad = aux
    t = RawTensor(children[0], shape, dtype, device)
    t.requires_grad = requires_grad
    return t


jax.tree_util.register_pytree_node(RawTensor, _flatten, _unflatten)
