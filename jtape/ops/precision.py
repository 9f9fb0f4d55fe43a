"""How kernels compute in half precision, for both kernel kinds.

float16 and bfloat16 round after every step. Kernels that accumulate — sums, means, matmul,
convolutions, softmax, losses — and scalar ops (whose scalar may not fit: 1/70000 in float16)
compute in float32 and round once at the end, as XLA and GPUs do. ``upcast`` does it for a
``jax.numpy`` kernel, ``in_float32`` for a NumPy one. (The accumulation contract: results in
half dtypes are float32 computations rounded once.)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax.numpy as jnp
import ml_dtypes
import numpy as np

HALF = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def upcast(x: Any) -> Any:
    """A jax array in float32 if it is float16/bfloat16, else unchanged."""
    return x.astype(jnp.float32) if x.dtype in HALF else x


def wide(a: np.ndarray) -> np.ndarray:
    """A NumPy array in float32 if it is float16/bfloat16, else unchanged."""
    return a.astype(np.float32) if a.dtype in HALF else a


def in_float32(kernel: Callable) -> Callable:
    """A NumPy kernel run with its half-precision array arguments widened to float32, its result
    cast back to the first array argument's dtype. Floating-point edge cases give their IEEE
    results (1/0 = inf) silently, as in JAX."""
    @functools.wraps(kernel)
    def run(*args: Any, **kwargs: Any) -> np.ndarray:
        dtype = next(a.dtype for a in _arrays(args))
        widened = [[wide(x) for x in a] if isinstance(a, (list, tuple)) else wide(a) if isinstance(a, np.ndarray)
                   else a for a in args]
        with np.errstate(all="ignore"):
            return np.asarray(kernel(*widened, **kwargs)).astype(dtype, copy=False)
    return run


def _arrays(args: tuple):
    for a in args:
        if isinstance(a, np.ndarray):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (x for x in a if isinstance(x, np.ndarray))


def scalar_kernel(jnp_fn: Callable, np_fn: Callable) -> tuple[Callable, Callable]:
    """The (jax, numpy) kernels of ``x (op) s`` for a Python scalar ``s``, keeping x's dtype.

    Integers: ``s`` converted to x's dtype first (JAX's weak-type rule; uint8 + (-1) wraps).
    Half floats: computed in float32, rounded once (``x / 70000`` in float16 is not 0)."""
    def jax_kernel(x: Any, scalar: Any) -> Any:
        if x.dtype in HALF:
            return jnp_fn(x.astype(jnp.float32), scalar).astype(x.dtype)
        if x.dtype.kind in "iub":
            return jnp_fn(x, jnp.asarray(scalar).astype(x.dtype))
        return jnp_fn(x, scalar).astype(x.dtype)

    def numpy_kernel(x: np.ndarray, scalar: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            if x.dtype in HALF:
                return np.asarray(np_fn(x.astype(np.float32), np.float32(scalar))).astype(x.dtype)
            return np.asarray(np_fn(x, np.asarray(scalar).astype(x.dtype)))
    return jax_kernel, numpy_kernel
