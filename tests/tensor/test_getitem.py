"""``t[key]``: NumPy's indexing rules, forward and gradient, against NumPy and ``jax.vjp`` of
``x[key]`` — for a table of keys (ints, slices with either step, None, ..., int arrays, lists and
int Tensors, advanced indices in NumPy's tricky placements, bool masks) on both backends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtape
from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor.errors import DTypeError, ShapeError
from jtape.tensor.indexing import IndexOutOfRangeError


class T:
    """An int Tensor index (built on the backend under test) holding ``values`` in ``dtype``."""

    def __init__(self, values, dtype="int32"):
        self.values = np.asarray(values).astype(dtype)


class M(T):
    """A bool Tensor mask."""

    def __init__(self, values):
        super().__init__(values, "bool")


R = np.random.default_rng(0)
MASK_45 = R.random((4, 5)) < 0.5
MASK_5 = np.array([True, False, True, True, False])

# (id, shape of x, key)
KEYS = [
    ("int", (4, 5, 6), 2),
    ("negative int", (4, 5, 6), -1),
    ("ints", (4, 5, 6), (1, -2)),
    ("all ints", (4, 5, 6), (-4, 4, -6)),
    ("slice", (4, 5, 6), slice(1, 3)),
    ("reversed", (4, 5, 6), slice(None, None, -1)),
    ("step 2", (4, 5, 6), (slice(None), slice(None, None, 2))),
    ("negative step from 3", (4, 5, 6), (slice(None), slice(3, 0, -2))),
    ("step -3 to the start", (7, 2), slice(None, None, -3)),
    ("negative bounds", (4, 5, 6), (slice(-2, None), slice(-4, -1))),
    ("clipped bounds", (4, 5, 6), (slice(-100, 100), slice(2, 50, 2))),
    ("empty slice", (4, 5, 6), slice(3, 1)),
    ("past the end", (4, 5, 6), (slice(None), slice(10, 20))),
    ("slice and int", (4, 5, 6), (slice(1, None, 2), 3)),
    ("ellipsis int", (4, 5, 6), (Ellipsis, 0)),
    ("ellipsis alone", (4, 5, 6), Ellipsis),
    ("empty tuple", (4, 5, 6), ()),
    ("None", (4, 5, 6), None),
    ("None between", (4, 5, 6), (None, 1, None, slice(None, None, -2))),
    ("int ellipsis None", (4, 5, 6), (1, Ellipsis, None)),
    ("0-d: ellipsis", (), Ellipsis),
    ("0-d: None", (), (None, None)),
    ("list with repeats", (4, 5, 6), [0, 2, 2, 0]),
    ("negative list", (4, 5, 6), [-1, 0, -4]),
    ("2-D int array", (4, 5, 6), np.array([[0, 1], [3, 3]])),
    ("int tensor", (4, 5, 6), T([3, 1, 3])),
    ("int64 tensor, negative", (4, 5, 6), T([-1, -1, 2], "int64")),
    ("uint8 tensor", (4, 5, 6), T([3, 0, 3], "uint8")),
    ("0-d int tensor", (4, 5, 6), T(2)),
    ("two adjacent arrays", (4, 5, 6), ([0, 1, 1], [2, 3, 2])),
    ("arrays in the middle", (4, 5, 6), (slice(None), [0, 4], [5, -6])),
    ("arrays separated by a slice", (4, 5, 6), ([0, 1], slice(None), [2, 3])),
    ("arrays separated by None", (4, 5, 6), (slice(None), [0, 1], None, [2, 3])),
    ("int and array separated", (4, 5, 6), (1, slice(None), [0, 2, 0])),
    ("int and array adjacent", (4, 5, 6), (slice(None), 1, [0, 2])),
    ("broadcasting arrays", (4, 5, 6), (slice(1, 3), [[0], [2]], [1, 2, 3])),
    ("broadcasting, separated", (4, 5, 6), ([[0, 1]], Ellipsis, [[2], [3]])),
    ("ellipsis then array", (4, 5, 6), (Ellipsis, [0, 0, 5])),
    ("tensor and list", (4, 5, 6), (T([0, 3]), [1, 1])),
    ("tensor, reversed slice, int", (4, 5, 6), (T([[1, 1], [0, 2]]), slice(None, None, -1), 2)),
    ("tensor, slice, tensor", (4, 5, 6), (T([[0], [3]], "int64"), slice(1, 4), T([1, 5, 5]))),
    ("empty list", (4, 5, 6), []),
    ("empty array, separated", (4, 5, 6), (np.zeros((0,), np.int64), slice(None), 1)),
    ("uint8 past 255 rows", (300, 2), T([255, 10, 255, 0], "uint8")),
    ("two uint8 indices: positions past 255", (20, 20), (T([19, 19, 3], "uint8"), T([19, 0, 19], "uint8"))),
    ("bool mask tensor", (4, 5), M(MASK_45)),
    ("bool mask, NumPy", (4, 5, 6), MASK_45),
    ("bool mask on dim 1", (4, 5, 6), (slice(None), MASK_5)),
    ("bool mask and int", (4, 5, 6), (MASK_45, 2)),
    ("bool mask separated from an array", (4, 5, 6), (slice(None, 2), M(MASK_5), [0, 5, 5])),
    ("bool list", (4, 5, 6), [True, False, False, True]),
    ("all-False mask", (4, 5, 6), np.zeros((4,), bool)),
    ("True", (4, 5, 6), True),
    ("False", (4, 5, 6), False),
    ("slice then True", (4, 5, 6), (slice(None), True)),
    ("0-d: True", (), True),
    ("zero-size dim, slice", (0, 3), (slice(None), slice(None, None, -1))),
    ("zero-size dim, array", (3, 0), [2, 0]),
]


def _entries(key):
    return key if isinstance(key, tuple) else (key,)


def jtape_key(key, backend):
    def one(k):
        return tensor.from_numpy(k.values, backend) if isinstance(k, T) else k
    return tuple(map(one, key)) if isinstance(key, tuple) else one(key)


def numpy_key(key):
    def one(k):
        if isinstance(k, T):
            return k.values
        if isinstance(k, list):
            return np.asarray(k, dtype=None if k else np.int64)
        return k
    return tuple(map(one, key)) if isinstance(key, tuple) else one(key)


def _array(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("name, shape, key", KEYS, ids=[k[0] for k in KEYS])
def test_forward_and_gradient_match_numpy_and_jax_vjp(backend, name, shape, key):
    xs = _array(shape)
    expected = xs[numpy_key(key)]
    x = tensor.from_numpy(xs, backend)
    y = x[jtape_key(key, backend)]
    assert tuple(y.shape) == expected.shape and y.dtype.value == "float64"
    np.testing.assert_array_equal(y.numpy(), expected)

    ct = np.random.default_rng(1).standard_normal(expected.shape)
    out, pullback = jax.vjp(lambda a: a[numpy_key(key)], jnp.asarray(xs))
    np.testing.assert_array_equal(np.asarray(out), expected)
    (oracle,) = pullback(jnp.asarray(ct))
    y.backward(tensor.from_numpy(ct, backend))
    assert x.grad is not None and tuple(x.grad.shape) == shape
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(oracle), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("inner", [NumpyBackend(), JaxBackend("cpu")], ids=["numpy", "jax"])
def test_repeated_indices_accumulate_and_half_dtypes_work(inner):
    backend = autodiff.new(inner)
    for dtype in ("float32", "float16", "bfloat16"):
        x = tensor.from_numpy(np.arange(6.0).reshape(3, 2), backend, dtype=dtype)
        y = x[[2, 0, 2, 2]]
        y.backward(tensor.ones(y.shape, backend, dtype=dtype))
        assert x.grad.dtype.value == dtype
        np.testing.assert_array_equal(x.grad.numpy().astype(np.float64), [[1, 1], [0, 0], [3, 3]])


@pytest.mark.parametrize("inner", [NumpyBackend(), JaxBackend("cpu")], ids=["numpy", "jax"])
def test_ops_on_the_tape(inner):
    backend = autodiff.new(inner)
    x = tensor.from_numpy(_array((4, 5)), backend)

    def names(fn):
        backend.tape().clear()
        fn()
        return [op.name for op in backend.tape().operations()]

    assert names(lambda: x[1:, ::-2]) == ["StridedSlice"]
    assert names(lambda: x[1]) == ["StridedSlice", "Reshape"]
    assert names(lambda: x[1, None]) == ["StridedSlice"]             # (1, 5) either way: no reshape
    assert names(lambda: x[None]) == ["Reshape"]
    assert names(lambda: x[[0, 0]]) == ["IndexSelect"]
    assert names(lambda: x[[0, 1], [1, 1]]) == ["Reshape", "IndexSelect"]
    assert names(lambda: x[::2, [0, 4]]) == ["StridedSlice", "IndexSelect"]


def test_integer_tensors_index_without_recording_anything_but_the_gather(backend):
    x = tensor.from_numpy(_array((4, 5)), backend)
    i = tensor.from_numpy(np.array([-1, 0], np.int64), backend)
    backend.tape().clear()
    y = x[i, 1:]
    assert [op.name for op in backend.tape().operations()] == ["StridedSlice", "IndexSelect"]
    np.testing.assert_array_equal(y.numpy(), _array((4, 5))[[-1, 0], 1:])


def test_iteration_walks_the_first_dim(backend):
    xs = _array((3, 2))
    rows = list(tensor.from_numpy(xs, backend))
    assert len(rows) == 3
    for row, expected in zip(rows, xs):
        np.testing.assert_array_equal(row.numpy(), expected)
    with pytest.raises(TypeError, match="len"):
        list(tensor.from_numpy(np.float64(1.0), backend))


# -- errors ------------------------------------------------------------------------------------------
ERRORS = [
    (4, IndexOutOfRangeError, "getitem: got index 4 for dim 0 of size 4 (shape (4, 5, 6)); expected -4 <= index < 4"),
    ((0, -6), IndexOutOfRangeError, "getitem: got index -6 for dim 1 of size 5 (shape (4, 5, 6)); expected -5"),
    ([0, 7], IndexOutOfRangeError, "getitem: got index values in [0, 7] for dim 0 of size 4 (shape (4, 5, 6))"),
    ((slice(None), [-6, 1]), IndexOutOfRangeError, "getitem: got index values in [-6, 1] for dim 1 of size 5"),
    (T([1, 4]), IndexOutOfRangeError, "getitem: got index values in [1, 4] for dim 0 of size 4"),
    ((0, 0, 0, 0), IndexOutOfRangeError, "getitem: got an index for 4 dims of a tensor of rank 3 (shape (4, 5, 6))"),
    ((Ellipsis, 0, Ellipsis), ShapeError, "getitem: got 2 '...' in one index; expected at most one"),
    (1.5, TypeError, "getitem: got an index of type float; expected an int, slice, None, ..., a list or array"),
    ([0.5, 1.0], DTypeError, "getitem: got an index array of dtype float64; expected integers or bools"),
    (T([0.5], "float32"), DTypeError, "getitem: got an index tensor of dtype float32; expected an integer or bool"),
    (np.ones((4, 4), bool), IndexOutOfRangeError,
     ("getitem: got a bool mask of shape (4, 4) for dims 0..1 of shape (4, 5, 6); expected the mask's shape (4, 5)")),
    (([0, 1], [0, 1, 2]), ShapeError, "getitem: got index arrays of shapes (2,) and (3,), which do not broadcast"),
    (slice(0.5, 2), ShapeError, "getitem: got slice(0.5, 2, None); expected ints or None as its start, stop and step"),
    (slice(None, None, 0), ShapeError, "getitem: got slice(None, None, 0); expected a non-zero step"),
]


@pytest.mark.parametrize("key, error, message", ERRORS, ids=[e[2][9:60] for e in ERRORS])
def test_bad_keys_raise_clear_errors(backend, key, error, message):
    x = tensor.from_numpy(_array((4, 5, 6)), backend)
    with pytest.raises(error) as info:
        x[jtape_key(key, backend)]
    assert message in str(info.value)
    assert backend.tape().num_ops() == 0


def test_an_out_of_range_index_is_an_index_error_too():
    assert issubclass(IndexOutOfRangeError, IndexError) and issubclass(IndexOutOfRangeError, ShapeError)


def test_item_assignment_names_the_out_of_place_alternatives(backend):
    x = tensor.from_numpy(_array((3,)), backend)
    with pytest.raises(TypeError, match=r"Tensor does not support item assignment \(t\[key\] = value\).*"
                                        r"t\.masked_fill\(mask, value\).*other\.where\(mask, t\)"):
        x[0] = 1.0


# -- under jtape.jit -----------------------------------------------------------------------------------
def test_indexing_compiles_and_equals_eager_and_jax():
    backend = autodiff.new(JaxBackend("cpu"))
    xs, ids = _array((6, 5)), np.array([[5, 0], [2, 5]], np.int32)

    def step(x, i):
        y = x[1:, ::-2][i] * x[i, None, 4] + x[..., [0, 0, 3]].sum()
        loss = (y * y).sum()
        (g,) = backend.tape().gradient(loss, [x])
        return loss, g

    x, i = tensor.from_numpy(xs, backend), tensor.from_numpy(ids - 1, backend)
    eager = step(x, i)
    compiled = jtape.jit(step)(x, i)

    def ref(a):
        y = a[1:, ::-2][ids - 1] * a[ids - 1, None, 4] + a[..., [0, 0, 3]].sum()
        return (y * y).sum()

    loss, grad = jax.value_and_grad(ref)(jnp.asarray(xs))
    for got in (eager, compiled):
        np.testing.assert_allclose(got[0].numpy(), loss, rtol=1e-12)
        np.testing.assert_allclose(got[1].numpy(), grad, rtol=1e-12)


def test_a_traced_bool_mask_raises_naming_masked_fill_and_where():
    backend = autodiff.new(JaxBackend("cpu"))
    x = tensor.from_numpy(_array((4,)), backend)

    @jtape.jit
    def step(x):
        return x[x > 0].sum()

    with pytest.raises(ShapeError, match=r"getitem: got a bool mask of shape \(4,\) holding a traced value .*"
                                         r"x\.masked_fill\(mask, value\) or x\.where\(mask, other\)"):
        step(x)
    np.testing.assert_allclose(jtape.jit(lambda x: x[MASK_5[:4]].sum())(x).numpy(),
                               _array((4,))[MASK_5[:4]].sum(), rtol=1e-12)   # a NumPy mask is concrete


# -- second order --------------------------------------------------------------------------------------
@pytest.mark.parametrize("inner", [NumpyBackend(), JaxBackend("cpu")], ids=["numpy", "jax"])
def test_hessian_vector_product_through_indexing_matches_jax(inner):
    backend = autodiff.new(inner)
    xs, v = _array((4, 5)), _array((4, 5), seed=3)
    idx = np.array([3, 0, 3, 1])

    def f(a, lib):
        y = a[::-1, 1:][idx] * a[idx, None, 2] + a[1, ::2].sum()
        return (lib.sin(y) * y).sum()

    x = tensor.from_numpy(xs, backend)
    tape = backend.tape()
    y = f(x, type("lib", (), {"sin": staticmethod(lambda t: t.sin())}))
    (g,) = tape.gradient(y, [x], create_graph=True)
    (h,) = tape.gradient((g * tensor.from_numpy(v, backend)).sum(), [x])
    expected = jax.jvp(jax.grad(lambda a: f(a, jnp)), (jnp.asarray(xs),), (jnp.asarray(v),))[1]
    np.testing.assert_allclose(h.numpy(), np.asarray(expected), rtol=1e-11, atol=1e-12)
