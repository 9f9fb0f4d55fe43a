"""Python's operators on Tensors: every operator and its reflected form, with a Tensor, a Python
number, a NumPy scalar, a NumPy array or a jax array on the other side, on both backends —
values against jax.numpy and gradients against jax.grad; the operand conversion rules; NumPy's
ufuncs (``__array_ufunc__``); and micrograd's first example written with jtape."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import DataType, Tensor
from jtape.tensor.errors import DTypeError

INNERS = {"jax": JaxBackend("cpu"), "numpy": NumpyBackend()}
T = np.array([[1.5, 0.5, 2.0], [0.75, 1.25, 3.0]])        # positive: a safe base and divisor

# The other operand, by kind: (make it on a backend, its value for the jax reference).
OTHERS = {
    "tensor": (lambda b: tensor.from_numpy(np.array([0.5, 2.0, 1.5]), b), np.array([0.5, 2.0, 1.5])),
    "int": (lambda b: 2, 2),
    "float": (lambda b: 2.5, 2.5),
    "np.float32": (lambda b: np.float32(1.5), 1.5),
    "np.float64": (lambda b: np.float64(0.75), 0.75),
    "np.int64": (lambda b: np.int64(3), 3),
    "np.array": (lambda b: np.array([0.5, 2.0, 1.5]), np.array([0.5, 2.0, 1.5])),
    "np.array 0-d": (lambda b: np.array(1.25), 1.25),
    "np.array int": (lambda b: np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0])),
    "np.array float32 2-d": (lambda b: np.full((2, 1), 0.5, np.float32), np.full((2, 1), 0.5)),
    "jax array": (lambda b: jnp.array([0.5, 2.0, 1.5]), np.array([0.5, 2.0, 1.5])),
}
BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "**": operator.pow}


def _backend(inner_name):
    return autodiff.new(INNERS[inner_name])


@pytest.mark.parametrize("inner_name", INNERS)
@pytest.mark.parametrize("kind", OTHERS)
@pytest.mark.parametrize("symbol", BINARY)
@pytest.mark.parametrize("side", ["tensor left", "tensor right"])
def test_binary_operators_with_every_kind_of_operand(inner_name, kind, symbol, side):
    backend = _backend(inner_name)
    fn = BINARY[symbol]
    make, value = OTHERS[kind]
    x = tensor.from_numpy(T, backend, "float32")
    other = make(backend)
    if isinstance(other, Tensor):
        other = other.cast("float32")
    y = fn(x, other) if side == "tensor left" else fn(other, x)
    assert isinstance(y, Tensor) and y.backend is backend and y.dtype is DataType.FLOAT32, (type(y), y)

    def reference(a):
        v = jnp.asarray(value, jnp.float64) if not isinstance(value, int) else value
        return fn(a, v) if side == "tensor left" else fn(v, a)

    t64 = jnp.asarray(T)
    np.testing.assert_allclose(y.numpy(), np.asarray(reference(t64)), rtol=2e-6)
    y.sum().backward()
    expected = jax.grad(lambda a: jnp.sum(reference(a)))(t64)
    np.testing.assert_allclose(x.grad.numpy(), np.asarray(expected), rtol=2e-6)


@pytest.mark.parametrize("inner_name", INNERS)
@pytest.mark.parametrize("kind", ["tensor", "np.array", "jax array"])
def test_matmul_and_its_reflected_form(inner_name, kind):
    backend = _backend(inner_name)
    rng = np.random.default_rng(0)
    left, right = rng.standard_normal((4, 2)), rng.standard_normal((3, 5))
    x = tensor.from_numpy(T, backend)
    wrap = {"tensor": lambda a: tensor.from_numpy(a, backend), "np.array": np.asarray, "jax array": jnp.asarray}[kind]
    y = wrap(left) @ x                       # (4, 2) @ (2, 3): __rmatmul__ (or np.matmul via __array_ufunc__)
    z = x @ wrap(right)                      # (2, 3) @ (3, 5)
    assert isinstance(y, Tensor) and isinstance(z, Tensor)
    np.testing.assert_allclose(y.numpy(), left @ T, rtol=1e-6)
    np.testing.assert_allclose(z.numpy(), T @ right, rtol=1e-6)
    (y.sum() + z.sum()).backward()
    expected = jax.grad(lambda a: jnp.sum(left @ a) + jnp.sum(a @ right))(jnp.asarray(T))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("inner_name", INNERS)
def test_unary_operators(inner_name):
    backend = _backend(inner_name)
    values = np.array([-2.0, 0.0, 1.5])
    x = tensor.from_numpy(values, backend)
    assert (+x) is x
    np.testing.assert_array_equal((-x).numpy(), -values)
    np.testing.assert_array_equal(abs(x).numpy(), np.abs(values))
    assert [op.name for op in backend.tape().operations()] == ["Neg", "Abs"]
    (abs(-x) * x).sum().backward()            # d/dx |x|·x = 2|x| (jax's abs slope at 0 is +1)
    np.testing.assert_array_equal(x.grad.numpy(), jax.grad(lambda a: jnp.sum(jnp.abs(-a) * a))(values))
    mask = tensor.from_numpy(np.array([True, False]), backend)
    assert (~mask).numpy().tolist() == [False, True]


@pytest.mark.parametrize("inner_name", INNERS)
@pytest.mark.parametrize("kind", ["int", "float", "np.float32", "np.int64", "np.array", "np.array 0-d", "jax array"])
def test_comparisons_with_scalars_and_arrays_both_ways(inner_name, kind):
    backend = _backend(inner_name)
    x = tensor.from_numpy(np.array([[1.5, 0.5, 2.0], [0.75, 2.0, 3.0]]), backend)
    make, value = OTHERS[kind]
    other, xs = make(backend), x.numpy()
    for fn in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):
        for got, want in ((fn(x, other), fn(xs, value)), (fn(other, x), fn(value, xs))):
            assert isinstance(got, Tensor) and got.dtype is DataType.BOOL, (fn, type(got))
            np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("inner_name", INNERS)
def test_logic_operators_with_bool_arrays(inner_name):
    backend = _backend(inner_name)
    m = tensor.from_numpy(np.array([True, False, True]), backend)
    other = np.array([True, True, False])
    for got, want in ((m & other, [True, False, False]), (other & m, [True, False, False]),
                      (m | other, [True, True, True]), (jnp.asarray(other) | m, [True, True, True])):
        assert isinstance(got, Tensor) and got.numpy().tolist() == want


# -- how an array operand is converted -------------------------------------------------------------------
@pytest.mark.parametrize("inner_name", INNERS)
def test_array_operands_take_the_tensors_dtype(inner_name):
    backend = _backend(inner_name)
    f16 = tensor.from_numpy(np.array([1.0, 2.0]), backend, "float16")
    assert (f16 + np.array([0.5, 0.25])).dtype is DataType.FLOAT16           # float64 array -> float16
    assert (f16 * np.array([2, 3])).dtype is DataType.FLOAT16                # int array -> float16
    np.testing.assert_array_equal((f16 * np.array([True, False])).numpy(), [1.0, 0.0])
    i32 = tensor.from_numpy(np.array([1, 2], np.int32), backend)
    got = i32 + np.array([10, 20], np.int64)
    assert got.dtype is DataType.INT32 and got.numpy().tolist() == [11, 22]
    assert (i32 + np.array([True, False])).numpy().tolist() == [2, 2]
    with pytest.raises(DTypeError, match=r"add: got a float64 array for a tensor of dtype int32; expected an integer "
                                         r"or bool array \(or cast the tensor to a float dtype\)"):
        i32 + np.array([0.5, 1.5])
    with pytest.raises(DTypeError, match=r"mul: got an integer array with values in \[0, 1099511627776\] for a tensor "
                                         r"of dtype int32; expected values in \[-2147483648, 2147483647\]"):
        i32 * np.array([0, 2 ** 40])
    with pytest.raises(DTypeError, match=r"greater: got scalar 0.5 for a tensor of dtype int32; expected an integral"):
        i32 > 0.5
    b = tensor.from_numpy(np.array([True, False]), backend)
    with pytest.raises(DTypeError, match="and_: got a int64 array for a tensor of dtype bool; expected a bool array"):
        b & np.array([1, 0])
    with pytest.raises(DTypeError, match="add: got an array of dtype complex128; expected a float, integer or bool"):
        f16 + np.array([1j, 2j])
    with pytest.raises(TypeError, match="add: got an operand of type list; expected a Tensor, a Python number, or a "
                                        "NumPy or jax array"):
        f16 + [1.0, 2.0]


@pytest.mark.parametrize("inner_name", INNERS)
def test_arrays_given_to_methods_keep_an_index_or_mask_dtype(inner_name):
    backend = _backend(inner_name)
    x = tensor.from_numpy(np.arange(6.0).reshape(2, 3), backend, "float32")
    picked = x.gather(1, np.array([[2], [0]]))                   # an int array stays an index
    assert picked.numpy().tolist() == [[2.0], [3.0]]
    filled = x.where(np.array([[True, False, True], [False, True, False]]), np.zeros((2, 3)))   # a bool mask
    assert filled.dtype is DataType.FLOAT32 and filled.numpy().tolist() == [[0, 0, 2], [0, 4, 0]]
    assert x.maximum(np.array([1.0, 1.0, 10.0])).numpy().tolist() == [[1, 1, 10], [3, 4, 10]]


# -- NumPy ufuncs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("inner_name", INNERS)
def test_operator_ufuncs_run_on_the_tape(inner_name):
    backend = _backend(inner_name)
    x = tensor.from_numpy(T, backend)
    a = np.full((2, 3), 2.0)
    y = np.multiply(a, x) + np.power(x, 2) - np.subtract(1.0, x) + np.negative(x) + np.abs(x) + np.true_divide(x, a)
    assert isinstance(y, Tensor)
    y.sum().backward()
    expected = jax.grad(lambda t: jnp.sum(2 * t + t ** 2 - (1 - t) - t + jnp.abs(t) + t / 2))(jnp.asarray(T))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    assert np.greater(a, x).numpy().tolist() == (2.0 > T).tolist()
    assert np.asarray(x).tolist() == T.tolist() and np.asarray(x, np.float32).dtype == np.float32   # __array__


@pytest.mark.parametrize("inner_name", INNERS)
def test_other_ufuncs_are_refused_naming_the_jtape_method(inner_name):
    x = tensor.from_numpy(T, _backend(inner_name))
    for call, hint in ((lambda: np.exp(x), "use t.exp() instead"), (lambda: np.arctan(x), "use t.atan() instead"),
                       (lambda: np.maximum(x, 1.0), "use t.maximum(other) instead"),
                       (lambda: np.log1p(x), "use t.log1p() instead"),
                       (lambda: np.floor(x), "jtape has no op for it")):
        with pytest.raises(TypeError, match=r"^numpy\.\w+ got a jtape Tensor: it would compute on a copy of the "
                                            r"values, off the tape \(no gradient could reach them\); ") as info:
            call()
        assert hint in str(info.value)
    a = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"numpy.add got a jtape Tensor with out=; expected no keyword arguments "
                                        r"\(a NumPy array cannot hold a Tensor's result: write `a = a \+ t`"):
        a += x
    with pytest.raises(TypeError, match=r"numpy.add.reduce got a jtape Tensor; expected a plain call"):
        np.add.reduce(x)


# -- micrograd's first example -------------------------------------------------------------------------
def _micrograd(a, b, relu):
    """The README program of karpathy/micrograd, written as Python operators."""
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + relu(b + a)
    d += 3 * d + relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    return g


@pytest.mark.parametrize("inner_name", INNERS)
def test_micrograds_first_example(inner_name):
    backend = _backend(inner_name)
    a = tensor.from_numpy(np.array(-4.0), backend)
    b = tensor.from_numpy(np.array(2.0), backend)
    g = _micrograd(a, b, lambda t: t.relu())
    g.backward()
    assert f"{g.item():.4f}" == "24.7041"
    assert f"{a.grad.item():.4f}" == "138.8338" and f"{b.grad.item():.4f}" == "645.5773"
    value, grads = jax.value_and_grad(lambda x, y: _micrograd(x, y, jax.nn.relu), argnums=(0, 1))(-4.0, 2.0)
    np.testing.assert_allclose([g.item(), a.grad.item(), b.grad.item()], [value, *grads], rtol=1e-12)
