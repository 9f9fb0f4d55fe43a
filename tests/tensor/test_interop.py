"""Interop: tensor.asarray (no host copy for jax arrays and tracers), from_numpy of jax arrays, DLPack,
DataType equal to NumPy / jax / string dtypes, Tensor.to and Module.to."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import DataType
from jtape.tensor.errors import ArgumentError, DTypeError, TapeError

from ..conftest import TEST_DEVICE


@pytest.fixture
def jb():
    return autodiff.new(JaxBackend(TEST_DEVICE))


# -- asarray -------------------------------------------------------------------------------------
def test_asarray_uses_a_jax_array_as_it_is_without_any_transfer(jb):
    a = jax.device_put(jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), jax.local_devices(backend=TEST_DEVICE)[0])
    with jax.transfer_guard("disallow_explicit"):
        t = tensor.asarray(a, jb)
        u = tensor.from_numpy(a, jb)             # from_numpy of a jax array: the same path
        v = tensor.asarray(a, jb, dtype="float16")   # a cast runs on the device
    assert t.data is a and u.data is a
    assert t.shape == (2, 3) and t.dtype is tensor.float32 and not t.requires_grad and u.requires_grad
    assert v.dtype is tensor.float16 and isinstance(v.data, jax.Array)
    np.testing.assert_array_equal(v.numpy(), np.arange(6.0).reshape(2, 3))


def test_the_host_guard_does_catch_a_host_round_trip(jb):
    """The guard used above fails on the old route — values to the host, then ``device_put`` back —
    so the test above can fail. (On a CPU the device-to-host half is not a transfer to JAX; the
    host-to-device half is.)"""
    a = jnp.arange(3.0)
    with jax.transfer_guard("disallow_explicit"), pytest.raises(Exception, match="Disallowed host-to-device"):
        jb.inner().from_numpy(np.asarray(a))


def test_asarray_inside_jax_jit_of_user_code_takes_tracers(jb):
    w = tensor.from_numpy(np.array([1.0, 2.0, 3.0], np.float32), autodiff.new(JaxBackend(TEST_DEVICE),
                                                                           defer=False))

    @jax.jit
    def f(v):
        t = tensor.asarray(v, w.backend)
        return (t * w).sum().data

    np.testing.assert_allclose(f(jnp.array([1.0, 1.0, 2.0], jnp.float32)), 9.0)


def test_asarray_of_a_tracer_refuses_a_numpy_backend():
    nb = autodiff.new(NumpyBackend())

    @jax.jit
    def f(v):
        return tensor.asarray(v, nb).data

    with pytest.raises(TapeError, match="got a traced jax array .* expected a JaxBackend"):
        f(jnp.ones(2))


def test_asarray_of_python_and_numpy_data(backend):
    lst = tensor.asarray([[1.0, 2.0], [3.0, 4.0]], backend)
    assert lst.dtype is tensor.float32 and lst.shape == (2, 2) and not lst.requires_grad
    assert tensor.asarray([1, 2, 3], backend).dtype is tensor.int32
    assert tensor.asarray(True, backend).dtype is tensor.bool_
    assert tensor.asarray(2.5, backend).item() == 2.5 and tensor.asarray(2.5, backend).shape == ()
    assert tensor.asarray(np.float16(1.5), backend).dtype is tensor.float16     # NumPy scalars keep theirs
    assert tensor.asarray(np.arange(3, dtype=np.uint8), backend).dtype is tensor.uint8
    assert tensor.asarray([1, 2], backend, dtype="float32").dtype is tensor.float32
    assert tensor.asarray([1.0], backend, requires_grad=True).requires_grad
    for n in (2, 1000, 100_000) * 5:   # jax.device_put may share a NumPy buffer or read it late: tensors must not
        arr = np.ones(n, np.float32)
        t, u = tensor.asarray(arr, backend), tensor.from_numpy(arr, backend)
        arr[0] = 5                                # the tensors do not see later writes
        assert t.numpy()[0] == 1 and u.numpy()[0] == 1
    with pytest.raises(ArgumentError, match="asarray: got a list NumPy cannot make an array of"):
        tensor.asarray([[1.0], [2.0, 3.0]], backend)
    with pytest.raises(ArgumentError, match="asarray: got a dict; expected"):
        tensor.asarray({"a": 1}, backend)


def test_asarray_of_a_tensor_shares_on_its_backend_and_converts_from_another(backend):
    t = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    assert tensor.asarray(t, backend) is t
    c = tensor.asarray(t, backend, dtype="float64")
    assert c.dtype is tensor.float64
    c.sum().backward()                            # the cast is recorded: the gradient reaches t
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 1.0])
    other = autodiff.new(NumpyBackend() if isinstance(t.data, jax.Array) else JaxBackend(TEST_DEVICE))
    moved = tensor.asarray(t, other)
    assert moved.backend is other and not moved.requires_grad
    np.testing.assert_array_equal(moved.numpy(), t.numpy())
    assert t.to(other).requires_grad and t.to(backend) is t


def test_asarray_defaults_to_the_process_default_backend():
    t = tensor.asarray(np.zeros(2, np.float32))
    assert t.backend is jtape.default_backend()


# -- DLPack --------------------------------------------------------------------------------------
def test_dlpack_to_numpy_and_jax(backend):
    t = tensor.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), backend) * 2.0   # pending: flushed
    on_host = isinstance(t.data, np.ndarray) or TEST_DEVICE == "cpu"
    assert t.__dlpack_device__()[0] == (1 if on_host else 2)      # kDLCPU, or kDLCUDA on a GPU
    j = jax.dlpack.from_dlpack(t)
    np.testing.assert_array_equal(np.asarray(j), np.arange(6).reshape(2, 3) * 2)
    assert j.dtype == jnp.float32
    if on_host:                                                   # NumPy imports host memory only
        n = np.from_dlpack(t)
        np.testing.assert_array_equal(n, np.arange(6).reshape(2, 3) * 2)
        assert n.dtype == np.float32


def test_dlpack_of_a_traced_tensor_is_refused():
    b = autodiff.new(JaxBackend(TEST_DEVICE), defer=False)

    @jax.jit
    def f(v):
        tensor.asarray(v, b).__dlpack__()

    with pytest.raises(TapeError, match="__dlpack__: .* traced value"):
        f(jnp.ones(2))


# -- dtype equality ------------------------------------------------------------------------------
def test_dtype_compares_equal_to_numpy_jax_and_names(backend):
    t = tensor.from_numpy(np.ones(2, np.float32), backend)
    assert t.dtype == np.float32 and t.dtype == "float32" and t.dtype == jnp.float32
    assert t.dtype == np.dtype("float32") and np.float32 == t.dtype and np.dtype("float32") == t.dtype
    assert t.dtype != np.float64 and t.dtype != "float16" and t.dtype != "nonsense" and t.dtype != 3
    assert np.dtype(t.dtype) == np.float32 and np.zeros(2, t.dtype).dtype == np.float32
    assert jtape.tensor.float32 is t.dtype
    assert tensor.bfloat16 == ml_dtypes.bfloat16 and tensor.bfloat16 == jnp.bfloat16
    assert tensor.bool_ == np.bool_ and tensor.int32 == "int32"
    for d in DataType:                            # equal things hash alike
        assert hash(d) == hash(np.dtype(d)) and {np.dtype(d): d}[d] is d
        assert [e for e in DataType if e == d] == [d]


# -- Tensor.to and Module.to ---------------------------------------------------------------------
def test_tensor_to_a_dtype_is_a_recorded_cast(backend):
    t = tensor.from_numpy(np.array([1.5, 2.5], np.float32), backend)
    h = t.to("bfloat16")
    assert h.dtype is tensor.bfloat16
    h.to(np.float32).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 1.0])


def test_module_to_casts_floating_parameters_and_buffers_in_place(backend):
    model = nn.Sequential(nn.Linear(3, 4, backend, seed=0), nn.ReLU(), nn.Linear(4, 2, backend, seed=1))
    model[0].register_buffer("count", tensor.from_numpy(np.array(3, np.int32), backend))
    model[0].register_buffer("mean", tensor.from_numpy(np.zeros(4, np.float32), backend))
    weight = model[0].weight
    before = weight.numpy()
    assert model.to("bfloat16") is model
    assert model[0].weight is weight and weight.dtype is tensor.bfloat16 and weight.requires_grad
    assert model[0].mean.dtype is tensor.bfloat16 and not model[0].mean.requires_grad
    assert model[0].count.dtype is tensor.int32
    np.testing.assert_array_equal(weight.numpy(), before.astype(ml_dtypes.bfloat16))
    out = model(tensor.from_numpy(np.ones((2, 3)), backend, "bfloat16"))
    assert out.dtype is tensor.bfloat16
    out.sum().backward()
    assert weight.grad.dtype is tensor.bfloat16
    with pytest.raises(DTypeError, match="Module.to: got dtype int32; expected a float dtype"):
        model.to("int32")
    with pytest.raises(ArgumentError, match="Module.to: got a list; expected a dtype"):
        model.to([1])


def test_module_to_moves_to_another_backend(backend):
    model = nn.Linear(3, 2, backend, seed=0)
    other = autodiff.new(NumpyBackend() if isinstance(model.weight.data, jax.Array) else JaxBackend(TEST_DEVICE))
    before = model.weight.numpy()
    model.to(other)
    assert model.weight.backend is other and model.bias.backend is other
    np.testing.assert_array_equal(model.weight.numpy(), before)
    out = model(tensor.from_numpy(np.ones((1, 3), np.float32), other))
    out.sum().backward()
    assert model.weight.grad.shape == (2, 3)
