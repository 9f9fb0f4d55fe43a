"""Every reduction and mean (``Tensor.mean``, ``mean_dim``, ``sum``, ``sum_dim``, ``MSELoss``,
``cross_entropy`` over the batch) x every float dtype x more elements than float16 can count
(70,000 > 65,504, float16's largest finite value): forward value and gradient against a float64
reference computed from the same (rounded) inputs, on AutodiffBackend over each inner backend.

A mean must be right for every size in every dtype, as in jax and PyTorch: the element count
and the accumulation live in a type wide enough for them (float32 for half inputs), and only
the result is rounded to the input's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from spec import FLOATS, TOLERANCE, np_dtype

from jtape import autodiff, nn, tensor

from .support import BACKEND_NAMES, new_backend

N = 70_000
# Forward: the result's own rounding (half an ulp, eps/2) plus float32 accumulation error, well
# under eps; an accumulation in the half dtype itself stalls (e.g. float16 sums stop growing at
# 2,048 when each term is below 1) and misses by orders of magnitude more.
FORWARD_TOL = {"float64": 1e-12, "float32": 1e-5, "float16": 2 * 2.0**-10, "bfloat16": 2 * 2.0**-7}


def _draw(dtype: str, shape: tuple, low: float, high: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np_dtype(dtype))


def _wide(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# name -> (run(backend, dtype) -> (value Tensor, the leaf), reference(dtype) -> (value, gradient of the leaf))
# Every reference is computed in float64 from the very arrays the run used.
def _mean(backend, dtype):
    x = tensor.from_numpy(_draw(dtype, (N,), 0.0, 2.0, 1), backend)   # the sum (~70,000) overflows float16
    return x.mean(), x


def _mean_ref(dtype):
    x = _wide(_draw(dtype, (N,), 0.0, 2.0, 1))
    return x.mean(), np.full(N, 1 / N)


def _mean_dim(backend, dtype):
    x = tensor.from_numpy(_draw(dtype, (N, 2), 0.0, 2.0, 2), backend)
    return x.mean_dim(0).sum(), x


def _mean_dim_ref(dtype):
    x = _wide(_draw(dtype, (N, 2), 0.0, 2.0, 2))
    return x.mean(0).sum(), np.full((N, 2), 1 / N)


def _sum(backend, dtype):
    x = tensor.from_numpy(_draw(dtype, (N,), 0.0, 0.9, 3), backend)   # the sum (~31,500) fits float16
    return x.sum(), x


def _sum_ref(dtype):
    return _wide(_draw(dtype, (N,), 0.0, 0.9, 3)).sum(), np.ones(N)


def _sum_dim(backend, dtype):
    x = tensor.from_numpy(_draw(dtype, (2, N), 0.0, 0.9, 4), backend)
    return x.sum_dim(-1, True).sum(), x


def _sum_dim_ref(dtype):
    return _wide(_draw(dtype, (2, N), 0.0, 0.9, 4)).sum(), np.ones((2, N))


def _mse(backend, dtype):
    pred = tensor.from_numpy(_draw(dtype, (N,), -1.0, 1.0, 5), backend)
    target = tensor.from_numpy(_draw(dtype, (N,), -1.0, 1.0, 6), backend, requires_grad=False)
    return nn.MSELoss()(pred, target), pred


def _mse_ref(dtype):
    d = _wide(_draw(dtype, (N,), -1.0, 1.0, 5)) - _wide(_draw(dtype, (N,), -1.0, 1.0, 6))
    return np.mean(d * d), 2 * d / N


def _targets() -> np.ndarray:
    return np.random.default_rng(8).integers(0, 3, N).astype(np.int32)


def _cross_entropy(backend, dtype):
    logits = tensor.from_numpy(_draw(dtype, (N, 3), -2.0, 2.0, 7), backend)
    return logits.cross_entropy(tensor.from_numpy(_targets(), backend, requires_grad=False)), logits


def _cross_entropy_ref(dtype):
    z, t = _wide(_draw(dtype, (N, 3), -2.0, 2.0, 7)), _targets()
    p = _softmax(z)
    loss = np.mean(-np.log(p[np.arange(N), t]))
    p[np.arange(N), t] -= 1
    return loss, p / N


REDUCTIONS: dict[str, tuple[Callable, Callable]] = {
    "Tensor.mean": (_mean, _mean_ref), "mean_dim": (_mean_dim, _mean_dim_ref), "sum": (_sum, _sum_ref),
    "sum_dim": (_sum_dim, _sum_dim_ref), "MSELoss": (_mse, _mse_ref), "cross_entropy": (_cross_entropy, _cross_entropy_ref),
}


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_over_more_elements_than_float16_counts(name, dtype, inner_name):
    run, reference = REDUCTIONS[name]
    backend = autodiff.new(new_backend(inner_name))
    value, leaf = run(backend, dtype)
    want_value, want_grad = reference(dtype)
    got = float(value.numpy().astype(np.float64))
    assert value.dtype.value == dtype
    assert abs(got - want_value) <= FORWARD_TOL[dtype] * abs(want_value), (
        f"{name} in {dtype} over {N:,} elements: got {got!r}, expected {want_value!r}")
    value.backward()
    grad = leaf.grad.numpy().astype(np.float64)
    scale = float(np.max(np.abs(want_grad)))
    err = float(np.max(np.abs(grad - want_grad))) if np.all(np.isfinite(grad)) else np.inf
    assert err <= TOLERANCE[dtype] * scale, (
        f"gradient of {name} in {dtype} over {N:,} elements: max error {err:.3g} > {TOLERANCE[dtype]} x {scale:.3g}")
