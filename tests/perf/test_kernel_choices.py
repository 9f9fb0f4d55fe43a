"""Both sides of every per-platform kernel choice compute the same thing.

``conv2d`` / ``conv2d_kernel_grad`` run im2col + matmul on CPU for few input channels and
``lax.conv_general_dilated`` elsewhere; ``max_pool2d_grad`` routes with a one-hot on CPU and with
XLA's select-and-scatter elsewhere (``lax.platform_dependent``). The op tests check the branch of
the platform they run on against the oracle; here the two branches are checked against each other
directly, so the one a CPU never runs is checked too (strides, padding, dilation, ties).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape.ops import conv_kernels as ck
from jtape.ops import pool_kernels as pk

CONVS = [  # (C, O, KH, KW, stride, padding, dilation, H, W)
    (1, 4, 3, 3, (1, 1), (1, 1), (1, 1), 9, 8),
    (3, 5, 2, 3, (2, 1), (0, 2), (2, 1), 11, 10),
    (2, 3, 3, 3, (3, 2), (1, 0), (1, 2), 12, 9),
    (1, 2, 5, 5, (1, 1), (2, 2), (1, 1), 7, 7),
]


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", CONVS[:1] + [pytest.param(c, marks=pytest.mark.slow) for c in CONVS[1:]])
def test_im2col_and_lax_conv_agree(case, dtype):
    c, o, kh, kw, s, p, d, h, w = case
    assert ck._im2col_ok((o, c, kh, kw), 1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, c, h, w)).astype(dtype))
    k = jnp.asarray(rng.standard_normal((o, c, kh, kw)).astype(dtype))
    want = ck._conv_lax(x, k, s, p, d, 1)
    got = ck._conv_im2col(x, k, s, p, d)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)
    g = jnp.asarray(rng.standard_normal(want.shape).astype(dtype))
    want_k = ck._kernel_grad_lax(x, g, k.shape, s, p, d, 1)
    got_k = ck._kernel_grad_im2col(x, g, k.shape, s, p, d)
    np.testing.assert_allclose(np.asarray(got_k), np.asarray(want_k), rtol=tol, atol=tol * 10)


def test_im2col_only_for_few_input_channels_and_no_groups():
    assert ck._im2col_ok((16, 3, 3, 3), 1)
    assert not ck._im2col_ok((32, 16, 3, 3), 1)
    assert not ck._im2col_ok((4, 1, 3, 3), 2)


POOLS = [  # (kernel, stride, padding, H)
    ((2, 2), (2, 2), (0, 0), 8),
    ((2, 2), (2, 2), (0, 0), 7),
    ((3, 3), (2, 2), (1, 1), 9),
    ((3, 2), (1, 2), (1, 0), 7),
]


@pytest.mark.parametrize("dtype", [np.float32, pytest.param(np.float64, marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", POOLS[2:3] + [pytest.param(c, marks=pytest.mark.slow) for c in POOLS[:2] + POOLS[3:]])
def test_max_pool_backward_one_hot_and_select_and_scatter_agree(case, dtype):
    kernel, stride, padding, h = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, h, h + 1)).astype(dtype)
    x[0, 0, :3, :3] = 1.0                                  # ties: the first max (row-major) wins in both
    x = jnp.asarray(x)
    g = jnp.asarray(rng.standard_normal(pk.max_pool2d_jax(x, kernel, stride, padding).shape).astype(dtype))
    one_hot = pk._max_pool2d_grad_onehot(x, g, kernel, stride, padding)
    select = jax.jit(lambda x, g: pk._max_pool2d_grad_select_scatter(x, g, kernel, stride, padding))(x, g)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(np.asarray(select), np.asarray(one_hot), rtol=tol, atol=tol)
    chosen = pk.max_pool2d_grad_jax(x, g, kernel, stride, padding)           # this platform's branch
    np.testing.assert_allclose(np.asarray(chosen), np.asarray(one_hot), rtol=tol, atol=tol)
