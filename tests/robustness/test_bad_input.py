"""Bad input gives a clear error, and nothing is lost.

The spec table (``tests/spec.py``, run by ``tests/ops/test_errors.py``) holds most bad inputs;
this file checks that the table covers every kind of mistake the reliability issue lists, that
every message names the op, what it got and what it expected, and adds what the table cannot
express: index *values* out of range (checked outside ``jax.jit`` only), tensors from two
backends or devices, static arguments whose type an untyped cache would have confused, and
that an error in the middle of a program leaves the tape usable.
"""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spec import SPECS, np_dtype

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import Device, RawTensor, errors
from jtape.tensor.errors import BackendError, DTypeError, ShapeError

from ..conftest import make_inner

BACKENDS = ("jax", "numpy")


def _tensors(backend, shapes, dtypes):
    return [backend.from_numpy(np.zeros(s, np_dtype(d))) for s, d in zip(shapes, dtypes)]


def _spec_dtypes(spec, err) -> list:
    return list(err.dtypes or [(spec.in_dtypes[i] if i < len(spec.in_dtypes) and spec.in_dtypes[i] else "float32")
                               for i in range(len(err.shapes))])


def spec_errors():
    return [(spec, err) for spec in SPECS for err in spec.errors]


def _message(fn, op: str) -> str:
    """The message of the jtape error ``fn()`` raises; it must start with ``op``'s name."""
    with pytest.raises(errors.JtapeError, match=rf"^{re.escape(op)}:") as info:
        fn()
    return str(info.value)


# -- the table covers every kind of bad input --------------------------------------------------------
BROADCASTING = ("add", "sub", "mul", "div", "equal", "not_equal", "greater", "greater_equal", "lower",
                "lower_equal", "and_", "or_", "where")
WITH_DIM = ("softmax", "sum_dim", "mean_dim", "squeeze", "unsqueeze", "cat", "chunk", "gather", "argmax", "transpose")
REQUIRED = [(op, "which do not broadcast") for op in BROADCASTING] + [
    ("matmul", r"expected a\.shape\[-1\] \(4\) to equal b\.shape\[-2\]"),
    ("conv2d", r"with 3 channels and kernel shape \(2, 4, 3, 3\) expecting 4"),
    ("cat", "expected equal shapes except along dim"),
    ("sum_dim", "got keep_dim=1; expected True or False"),
    ("reshape", "cannot reshape .*expected the same number of elements"),
    ("expand", "cannot expand shape .*expected size 1 or"),
    ("gather", "got index of dtype float32; expected an integer dtype"),
    ("where", "got condition of dtype (float32|int32)"),
    ("cross_entropy", "got targets of dtype float32; expected integer class indices"),
    ("cross_entropy", r"got logits shape \(4,\); expected rank 2"),
    ("cross_entropy", r"got targets shape \(4, 1\); expected rank 1"),
    ("conv2d", r"got kernel 6x6 for input 3x3 with padding \(1, 1\) \(padded 5x5\)"),
    ("conv2d", "got stride=0; expected values >= 1"),
    ("conv2d", r"got stride=\(1, -1\); expected values >= 1"),
    ("max_pool2d", "expected a window no larger than the input"),
    ("max_pool2d", "got stride=0; expected values >= 1"),
    ("max_pool2d", "got stride=-2; expected values >= 1"),
] + [(op, r"got dim=\d+ for a tensor of rank") for op in WITH_DIM] + [
    (op, r"got dim=-\d+ for a tensor of rank") for op in WITH_DIM]


@pytest.mark.parametrize("op, pattern", REQUIRED, ids=[f"{op}-{i}" for i, (op, _) in enumerate(REQUIRED)])
def test_the_spec_table_has_each_kind_of_bad_input(op, pattern):
    """Each mistake the issue lists is an error input of the spec table (which test_errors.py runs
    on every backend, checking the kernel never ran)."""
    matches = [err.match for spec, err in spec_errors() if spec.name == op]
    assert any(re.search(pattern, m) for m in matches), f"{op}: no error input matching {pattern!r} in {matches}"


def _new_errors(backend) -> dict:
    """The bad inputs this file adds, as thunks on ``backend`` (a plain inner backend)."""
    f = lambda *shape: backend.from_numpy(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
    i = lambda values: backend.from_numpy(np.asarray(values, np.int32))
    return {
        "mean_dim keep_dim": lambda: backend.mean_dim(f(3, 4), 0, "yes"),
        "sum_dim keep_dim=1 after a cached keep_dim=True": lambda: (backend.sum_dim(f(3, 4), 0, True),
                                                                     backend.sum_dim(f(3, 4), 0, 1)),
        "sum_dim dim=True after a cached dim=1": lambda: (backend.sum_dim(f(3, 4), 1), backend.sum_dim(f(3, 4), True)),
        "softmax dim=1.0 after a cached dim=1": lambda: (backend.softmax(f(3, 4), 1), backend.softmax(f(3, 4), 1.0)),
        "chunk n=True after a cached n=1": lambda: (backend.chunk(f(3, 4), 1, 0), backend.chunk(f(3, 4), True, 0)),
        "gather index too large": lambda: backend.gather(f(3, 4), 1, i([[0, 4], [1, 1], [2, 3]])),
        "gather index negative": lambda: backend.gather(f(3, 4), -2, i([[0, 1, -1, 2]])),
        "cross_entropy target too large": lambda: backend.cross_entropy(f(4, 5), i([0, 1, 5, 2])),
        "cross_entropy target negative": lambda: backend.cross_entropy(f(4, 5), i([0, -1, 4, 2])),
        "scatter_add index too large": lambda: backend.scatter_add((3, 4), 0, i([[0, 3, 1, 2]]), f(1, 4)),
        "cast to complex": lambda: backend.cast(f(3), "complex64"),
    }


NEW_MESSAGES = {
    "mean_dim keep_dim": (ShapeError, "mean_dim: got keep_dim='yes'; expected True or False"),
    "sum_dim keep_dim=1 after a cached keep_dim=True": (ShapeError, "sum_dim: got keep_dim=1; expected True or False"),
    "sum_dim dim=True after a cached dim=1": (ShapeError, "sum_dim: got dim=True; expected an int"),
    "softmax dim=1.0 after a cached dim=1": (ShapeError, "softmax: got dim=1.0; expected an int"),
    "chunk n=True after a cached n=1": (ShapeError, "chunk: got n=True; expected a positive int"),
    "gather index too large": (
        ShapeError, "gather: got index values in [0, 4] for dim 1 of x shape (3, 4); expected 0 <= index < 4"),
    "gather index negative": (
        ShapeError, "gather: got index values in [-1, 2] for dim 0 of x shape (3, 4); expected 0 <= index < 3"),
    "cross_entropy target too large": (
        ShapeError, "cross_entropy: got targets values in [0, 5] for logits shape (4, 5); expected 0 <= targets < 5"),
    "cross_entropy target negative": (
        ShapeError, "cross_entropy: got targets values in [-1, 4] for logits shape (4, 5); expected 0 <= targets < 5"),
    "scatter_add index too large": (
        ShapeError, "scatter_add: got index values in [0, 3] for dim 0 of shape (3, 4); expected 0 <= index < 3"),
    "cast to complex": (DTypeError, "cast: dtype: got 'complex64'; expected one of float32"),
}


@pytest.mark.parametrize("name", sorted(NEW_MESSAGES))
def test_new_bad_inputs_raise_the_same_clear_error_on_every_backend(name):
    error, message = NEW_MESSAGES[name]
    for backend_name in BACKENDS:
        with pytest.raises(error, match=re.escape(message)) as info:
            _new_errors(make_inner(backend_name))[name]()
        assert message in str(info.value), (backend_name, str(info.value))


def test_every_message_names_the_op_what_it_got_and_what_it_expected():
    backend = NumpyBackend()
    messages = []
    for spec, err in spec_errors():
        tensors = _tensors(backend, err.shapes, _spec_dtypes(spec, err))
        messages.append((spec.name, _message(partial(spec.run, backend, tensors, err.kwargs), spec.name)))
    for name, thunk in _new_errors(backend).items():
        messages.append((name.split()[0], _message(thunk, name.split()[0])))
    for op, message in messages:
        assert message.startswith(op + ":"), f"does not start with the op's name {op!r}: {message}"
        assert re.search(r"\bgot\b|\bcannot\b|\bhas shape\b", message), f"does not say what it got: {message}"
        assert "expected" in message, f"does not say what it expected: {message}"


# -- index values: checked on concrete arrays, skipped under jax.jit ----------------------------------
def test_index_values_are_not_checked_under_jit_where_jax_fills_and_drops():
    """Under jax.jit the values do not exist yet: no error, and the result is JAX's own — an index
    in [-n, 0) counts from the end, any other out-of-range one reads NaN (gather) or is dropped
    (scatter_add). Outside jit the same call raises (test above)."""
    backend = JaxBackend("cpu")
    x = backend.from_numpy(np.arange(12.0).reshape(3, 4))
    index = backend.from_numpy(np.array([[0, 4], [-1, 3], [7, -5]], np.int32))
    got = jax.jit(lambda x, i: backend.gather(x, 1, i))(x, index)
    want = jnp.take_along_axis(jnp.arange(12.0).reshape(3, 4), jnp.array([[0, 4], [-1, 3], [7, -5]]), axis=1)
    np.testing.assert_array_equal(np.asarray(got.data), np.asarray(want))
    assert np.isnan(np.asarray(got.data)).sum() == 3
    with pytest.raises(ShapeError, match="gather: got index values in"):
        backend.gather(x, 1, index)

    targets = backend.from_numpy(np.array([0, 9, 1], np.int32))
    loss = jax.jit(lambda z, t: backend.cross_entropy(z, t))(x, targets)
    assert np.isnan(float(loss.data))
    with pytest.raises(ShapeError, match="cross_entropy: got targets values in"):
        backend.cross_entropy(x, targets)

    src = backend.from_numpy(np.ones((1, 4)))
    rows = backend.from_numpy(np.array([[0, 3, -1, 2]], np.int32))
    out = jax.jit(lambda i, s: backend.scatter_add((3, 4), 0, i, s))(rows, src)
    np.testing.assert_array_equal(np.asarray(out.data), [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])


def test_in_range_index_values_pass_and_the_autodiff_backend_records_nothing_on_error(inner):
    backend = autodiff.new(inner)
    logits = tensor.from_numpy(np.random.default_rng(0).standard_normal((4, 5)), backend)
    good = tensor.from_numpy(np.array([0, 4, 2, 3], np.int32), backend)
    bad = tensor.from_numpy(np.array([0, 4, 2, 5], np.int32), backend)
    loss = logits.cross_entropy(good)
    assert backend.tape().num_ops() == 1
    with pytest.raises(ShapeError, match=r"cross_entropy: got targets values in \[0, 5\]"):
        logits.cross_entropy(bad)
    with pytest.raises(ShapeError, match=r"gather: got index values in \[0, 5\]"):
        logits.gather(1, bad.reshape(4, 1))
    assert backend.tape().num_ops() == 1
    loss.backward()
    assert logits.grad.shape == (4, 5)


# -- tensors from two backends or devices ----------------------------------------------------------------
def _first_float_sample(spec):
    """The spec's first sample with inputs, and its inputs' dtypes (float32 where the op takes it)."""
    dtype = "float32" if "float32" in spec.dtypes else spec.dtypes[0]
    for sample in spec.samples:
        if sample.shapes:
            return sample, spec.input_dtypes(sample, dtype)
    return None, None


MIXABLE = [s for s in SPECS if _first_float_sample(s)[0] is not None]


@pytest.mark.parametrize("spec", MIXABLE, ids=[s.name for s in MIXABLE])
def test_every_op_rejects_a_tensor_from_another_backend(spec):
    sample, dtypes = _first_float_sample(spec)
    arrays = spec.make_inputs(sample, "float32" if "float32" in spec.dtypes else spec.dtypes[0],
                              np.random.default_rng(0))
    for own, other in ((JaxBackend("cpu"), NumpyBackend()), (NumpyBackend(), JaxBackend("cpu"))):
        for k in range(len(arrays)):
            tensors = [(other if j == k else own).from_numpy(a, d) for j, (a, d) in enumerate(zip(arrays, dtypes))]
            holds = type(tensors[k].data).__name__
            with pytest.raises(BackendError, match=rf"^{spec.name}: got a tensor holding {holds} on cpu; expected"):
                spec.run(own, tensors, sample.kwargs)


def test_a_tensor_from_another_device_is_rejected():
    backend = JaxBackend("cpu")
    x = backend.from_numpy(np.ones((2, 2), np.float32))
    elsewhere = RawTensor(x.data, x.shape, x.dtype, Device.GPU)  # labelled as living on another device
    with pytest.raises(BackendError, match=r"^add: got a tensor holding \w+ on gpu; expected a jax array on cpu"):
        backend.add(x, elsewhere)
    with pytest.raises(BackendError, match=r"^exp: got a tensor holding \w+ on gpu"):
        autodiff.new(backend).exp(elsewhere)
    with pytest.raises(BackendError, match="^matmul: got a list; expected a RawTensor made by JaxBackend"):
        backend.matmul(x, [[1.0]])


def test_mixing_through_the_autodiff_backend_and_the_seed(inner):
    backend = autodiff.new(inner)
    other = NumpyBackend() if isinstance(inner, JaxBackend) else JaxBackend("cpu")
    x = tensor.from_numpy(np.ones((2, 3), np.float32), backend)
    y = (x * x).sum_dim(0)
    stranger = other.from_numpy(np.ones((3,), np.float32))
    with pytest.raises(BackendError, match="^add: got a tensor holding"):
        backend.add(y.raw(), stranger)
    with pytest.raises(BackendError, match="^Tensor.backward|^backward"):
        y.backward(tensor.Tensor(stranger, backend))
    assert backend.tape().num_ops() == 2
    y.backward(tensor.ones_like(y))              # a non-scalar output needs its gradient given
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.ones((2, 3)))


# -- an error in the middle of a program loses nothing -------------------------------------------------
def test_an_error_mid_program_leaves_the_tape_usable(inner):
    """Run x*x, then every bad input of the table and of this file on the same recording
    AutodiffBackend, then finish the program: the tape holds exactly the good ops, and the
    gradient is the one the good program alone gives."""
    backend = autodiff.new(inner)
    x = tensor.from_numpy(np.array([1.0, -2.0, 3.0], np.float32), backend)
    h = x * x
    before = backend.tape().operations()
    other = NumpyBackend() if isinstance(inner, JaxBackend) else JaxBackend("cpu")
    failures = 0
    for spec, err in spec_errors():
        tensors = _tensors(inner, err.shapes, _spec_dtypes(spec, err))
        with pytest.raises(errors.JtapeError, match=re.escape(err.match)):
            spec.run(backend, tensors, err.kwargs)
        failures += 1
    for name, thunk in _new_errors(backend).items():
        with pytest.raises(errors.JtapeError, match=re.escape(NEW_MESSAGES[name][1])):
            thunk()
        failures += 1
    with pytest.raises(BackendError, match=r"^mul: got a tensor holding .*tensors from two backends or devices do not mix"):
        backend.mul(h.raw(), other.from_numpy(np.ones(3, np.float32)))
    with pytest.raises(DTypeError, match="Tensor.backward: got a tensor of dtype int32; expected a float tensor"):
        tensor.from_numpy(np.array([1, 2], np.int32), backend).sum().backward()
    with pytest.raises(ShapeError, match=r"backward \(output_grad\): got a gradient of shape \(2,\)"):
        h.backward(tensor.ones((2,), backend), retain_graph=True)
    # The ops the thunks above ran successfully before failing (cached-key cases) are on the tape
    # too; everything recorded still reads tensors that exist, and the program finishes normally.
    ops = backend.tape().operations()
    assert ops[:len(before)] == before and failures > 100
    y = (h * 3.0).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.array([1.0, -2.0, 3.0]))
    assert backend.tape().num_ops() == 0


def test_transpose_rejects_bool_axes_even_after_an_equal_int_call_was_cached():
    from jtape.backends import NumpyBackend
    from jtape.tensor.errors import ShapeError as _ShapeError
    b = NumpyBackend()
    x = b.from_numpy(np.zeros((2, 3), np.float32))
    assert b.transpose(x, 1, 0).shape == (3, 2)
    with pytest.raises(_ShapeError, match=r"transpose: got axis True in axes \(True, 0\); expected ints"):
        b.transpose(x, True, 0)
