"""Convolution and pooling beyond the spec table: the gradient kernels' own rules (what second order
runs) with dilation, groups and padding, against ``jax.vjp`` and finite differences; and the
conventions, with numbers worked out by hand and checked against jax — average pooling counts the
padding, max pooling sends a tie to the first maximum and a window of -inf inputs to its padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jtape import autodiff
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import AvgPool2DGradOp, Conv2DInputGradOp, Conv2DKernelGradOp, MaxPool2DGradOp
from jtape.testing import check_operation

INNERS = {"numpy": NumpyBackend(), "jax": JaxBackend("cpu")}


def _call(name):
    return lambda b, *raws, **kw: getattr(b, name)(*raws, **kw)


GROUPED = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
DEPTHWISE = {"stride": 1, "padding": 1, "dilation": (2, 1), "groups": 3}
POOL = {"kernel_size": 3, "stride": 2, "padding": 1}
KERNEL_RULES = {
    # name: (Operation, op, input shapes, statics, inputs to check (None: all))
    "conv2d_input_grad-grouped": (Conv2DInputGradOp, "conv2d_input_grad", [(2, 6, 3, 5), (6, 2, 3, 2)],
                                  {"input_shape": (2, 4, 7, 9), **GROUPED}, None),
    "conv2d_kernel_grad-grouped": (Conv2DKernelGradOp, "conv2d_kernel_grad", [(2, 4, 7, 9), (2, 6, 3, 5)],
                                   {"kernel_shape": (6, 2, 3, 2), **GROUPED}, None),
    "conv2d_input_grad-depthwise": (Conv2DInputGradOp, "conv2d_input_grad", [(1, 3, 6, 6), (3, 1, 2, 2)],
                                    {"input_shape": (1, 3, 6, 5), **DEPTHWISE}, None),
    "conv2d_kernel_grad-depthwise": (Conv2DKernelGradOp, "conv2d_kernel_grad", [(1, 3, 6, 5), (1, 3, 6, 6)],
                                     {"kernel_shape": (3, 1, 2, 2), **DEPTHWISE}, None),
    # max_pool2d_grad's input only picks positions: its gradient is zero almost everywhere
    "max_pool2d_grad-padded": (MaxPool2DGradOp, "max_pool2d_grad", [(2, 2, 5, 7), (2, 2, 3, 4)], POOL, (1,)),
    "avg_pool2d_grad-padded": (AvgPool2DGradOp, "avg_pool2d_grad", [(2, 2, 3, 4)], {"input_shape": (2, 2, 5, 7),
                                                                                    **POOL}, None),
    "avg_pool2d_grad-overlapping": (AvgPool2DGradOp, "avg_pool2d_grad", [(1, 3, 5, 4)],
                                    {"input_shape": (1, 3, 6, 4), "kernel_size": (2, 3), "stride": 1,
                                     "padding": (0, 1)}, None),
}


@pytest.mark.parametrize("inner_name", sorted(INNERS))
@pytest.mark.parametrize("name", sorted(KERNEL_RULES))
def test_gradient_kernel_rules_match_jax_vjp(name, inner_name):
    op_class, op_name, shapes, kwargs, wrt = KERNEL_RULES[name]
    rng = np.random.default_rng(11)
    inputs = [rng.permutation(int(np.prod(s))).reshape(s) * 0.25 for s in shapes]   # distinct: no max ties
    check_operation(op_class, _call(op_name), *inputs, kwargs=kwargs, wrt=wrt, dtypes=("float64",),
                    backend=INNERS[inner_name])


# -- conventions ---------------------------------------------------------------------------------------
def _grad(backend, out, x, cotangent):
    inner = backend.inner()
    return np.asarray(backend.tape().backward(inner.from_numpy(cotangent), backend, output=out)[x].data)


def _pool_ref(kind, kernel, stride, padding):
    init, reducer = (-jnp.inf, lax.max) if kind == "max" else (0.0, lax.add)
    scale = 1.0 if kind == "max" else 1.0 / (kernel * kernel)
    pads = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    return lambda x: lax.reduce_window(x, init, reducer, (1, 1, kernel, kernel), (1, 1, stride, stride), pads) * scale


@pytest.mark.parametrize("inner_name", sorted(INNERS))
def test_avg_pool_counts_the_padding_in_the_mean(inner_name):
    backend = autodiff.new(INNERS[inner_name])
    x = backend.inner().from_numpy(np.ones((1, 1, 2, 2)))
    out = backend.avg_pool2d(x, 2, 1, 1)
    # Each 2x2 window holds 4, 2 or 1 ones and is divided by 4 all the same (torch's count_include_pad=True).
    np.testing.assert_array_equal(np.asarray(out.data)[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    # Each input element lies in 4 windows, each passing on 1/4 of its gradient.
    np.testing.assert_array_equal(_grad(backend, out, x, np.ones((1, 1, 3, 3)))[0, 0], np.ones((2, 2)))


G = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])


@pytest.mark.parametrize("inner_name", sorted(INNERS))
def test_max_pool_ties_in_padded_windows_go_to_the_first_input_maximum(inner_name):
    backend = autodiff.new(INNERS[inner_name])
    zeros = np.zeros((1, 1, 3, 3))
    x = backend.inner().from_numpy(zeros)
    out = backend.max_pool2d(x, 3, 2, 1)          # 2x2 windows of 3x3, each holding 4 to 9 tied zeros
    got = _grad(backend, out, x, G)
    # window (i, j) starts at row 2i - 1, column 2j - 1: its first input element is (max(2i-1, 0), max(2j-1, 0))
    np.testing.assert_array_equal(got[0, 0], [[1, 10, 0], [100, 1000, 0], [0, 0, 0]])
    np.testing.assert_array_equal(got, jax.vjp(_pool_ref("max", 3, 2, 1), jnp.asarray(zeros))[1](jnp.asarray(G))[0])


@pytest.mark.parametrize("inner_name", sorted(INNERS))
def test_max_pool_window_of_minus_inf_inputs_routes_its_gradient_into_the_padding_as_xla(inner_name):
    backend = autodiff.new(INNERS[inner_name])
    inner = backend.inner()
    minus_inf = np.full((1, 1, 3, 3), -np.inf)
    x, g = inner.from_numpy(minus_inf), inner.from_numpy(G)
    out = backend.max_pool2d(x, 3, 2, 1)
    assert np.all(np.asarray(out.data) == -np.inf)
    # The first tap of windows (0, 0), (0, 1), (1, 0) is padding (-inf, a tie that comes first): their
    # gradient is dropped with the padding; window (1, 1) starts on the input element (1, 1).
    expected = np.array([[[[0.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(_grad(backend, out, x, G), expected)
    oracle = jax.vjp(_pool_ref("max", 3, 2, 1), jnp.asarray(minus_inf))[1](jnp.asarray(G))[0]
    np.testing.assert_array_equal(expected, oracle)
    # The gradient kernel's own rule (second order) reads h back at the same positions (the padding
    # reads 0): the exact transpose of the routing above, <h, route(g)> = <rule(h), g>. (jax's own
    # transpose here, select_and_gather_add, starts its reduce_window from the pair (-inf, 0), so on
    # this all-(-inf) tie it picks differently from its own select_and_scatter_add.)
    backend.tape().clear()
    routed = backend.max_pool2d_grad(x, g, 3, 2, 1)
    np.testing.assert_array_equal(np.asarray(routed.data), expected)
    h = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    got = _grad(backend, routed, g, h)
    np.testing.assert_array_equal(got, [[[[0.0, 0.0], [0.0, 5.0]]]])
    assert np.sum(h * expected) == np.sum(got * G) == 5000.0
