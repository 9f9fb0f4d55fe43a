"""The user-facing Tensor, the tensor model and the creation functions."""

import jax
import numpy as np
import pytest

from jtape import tensor
from jtape.backends import JaxBackend
from jtape.tensor import DataType, Device, RawTensor, Shape
from jtape.tensor.errors import BackendError, DTypeError, ShapeError


def test_datatype_spellings():
    assert DataType.of("float32") is tensor.float32
    assert DataType.of(np.float64) is tensor.float64
    assert DataType.of(np.dtype("bool")) is tensor.bool_
    assert DataType.of(jax.numpy.bfloat16) is tensor.bfloat16
    assert tensor.float16.is_float and tensor.int64.is_int and tensor.bool_.is_bool
    assert tensor.int64.needs_x64 and not tensor.int32.needs_x64
    assert {d.value for d in DataType} == {"float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"}
    with pytest.raises(DTypeError, match="dtype: got 'complex64'; expected one of"):
        DataType.of("complex64")


@pytest.mark.parametrize("dtype", list(DataType), ids=lambda d: d.value)
def test_every_datatypes_kind_and_numpy_dtype_agree_with_numpy(dtype):
    """The kind properties (read off attributes set once per member) for every dtype, against
    NumPy's own classification of the same dtype (bfloat16: ml_dtypes', a float)."""
    np_dtype = np.dtype(jax.numpy.bfloat16) if dtype.value == "bfloat16" else np.dtype(dtype.value)
    assert dtype.numpy == np_dtype and dtype.jax == np_dtype and np.dtype(dtype) == np_dtype
    is_float = dtype.value == "bfloat16" or np.issubdtype(np_dtype, np.floating)
    assert dtype.is_float is is_float and dtype.floating is is_float
    assert dtype.is_int is bool(np.issubdtype(np_dtype, np.integer))
    assert dtype.is_bool is (np_dtype == np.bool_)
    assert dtype.needs_x64 is (np_dtype.itemsize == 8) and dtype.x64 is dtype.needs_x64
    assert sum([dtype.is_float, dtype.is_int, dtype.is_bool]) == 1
    assert dtype.itemsize == np_dtype.itemsize
    if dtype.is_int:
        assert dtype.int_range == (int(np.iinfo(np_dtype).min), int(np.iinfo(np_dtype).max))
    if dtype.is_float:
        assert dtype.max_finite == float(jax.numpy.finfo(np_dtype).max)


def test_shape_is_a_tuple():
    s = Shape((2, 3))
    assert s == (2, 3) and s.ndim == 2 and s.size == 6 and hash(s) == hash((2, 3))
    assert Shape(4) == (4,) and Shape(()).size == 1
    with pytest.raises(ShapeError, match="non-negative"):
        Shape((2, -1))


def test_rawtensor_identity_and_pytree(inner):
    a = inner.from_numpy(np.ones(3, np.float32))
    b = inner.from_numpy(np.ones(3, np.float32))
    assert a != b and len({a: 1, b: 2}) == 2 and a == a
    leaves, treedef = jax.tree_util.tree_flatten(a)
    assert len(leaves) == 1
    c = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(c, RawTensor) and c.shape == (3,) and c.dtype is tensor.float32 and c.device is Device.CPU


def test_creation(inner):
    t = tensor.from_slice([1, 2, 3, 4, 5, 6], (2, 3), inner)
    assert t.dtype is tensor.float32 and t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ShapeError, match=r"from_slice: got 5 values for shape \(2, 3\); expected 6"):
        tensor.from_slice([1, 2, 3, 4, 5], (2, 3), inner)
    assert tensor.from_numpy(np.arange(3, dtype=np.int64), inner).dtype is tensor.int64
    assert tensor.zeros((2,), inner, "float64").numpy().tolist() == [0.0, 0.0]
    assert tensor.ones((2,), inner, "int32").numpy().dtype == np.int32
    assert tensor.full((2, 2), 7.5, inner).numpy().tolist() == [[7.5, 7.5], [7.5, 7.5]]
    assert tensor.arange(4, backend=inner).numpy().tolist() == [0, 1, 2, 3]
    assert tensor.arange(0.0, 1.0, 0.5, backend=inner).dtype is tensor.float32
    r1 = tensor.randn((3, 2), inner, seed=1).numpy()
    r2 = tensor.randn((3, 2), inner, seed=1).numpy()
    np.testing.assert_array_equal(r1, r2)
    k = tensor.rand((1000,), inner, key=jax.random.PRNGKey(0)).numpy()
    assert 0.0 <= k.min() and k.max() < 1.0
    with pytest.raises(tensor.ArgumentError, match="expected at most one of seed= and key="):
        tensor.randn((2,), inner, seed=0, key=jax.random.PRNGKey(0))
    assert tensor.zeros_like(t).shape == t.shape and tensor.ones_like(t).numpy().sum() == 6


def test_operators_and_scalars(inner):
    x = tensor.from_slice([1.0, 2.0, 4.0], (3,), inner)
    np.testing.assert_allclose((x + 1).numpy(), [2, 3, 5])
    np.testing.assert_allclose((1 + x).numpy(), [2, 3, 5])
    np.testing.assert_allclose((x - 1).numpy(), [0, 1, 3])
    np.testing.assert_allclose((1 - x).numpy(), [0, -1, -3])
    np.testing.assert_allclose((x * 2).numpy(), [2, 4, 8])
    np.testing.assert_allclose((2 * x).numpy(), [2, 4, 8])
    np.testing.assert_allclose((x / 2).numpy(), [0.5, 1, 2])
    np.testing.assert_allclose((2 / x).numpy(), [2, 1, 0.5])
    np.testing.assert_allclose((-x).numpy(), [-1, -2, -4])
    np.testing.assert_allclose((x * x / x - x).numpy(), [0, 0, 0])
    assert (x > 1.5).numpy().tolist() == [False, True, True]
    assert (x == 2.0).numpy().tolist() == [False, True, False]
    assert (x != 2.0).numpy().tolist() == [True, False, True]
    assert ((x >= 2.0) & (x <= 2.0)).numpy().tolist() == [False, True, False]
    assert (~(x < 2.0) | (x == 1.0)).numpy().tolist() == [True, True, True]
    m = tensor.from_slice([1.0, 2.0, 3.0, 4.0], (2, 2), inner)
    np.testing.assert_allclose((m @ m).numpy(), [[7, 10], [15, 22]])
    np.testing.assert_allclose(m.T.numpy(), [[1, 3], [2, 4]])
    assert x.sum().item() == 7.0 and float(x.mean()) == pytest.approx(7 / 3)
    assert len(x) == 3 and x.ndim == 1 and x.device is Device.CPU
    assert np.asarray(x).tolist() == [1, 2, 4]
    assert "shape=(3,)" in repr(x) and "float32" in repr(x)


def test_scalar_ops_keep_dtype(inner):
    for dt in ("float16", "bfloat16", "float32", "float64"):
        x = tensor.ones((2,), inner, dt)
        for y in (x + 0.5, x - 0.5, x * 0.5, x / 0.5):
            assert y.dtype is DataType.of(dt) and y.numpy().dtype == DataType.of(dt).numpy
    i = tensor.ones((2,), inner, "int32")
    assert (i * 3).dtype is tensor.int32
    with pytest.raises(DTypeError, match=r"mul_scalar: got scalar 0.5 for a tensor of dtype int32; expected an integral value"):
        i * 0.5
    with pytest.raises(DTypeError, match="div_scalar: got dtype int32; expected a float dtype"):
        i / 2


def test_item_bool_and_errors(inner):
    x = tensor.from_slice([1.0, 2.0], (2,), inner)
    with pytest.raises(ShapeError, match=r"item: got a tensor of shape \(2,\); expected exactly one element"):
        x.item()
    with pytest.raises(ShapeError, match=r"item: got a tensor of shape \(2,\); expected exactly one element"):
        bool(x > 0.0)
    assert bool(tensor.full((), 1.0, inner) > 0.0)
    with pytest.raises(TypeError, match="add: got an operand of type str"):
        x + "a"


def test_mixing_backends_is_an_error():
    from jtape.backends import NumpyBackend
    a = tensor.ones((2,), JaxBackend("cpu"))
    b = tensor.ones((2,), NumpyBackend())
    with pytest.raises(BackendError, match="add: got tensors from two backends"):
        a + b


def test_jax_backend_devices():
    assert JaxBackend("cpu").device() is Device.CPU
    assert JaxBackend(jax.devices("cpu")[0]).name() == "jax"
    with pytest.raises(BackendError, match="device: got"):
        JaxBackend(42)
    with pytest.raises(BackendError, match="device: got 'quantum'"):
        JaxBackend("quantum")


def test_static_arguments_never_recompile():
    b = JaxBackend("cpu")
    x = b.from_numpy(np.ones((2, 3, 4), np.float32))
    b.reshape(x, (4, 6))
    b.sum_dim(x, 1, True)
    b.transpose(x, 2, 0, 1)
    compiled = b._kernels                # op name -> its jitted kernel (on CPU, once it has run and is known not to convolve)
    sizes = (compiled["reshape"]._cache_size(), compiled["sum_dim"]._cache_size(), compiled["transpose"]._cache_size())
    b.reshape(x, [4, 6])                 # a list, not a tuple
    b.reshape(x, Shape((4, 6)))
    b.reshape(x, np.array([4, 6]))
    b.sum_dim(x, -2, True)               # same dim, spelled negative
    b.transpose(x, [2, 0, 1])
    b.transpose(x, -1, 0, 1)
    b.add_scalar(x, 0.25)
    n = compiled["add_scalar"]._cache_size()
    b.add_scalar(x, 0.75)                # a new scalar value is a traced argument
    assert compiled["add_scalar"]._cache_size() == n
    assert sizes == (compiled["reshape"]._cache_size(), compiled["sum_dim"]._cache_size(),
                     compiled["transpose"]._cache_size())
