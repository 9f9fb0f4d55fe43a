"""pickle and copy.deepcopy of Tensors, Parameters, Buffers, backends, Modules and Optimizers."""

import copy
import pickle
import subprocess
import sys
import textwrap

import jax
import ml_dtypes
import numpy as np
import pytest

import jtape
from jtape import autodiff, nn, optim, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.nn.module import Buffer
from jtape.tensor.errors import TapeError

from .conftest import TEST_DEVICE


def _roundtrip(obj):
    return pickle.loads(pickle.dumps(obj))


def _model(backend):
    return nn.Sequential(nn.Linear(4, 8, backend, seed=0), nn.ReLU(), nn.Linear(8, 3, backend, seed=1))


def _data(backend):
    rng = np.random.default_rng(0)
    x = tensor.from_numpy(rng.standard_normal((16, 4)).astype(np.float32), backend, requires_grad=False)
    y = tensor.from_numpy(rng.integers(0, 3, 16).astype(np.int32), backend, requires_grad=False)
    return x, y


def _train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


# -- tensors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int32", "bool"])
def test_tensor_pickle_keeps_values_dtype_shape_and_flags(backend, dtype):
    values = (np.arange(6).reshape(2, 3) % 2 if dtype == "bool" else np.arange(6).reshape(2, 3))
    t = tensor.from_numpy(values, backend, dtype, requires_grad=dtype in ("float32", "bfloat16"))
    u = _roundtrip(t)
    assert type(u) is tensor.Tensor and u.shape == (2, 3) and u.dtype is t.dtype
    assert u.requires_grad is t.requires_grad and u.grad is None
    np.testing.assert_array_equal(u.numpy(), t.numpy())
    assert u.raw() is not t.raw()


def test_tensor_pickle_carries_the_gradient_and_a_deferred_value(backend):
    t = tensor.from_numpy(np.array([1.0, 2.0, 3.0], np.float32), backend)
    y = t * t + 1.0                      # on a deferred backend still pending: pickling runs it
    (t * t).sum().backward()
    t.raw().name = "x"
    u, v = _roundtrip((t, y))
    np.testing.assert_array_equal(u.grad.numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(v.numpy(), [2.0, 5.0, 10.0])
    assert u.raw().name == "x" and u.grad.dtype is tensor.float32


def test_tensor_pickle_lands_on_the_equal_process_default_backend():
    default = jtape.default_backend()
    t = tensor.asarray(np.ones(2, np.float32), default)
    u, w = _roundtrip(t), _roundtrip(t)                     # two separate loads
    assert u.backend is default and w.backend is default
    (u + w).sum()                                           # so they work together


def test_a_backend_unlike_the_default_unpickles_to_one_shared_backend():
    eager = autodiff.new(JaxBackend(TEST_DEVICE), defer=False)
    numpy_backend = autodiff.new(NumpyBackend())
    for b in (eager, numpy_backend):
        u, w = _roundtrip(tensor.asarray([1.0], b)), _roundtrip(tensor.asarray([2.0], b))
        assert u.backend is w.backend and u.backend is not jtape.default_backend()
        assert u.backend.name() == b.name() and u.backend.is_deferred() == b.is_deferred()
        assert u.backend.tape().is_recording()
        assert type(u.data) is type(tensor.asarray([1.0], b).data)
        np.testing.assert_array_equal((u + w).numpy(), [3.0])


def test_a_traced_tensor_cannot_be_pickled():
    b = autodiff.new(JaxBackend(TEST_DEVICE), defer=False)

    @jax.jit
    def f(v):
        pickle.dumps(tensor.asarray(v, b))

    with pytest.raises(TapeError, match="pickle: got a tensor of shape \\(2,\\) holding a traced value"):
        f(jax.numpy.ones(2))


def test_tensor_deepcopy_keeps_the_backend_and_copies_the_values(backend):
    t = tensor.from_numpy(np.array([1.0, 2.0], np.float32), backend)
    (t * t).sum().backward()
    c = copy.deepcopy(t)
    assert c.backend is t.backend and c.raw() is not t.raw() and c.requires_grad
    np.testing.assert_array_equal(c.numpy(), t.numpy())
    np.testing.assert_array_equal(c.grad.numpy(), [2.0, 4.0])
    if isinstance(t.data, np.ndarray):
        assert not np.shares_memory(c.data, t.data)
    shared = tensor.Tensor(t.raw(), t.backend)               # two tensors on one RawTensor stay so
    a, b = copy.deepcopy((t, shared))
    assert a.raw() is b.raw() and a.raw() is not t.raw()
    assert copy.deepcopy(backend) is backend and copy.copy(backend.inner()) is backend.inner()
    s = copy.copy(t)                                         # shallow: the same RawTensor
    assert s is not t and s.raw() is t.raw() and type(s) is type(t)


def test_parameter_and_buffer_keep_their_class():
    b = jtape.default_backend()
    p = nn.Parameter(tensor.from_numpy(np.ones(2, np.float32), b))
    buf = Buffer(tensor.from_numpy(np.zeros(2, np.float32), b))
    for q, r in (_roundtrip((p, buf)), copy.deepcopy((p, buf))):
        assert type(q) is nn.Parameter and type(r) is Buffer and not r.requires_grad and q.requires_grad


def test_bfloat16_values_survive_pickle_exactly():
    t = tensor.from_numpy(np.array([1.0078125, -3.5], ml_dtypes.bfloat16), jtape.default_backend())
    assert _roundtrip(t).numpy().tobytes() == t.numpy().tobytes()


# -- modules and optimizers ----------------------------------------------------------------------
def test_model_and_optimizer_pickle_and_continue_training_identically(backend):
    model = _model(backend)
    model[0].register_buffer("seen", tensor.from_numpy(np.array(7, np.int32), backend))
    opt = optim.Adam(model.parameters(), lr=0.05)
    x, y = _data(backend)
    _train(model, opt, x, y, 3)
    model2, opt2 = _roundtrip((model, opt))
    assert opt2.params[0] is model2[0].weight and opt2.steps == 3 and type(opt2) is optim.Adam
    assert model2[0].seen.item() == 7 and type(model2[0].seen) is Buffer
    for a, b in zip(jax.tree_util.tree_leaves(opt.state), jax.tree_util.tree_leaves(opt2.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))       # Adam's moments and count
    x2, y2 = _roundtrip((x, y))
    # The restored objects live on another AutodiffBackend (restore: one per inner backend and mode),
    # where this step's structure is new: in deferred mode its first run goes op by op while the
    # original's runs its compiled program, and the two agree to float rounding, not bit for bit.
    np.testing.assert_allclose(_train(model, opt, x, y, 3), _train(model2, opt2, x2, y2, 3), rtol=1e-6)


def test_optimizer_made_from_an_iterator_and_with_a_schedule_pickles():
    b = jtape.default_backend()
    model = _model(b)
    opt = optim.SGD(iter(model.parameters()), lr=0.1, momentum=0.9)
    model2, opt2 = _roundtrip((model, opt))
    assert [p is q for p, q in zip(opt2.params, model2.parameters())] == [True] * 4
    assert opt2.param_groups[0]["momentum"] == 0.9 and opt2.param_groups[0]["lr"] == 0.1


def test_an_unpicklable_custom_transform_says_so():
    import optax
    b = jtape.default_backend()
    opt = optim.Optimizer(_model(b).parameters(), optax.chain(optax.scale(-0.1)))
    with pytest.raises((AttributeError, pickle.PicklingError), match="local object"):
        pickle.dumps(opt)


def test_deepcopied_model_trains_independently_of_the_original(backend):
    model = _model(backend)
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = _data(backend)
    _train(model, opt, x, y, 2)
    model2, opt2 = copy.deepcopy((model, opt))
    assert opt2.params[0] is model2[0].weight and model2[0].weight is not model[0].weight
    assert model2[0].weight.backend is backend
    before = model[0].weight.numpy().copy()
    copied = _train(model2, opt2, x, y, 5)             # the copy trains ...
    np.testing.assert_array_equal(model[0].weight.numpy(), before)    # ... the original does not move
    assert not np.array_equal(model2[0].weight.numpy(), before)
    assert _train(model, opt, x, y, 5) == copied       # from the same point, momentum included


def test_a_model_pickled_in_one_process_loads_onto_the_default_backend_of_another(tmp_path):
    model = _model(jtape.default_backend())
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    code = textwrap.dedent(f"""
        import pickle, numpy as np, jtape
        from jtape import tensor
        model = pickle.loads(open({str(path)!r}, "rb").read())
        assert model[0].weight.backend is jtape.default_backend()
        out = model(tensor.asarray(np.ones((2, 4), np.float32)))
        print(out.shape, round(float(out.sum().item()), 4))
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    x = tensor.asarray(np.ones((2, 4), np.float32))
    assert done.stdout.split() == ["(2,", "3)", str(round(float(model(x).sum().item()), 4))]
