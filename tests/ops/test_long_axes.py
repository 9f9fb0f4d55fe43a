"""Long axes (4,096) in float16 and bfloat16: reductions, softmax, matmul and cross_entropy, and
their gradients, on AutodiffBackend over each inner backend, against a float64 reference computed
from the same half-precision inputs.

The accumulation contract: a half-precision op accumulates in float32 (or wider) and rounds
only its result. The tolerance below is one that only such wide accumulation meets:

* With float32 accumulation the error is the rounding of the result to the half dtype (at most
  eps/2 relative) plus the roundings of half-precision elementwise intermediates (exp, products,
  g - Σ g·s: each at most eps/2 of a value no larger than the result's scale). So
  2·eps of the reference's largest magnitude bounds it (float16 eps = 2⁻¹⁰, bfloat16 eps = 2⁻⁷).
* Accumulating in the half dtype itself stalls: with every term positive and the running sum
  past 2,048 (float16) or 256 (bfloat16), the spacing between representable values exceeds twice
  a term, so each addition rounds away. Errors then reach tens of percent (a probe: ``sum`` over
  4,096 bfloat16 values misses by 87 %).
``test_half_precision_accumulation_fails_this_tolerance`` checks the second point: a naive
NumPy implementation that accumulates sequentially in the half dtype (``np.cumsum(dtype=half)``)
misses every case below by several times the tolerance, so the tolerance can tell the two apart.
Terms are positive (uniform in [1, 2), or exps of small logits) so that stalls are certain.

Where a dropped upcast shows (measured): XLA accumulates float16/bfloat16 ``jnp.sum``,
``jnp.matmul`` and softmax in float32 by itself, on CPU and on an H200 GPU (jax 0.11), so on
JaxBackend these tests pin the results rather than jtape's own upcast; on NumpyBackend, removing
the float32 widening fails the bfloat16 reductions, softmax and cross_entropy (ml_dtypes adds
sequentially) and float16 sums along a non-contiguous axis (NumPy's float16 pairwise sum and
matmul accumulate in float32 themselves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from spec import HALF, np_dtype

from jtape import autodiff

from .support import BACKEND_NAMES, new_backend

L = 4096
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}
TOL = {d: 2 * e for d, e in EPS.items()}


# -- the naive half-precision kernels (sequential accumulation in the dtype itself) -------------------
def _hsum(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    out = np.take(np.cumsum(x, axis=axis, dtype=x.dtype), -1, axis=axis)
    return np.expand_dims(out, axis) if keepdims else out


def _hsoftmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True)).astype(z.dtype)
    return (e / _hsum(e, -1, True)).astype(z.dtype)


def _hmatmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _hsum((a[:, :, None] * b[None, :, :]).astype(a.dtype), 1)


def _hce(z: np.ndarray, t: np.ndarray) -> np.ndarray:
    m = z.max(1, keepdims=True)
    lse = (m[:, 0] + np.log(_hsum(np.exp(z - m).astype(z.dtype), 1))).astype(z.dtype)
    rows = (lse - z[np.arange(len(t)), t]).astype(z.dtype)
    return (_hsum(rows, 0) / np.asarray(len(t), z.dtype)).astype(z.dtype)


def _softmax64(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- cases -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongCase:
    """``run(backend, *raws)`` the jtape op; ``ref(*arrays)`` its float64 value; ``grads(g, *arrays)``
    the float64 gradients of its float inputs; ``naive`` / ``naive_grads`` the same accumulating in
    the half dtype (``naive_grads`` None where no gradient accumulates along the long axis)."""

    shapes: tuple
    run: Callable
    ref: Callable
    grads: Callable
    naive: Callable
    naive_grads: Callable | None = None
    ints: tuple = ()           # per input: None (float) or the range of an int target
    logits: bool = False       # small logits (0.1 N(0, 1)): exps near 1; else uniform in [1, 2)
    long_forward: bool = True  # the forward itself accumulates along the long axis
    elementwise: bool = False  # gradient error relative to each element (see _ce_case)


def _onehot(t: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c)[t]


def _half(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(like.dtype)


def _matmul_case(a_shape: tuple, w_shape: tuple, long_grads: bool, long_forward: bool) -> LongCase:
    naive_grads = None
    if long_grads:
        naive_grads = lambda g, a, w: [_hmatmul(g, np.ascontiguousarray(w.T)), _hmatmul(np.ascontiguousarray(a.T), g)]
    return LongCase((a_shape, w_shape), lambda b, a, w: b.matmul(a, w), lambda a, w: a @ w,
                    lambda g, a, w: [g @ w.T, a.T @ g], _hmatmul, naive_grads, long_forward=long_forward)


def _ce_case(shapes: tuple, classes: int, long_grads: bool) -> LongCase:
    """With C long, the gradient (softmax - onehot) / B is dominated by the one-hot entries, so its
    error is measured per element: a softmax whose denominator stalled is off by a factor there."""
    def grads(g, z, t):
        return [g * (_softmax64(z) - _onehot(t, z.shape[1])) / len(t)]

    def naive_grads(g, z, t):
        return [_half(g * (_hsoftmax(z) - _onehot(t, z.shape[1])) / len(t), z)]

    return LongCase(shapes, lambda b, z, t: b.cross_entropy(z, t),
                    lambda z, t: np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(t)), t]), grads, _hce,
                    naive_grads if long_grads else None, ints=(None, classes), logits=True, elementwise=long_grads)


def _softmax_grads(g, x):
    s = _softmax64(x)
    return [s * (g - (g * s).sum(-1, keepdims=True))]


def _naive_softmax_grads(g, x):
    s = _hsoftmax(x)
    return [_half(s * (g - _hsum(_half(g * s, x), -1, True)), x)]


CASES = {
    "sum": LongCase(((L,),), lambda b, x: b.sum(x), lambda x: x.sum(), lambda g, x: [np.broadcast_to(g, x.shape)],
                    lambda x: _hsum(x, 0)),
    "sum_dim(-1)": LongCase(((2, L),), lambda b, x: b.sum_dim(x, -1, False), lambda x: x.sum(-1),
                            lambda g, x: [np.broadcast_to(g[:, None], x.shape)], lambda x: _hsum(x, -1)),
    "sum_dim(0)": LongCase(((L, 3),), lambda b, x: b.sum_dim(x, 0, True), lambda x: x.sum(0, keepdims=True),
                           lambda g, x: [np.broadcast_to(g, x.shape)], lambda x: _hsum(x, 0, True)),
    "mean_dim(-1)": LongCase(((2, L),), lambda b, x: b.mean_dim(x, -1, False), lambda x: x.mean(-1),
                             lambda g, x: [np.broadcast_to(g[:, None] / L, x.shape)],
                             lambda x: _half(_hsum(x, -1) / np.asarray(L, x.dtype), x)),
    "softmax": LongCase(((2, L),), lambda b, x: b.softmax(x, -1), _softmax64, _softmax_grads, _hsoftmax,
                        _naive_softmax_grads, logits=True),
    "matmul(K long)": _matmul_case((2, L), (L, 3), long_grads=False, long_forward=True),
    "matmul(M long)": _matmul_case((L, 3), (3, 2), long_grads=True, long_forward=False),
    "matmul(N long)": _matmul_case((2, 3), (3, L), long_grads=True, long_forward=False),
    "cross_entropy(C long)": _ce_case(((2, L), (2,)), L, long_grads=True),
    "cross_entropy(B long)": _ce_case(((L, 3), (L,)), 3, long_grads=False),
}


def _inputs(name: str, dtype: str) -> list[np.ndarray]:
    case = CASES[name]
    rng = np.random.default_rng(len(name) * 7919 + (dtype == "bfloat16"))
    out = []
    for i, shape in enumerate(case.shapes):
        top = case.ints[i] if i < len(case.ints) else None
        if top:
            out.append(rng.integers(0, top, shape).astype(np.int32))
        elif case.logits:
            out.append((0.1 * rng.standard_normal(shape)).astype(np_dtype(dtype)))
        else:
            out.append(rng.uniform(1.0, 2.0, shape).astype(np_dtype(dtype)))
    return out


def _seed(name: str, dtype: str, out_shape: tuple) -> np.ndarray:
    """The output gradient: positive, so the rules' sums of g·(...) stall too when accumulated in half."""
    return np.random.default_rng(11).uniform(1.0, 2.0, out_shape).astype(np_dtype(dtype))


def _wide(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [a if a.dtype == np.int32 else a.astype(np.float64) for a in arrays]


def _error(got: np.ndarray, want: np.ndarray, elementwise: bool = False) -> float:
    """Max |got - want| relative to max |want| (or to each |want|); inf when got is not finite."""
    got = np.asarray(got, np.float64)
    if not np.all(np.isfinite(got)):
        return np.inf
    if elementwise:
        return float(np.max(np.abs(got - want) / np.abs(want)))
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


PARAMS = [pytest.param(n, d, id=f"{n}-{d}") for n in CASES for d in HALF]


def _run(name: str, dtype: str, inner_name: str) -> tuple:
    case = CASES[name]
    arrays = _inputs(name, dtype)
    inner = new_backend(inner_name)
    backend = autodiff.new(inner)
    raws = [inner.from_numpy(a) for a in arrays]
    out = case.run(backend, *raws)
    wide = _wide(arrays)
    return case, backend, raws, out, wide, np.asarray(case.ref(*wide), np.float64)


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("name, dtype", PARAMS)
def test_long_axis_forward_in_half_precision_matches_float64(name, dtype, inner_name):
    _, _, _, out, _, want = _run(name, dtype, inner_name)
    assert out.dtype.value == dtype and tuple(out.shape) == want.shape
    err = _error(np.asarray(out.data), want)
    assert err <= TOL[dtype], f"{name} forward in {dtype} on {inner_name}: error {err:.3g} > {TOL[dtype]:.3g}"


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("name, dtype", PARAMS)
def test_long_axis_gradient_in_half_precision_matches_float64(name, dtype, inner_name):
    """The rules, given the op's own (half-precision) output: checked apart from the forward, so a
    rule that accumulates in half shows even when the forward is right."""
    case, backend, raws, out, wide, want = _run(name, dtype, inner_name)
    g = _seed(name, dtype, want.shape)
    grads = backend.tape().backward(backend.inner().from_numpy(g), backend, output=out)
    for i, want_grad in enumerate(case.grads(g.astype(np.float64), *wide)):
        err = _error(np.asarray(grads[raws[i]].data), np.asarray(want_grad, np.float64), case.elementwise)
        assert err <= TOL[dtype], (f"{name} gradient of input {i} in {dtype} on {inner_name}: "
                                   f"error {err:.3g} > {TOL[dtype]:.3g}")


@pytest.mark.parametrize("name, dtype", PARAMS)
def test_half_precision_accumulation_fails_this_tolerance(name, dtype):
    """The tolerance is meaningful: accumulating in the half dtype misses it by far (factor 4 at least)."""
    case = CASES[name]
    assert case.long_forward or case.naive_grads is not None, f"{name}: nothing here accumulates along the long axis"
    arrays = _inputs(name, dtype)
    wide = _wide(arrays)
    want = np.asarray(case.ref(*wide), np.float64)
    if case.long_forward:
        err = _error(case.naive(*arrays), want)
        assert err > 4 * TOL[dtype], f"naive {name} in {dtype}: error {err:.3g} is within 4 x {TOL[dtype]:.3g}"
    if case.naive_grads is not None:
        g = _seed(name, dtype, want.shape)
        wants = case.grads(g.astype(np.float64), *wide)
        err = max(_error(got, np.asarray(w, np.float64), case.elementwise)
                  for got, w in zip(case.naive_grads(g, *arrays), wants))
        assert err > 4 * TOL[dtype], f"naive {name} gradient in {dtype}: error {err:.3g} is within 4 x {TOL[dtype]:.3g}"
