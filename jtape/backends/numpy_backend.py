"""``NumpyBackend``: the plain-NumPy reference backend.

Every op's ``numpy`` kernel lives beside its ``jax`` kernel and its rule, in its family's file
under ``jtape/ops``: a few lines of NumPy you can check against the maths in its docstring. This
class only runs them: the op's check has already validated shapes and dtypes and normalised the
static arguments (non-negative dims, tuples for shapes, ``(h, w)`` pairs), so a kernel only
computes — arrays in, an array out — and the result is made an ``np.ndarray`` of exactly the
dtype the check promised (a ufunc on 0-d arrays returns a NumPy scalar; ``np.sum`` of int32 gives
int64). Floating-point edge cases give their IEEE results (1/0 = inf, log(-1) = nan) silently,
as in JAX, instead of NumPy's RuntimeWarnings.

Kernels never write into an array they returned or were given, so ``reshape``/``transpose``
may safely hand back views.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..tensor.registry import OpDef
from ..tensor.shape import Device
from .base import KernelBackend


class NumpyBackend(KernelBackend):
    """The reference backend: every op as a short, readable NumPy kernel, on the CPU."""

    kind = "numpy"
    _device = Device.CPU
    _numpy_data = True  # every tensor's data is an np.ndarray (execute rejects anything else)

    def name(self) -> str:
        return "numpy"

    def _compile(self, op: OpDef) -> Callable:
        kernel = super()._compile(op)

        def run(*arrays: Any, **statics: Any) -> Any:
            with np.errstate(all="ignore"):
                return kernel(*arrays, **statics)
        return run

    def _from_numpy(self, arr: np.ndarray) -> np.ndarray:
        """A private copy, so later writes to the caller's array cannot change the tensor."""
        return np.array(arr, copy=True)

    def _full(self, shape: tuple, value: Any, np_dtype: np.dtype) -> np.ndarray:
        return np.full(shape, value, dtype=np_dtype)
