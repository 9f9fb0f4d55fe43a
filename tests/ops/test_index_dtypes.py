"""Every op that takes indices (gather, cross_entropy; scatter through their gradients) x every
integer index dtype the spec allows x sizes past the dtype's range (uint8 past 256): forward
values and gradients against jax, eagerly, under ``jtape.jit`` and with ``create_graph``.

A uint8 index can only hold values up to 255, but the *other* sizes — rows, classes, the
iota grids a scatter builds — go past it; nothing may be computed in the index's own dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spec import ref_gather, rng_for

import jtape
from jtape import autodiff, tensor

from .support import BACKEND_NAMES, new_backend

INDEX_DTYPES = ("int32", "int64", "uint8")
TOL = 1e-10  # float64 throughout: any wrap-around shows as an O(1) error


@dataclass(frozen=True)
class IndexCase:
    op: str            # "gather" or "cross_entropy"
    x_shape: tuple
    index_shape: tuple
    dim: int = 0       # gather only
    top: int = 0       # index values are drawn from [0, top) (top <= 256 for uint8)

    def id(self) -> str:
        return f"{self.op}-x{self.x_shape}-i{self.index_shape}-dim{self.dim}".replace(" ", "")


# (Small sizes in every index dtype are the spec table's samples: tests/ops/test_gradients.py.)
CASES = (
    IndexCase("gather", (300, 3), (300, 2), dim=1, top=3),        # 300 rows: the scatter's row grid passes 255
    IndexCase("gather", (300, 4), (280, 4), dim=0, top=300),      # 300 values along dim: the range check's bound
    IndexCase("gather", (2, 300, 3), (2, 300, 2), dim=-1, top=3),
    IndexCase("cross_entropy", (300, 10), (300,), top=10),        # a batch past 255
    IndexCase("cross_entropy", (4, 300), (4,), top=300),          # classes past 255
)


def _arrays(case: IndexCase, dtype: str):
    rng = rng_for(f"{case.id()}-{dtype}")
    top = min(case.top, 256) if dtype == "uint8" else case.top
    index = rng.integers(0, top, case.index_shape)
    if dtype == "uint8":
        index[..., 0] = top - 1   # the largest value the dtype can hold (255 where the size allows)
    out_shape = case.index_shape if case.op == "gather" else ()
    return (rng.standard_normal(case.x_shape), index.astype(dtype), rng.standard_normal(out_shape),
            rng.standard_normal(case.x_shape))


def _reference(case: IndexCase, x, index):
    idx = jnp.asarray(index.astype(np.int64))
    if case.op == "gather":
        return ref_gather(x, idx, case.dim % len(case.x_shape))
    return jnp.mean(jax.nn.logsumexp(x, axis=1) - jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0])


def _jtape(case: IndexCase, x, index):
    return x.gather(case.dim, index) if case.op == "gather" else x.cross_entropy(index)


PARAMS = [pytest.param(c, d, id=f"{c.id()}-{d}") for c in CASES for d in INDEX_DTYPES]


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case, dtype", PARAMS)
def test_forward_and_gradient_match_jax(case, dtype, inner_name):
    xs, index, ct, _ = _arrays(case, dtype)
    backend = autodiff.new(new_backend(inner_name))
    x = tensor.from_numpy(xs, backend)
    out = _jtape(case, x, tensor.from_numpy(index, backend, requires_grad=False))
    want, vjp = jax.vjp(lambda v: _reference(case, v, index), xs)
    np.testing.assert_allclose(out.numpy(), np.asarray(want), rtol=TOL, atol=TOL, err_msg="forward")
    out.backward(tensor.from_numpy(ct, backend))
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(vjp(ct)[0]), rtol=TOL, atol=TOL, err_msg="gradient")


@pytest.mark.parametrize("case, dtype", PARAMS)
def test_gradient_under_jtape_jit_matches_jax(case, dtype):
    xs, index, ct, _ = _arrays(case, dtype)
    backend = autodiff.new(new_backend("jax"))
    x = tensor.from_numpy(xs, backend)
    idx, seed = tensor.from_numpy(index, backend, requires_grad=False), tensor.from_numpy(ct, backend, requires_grad=False)

    def step(idx, seed):
        out = _jtape(case, x, idx)
        loss = (out * seed).sum()
        loss.backward()
        return out

    out = jtape.jit(step, state=[x])(idx, seed)
    want, vjp = jax.vjp(lambda v: _reference(case, v, index), xs)
    np.testing.assert_allclose(out.numpy(), np.asarray(want), rtol=TOL, atol=TOL, err_msg="forward under jtape.jit")
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(vjp(ct)[0]), rtol=TOL, atol=TOL,
                               err_msg="gradient under jtape.jit")


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("case, dtype", PARAMS)
def test_create_graph_gradient_and_its_gradient_match_jax(case, dtype, inner_name):
    """``create_graph`` runs the rules on the tape; differentiating the gradient again runs the
    rules of the rules (gather's gradient is a scatter, whose gradient is a gather)."""
    xs, index, ct, w = _arrays(case, dtype)
    backend = autodiff.new(new_backend(inner_name))
    x, seed = tensor.from_numpy(xs, backend), tensor.from_numpy(ct, backend)
    out = _jtape(case, x, tensor.from_numpy(index, backend, requires_grad=False))
    out.backward(seed, create_graph=True)
    grad_fn = lambda v, c: jax.vjp(lambda u: _reference(case, u, index), v)[1](c)[0]
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(grad_fn(xs, ct)), rtol=TOL, atol=TOL,
                               err_msg="create_graph gradient")
    second = (x.grad * tensor.from_numpy(w, backend, requires_grad=False)).sum()
    got = backend.tape().gradient(second, [x, seed], unconnected_gradients="zero")
    want = jax.grad(lambda v, c: jnp.sum(grad_fn(v, c) * w), argnums=(0, 1))(xs, ct)
    for name, g, r in zip(("x", "output gradient"), got, want):
        np.testing.assert_allclose(g.numpy(), np.asarray(r), rtol=TOL, atol=TOL, err_msg=f"second order, {name}")
