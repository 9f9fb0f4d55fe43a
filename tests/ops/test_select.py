"""The indexing ops beyond the spec table: index values out of range (checked on concrete arrays
only), the gradient kernels' own rules, one_hot's other samples, masked attention scores, the
Tensor spellings, einsum's float32 accumulation, and einsum and embedding under ``jtape.jit``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jtape
from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.ops import IndexAddOp, SliceScatterOp
from jtape.tensor.errors import ShapeError
from jtape.testing import check_operation

from .support import BACKEND_NAMES, new_backend

RNG = np.random.default_rng(0)


@pytest.fixture(params=BACKEND_NAMES + ("autodiff",))
def any_backend(request):
    return autodiff.new(new_backend("numpy")) if request.param == "autodiff" else new_backend(request.param)


# -- index values: concrete arrays are checked, and positions are exact in every index dtype --------
def _raw(backend, values, dtype):
    return backend.from_numpy(np.asarray(values).astype(dtype))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_index_values_out_of_range_raise_on_concrete_arrays(any_backend, dtype):
    b = any_backend
    x = _raw(b, RNG.standard_normal((3, 4)), "float32")
    cases = [
        (lambda: b.index_select(x, 1, _raw(b, [0, 4], dtype)),
         "index_select: got index values in [0, 4] for dim 1 of x shape (3, 4); expected 0 <= index < 4"),
        (lambda: b.embedding(x, _raw(b, [[2, 3]], dtype)),
         "embedding: got ids values in [2, 3] for weight shape (3, 4); expected 0 <= ids < 3"),
        (lambda: b.one_hot(_raw(b, [5, 1], dtype), 5),
         "one_hot: got index values in [1, 5] for n=5 classes; expected 0 <= index < 5"),
        (lambda: b.index_add((2, 4), 0, _raw(b, [2, 0, 1], dtype), x),
         "index_add: got index values in [0, 2] for dim 0 of shape (2, 4); expected 0 <= index < 2"),
    ]
    if dtype != "uint8":
        cases.append((lambda: b.index_select(x, 0, _raw(b, [-1], dtype)),
                      "index_select: got index values in [-1, -1] for dim 0 of x shape (3, 4)"))
    for call, message in cases:
        with pytest.raises(ShapeError) as info:
            call()
        assert message in str(info.value)


@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
def test_uint8_positions_past_255_are_exact_forward_and_backward(inner_name):
    backend = autodiff.new(new_backend(inner_name))
    ws = RNG.standard_normal((300, 2))
    ids = np.array([255, 7, 255, 254, 0], np.uint8)
    w = tensor.from_numpy(ws, backend)
    y = w.embedding(tensor.from_numpy(ids, backend)) + w.index_select(0, tensor.from_numpy(ids, backend))
    np.testing.assert_array_equal(y.numpy(), 2 * ws[ids.astype(int)])
    y.sum().backward()
    expected = np.zeros((300, 2))
    np.add.at(expected, ids.astype(int), 2.0)
    np.testing.assert_array_equal(w.grad.numpy(), expected)
    hot = tensor.from_numpy(ids, backend).one_hot(300)
    assert hot.shape == (5, 300) and hot.dtype.value == "float32"
    np.testing.assert_array_equal(np.argmax(hot.numpy(), axis=1), ids.astype(int))


# -- the gradient kernels' own rules (second order of index_select, embedding and slicing) ----------
def test_index_add_rule_matches_jax_vjp():
    index = RNG.integers(0, 4, 6).astype(np.int32)            # repeats: index_add adds them up
    check_operation(IndexAddOp, lambda b, index, src, **kw: b.index_add(kw["shape"], kw["dim"], index, src),
                    index, RNG.standard_normal((3, 6, 2)), kwargs={"shape": (3, 4, 2), "dim": -2}, dtypes=("float64",))


def test_slice_scatter_rule_matches_jax_vjp():
    slices = ((None, None, -2), (1, None, 3))
    check_operation(SliceScatterOp, lambda b, src, **kw: b.slice_scatter(kw["shape"], kw["slices"], src),
                    RNG.standard_normal((3, 2)), kwargs={"shape": (5, 6), "slices": slices}, dtypes=("float64",))


def test_slice_scatter_checks_src_against_the_slice(any_backend):
    src = any_backend.from_numpy(np.zeros((2, 2)))
    with pytest.raises(ShapeError, match=r"slice_scatter \(src\): got shape \(2, 2\); expected \(3, 2\), the shape "
                                         r"the slices select from \(5, 6\)"):
        any_backend.slice_scatter((5, 6), ((None, None, -2), (1, None, 3)), src)


# -- one_hot: the samples the spec table cannot run (it runs two per index dtype) --------------------
@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("shape, n, dtype", [((), 4, "int32"), ((0, 2), 3, "float32"), ((3,), 1, "bool"),
                                             ((2, 2), 6, "bfloat16"), ((4,), 3, "float64"), ((2, 3), 5, "uint8")])
def test_one_hot_matches_jax(backend_name, shape, n, dtype):
    index = RNG.integers(0, n, shape).astype(np.int64)
    backend = new_backend(backend_name)
    out = backend.one_hot(backend.from_numpy(index), n, dtype)
    expected = np.asarray(jax.nn.one_hot(index, n, dtype=jnp.dtype(out.dtype.numpy)))
    assert out.dtype.value == dtype and tuple(out.shape) == expected.shape
    np.testing.assert_array_equal(np.asarray(out.data), expected)


# -- masked_fill for attention: -inf at masked scores, then softmax -----------------------------------
@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
def test_causal_mask_with_minus_infinity_matches_jax(inner_name):
    backend = autodiff.new(new_backend(inner_name))
    scores = RNG.standard_normal((2, 4, 4))
    upper = np.triu(np.ones((4, 4), bool), k=1)                # broadcasts over the batch
    ct = RNG.standard_normal((2, 4, 4))
    s = tensor.from_numpy(scores, backend)
    p = s.masked_fill(tensor.from_numpy(upper, backend), float("-inf")).softmax(-1)
    p.backward(tensor.from_numpy(ct, backend))

    def ref(a):
        return jax.nn.softmax(jnp.where(upper, -jnp.inf, a), axis=-1)
    out, pullback = jax.vjp(ref, jnp.asarray(scores))
    np.testing.assert_allclose(p.numpy(), out, rtol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), pullback(jnp.asarray(ct))[0], rtol=1e-12, atol=1e-15)
    assert np.all(s.grad.numpy()[:, upper] == 0)


# -- einsum ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inner_name", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_einsum_accumulates_half_dtypes_in_float32(inner_name, dtype):
    """A 4,096-long contraction of values whose sum float16/bfloat16 steps would round away."""
    backend = new_backend(inner_name)
    a = (1.0 + RNG.random((2, 4096)) / 64).astype(jnp.dtype(dtype))
    b = (1.0 + RNG.random(4096) / 64).astype(jnp.dtype(dtype))
    out = backend.einsum("ij,j->i", backend.from_numpy(a), backend.from_numpy(b))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert out.dtype.value == dtype
    rel = np.abs(np.asarray(out.data).astype(np.float64) - exact) / exact
    assert np.all(rel <= 2.0 ** -8), rel            # one final rounding (bfloat16 has 8 bits)


def test_einsum_method_and_tensor_function_spellings(backend):
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))
    x, y = tensor.from_numpy(a, backend), tensor.from_numpy(b, backend)
    np.testing.assert_allclose(x.einsum("ij,jk->ik", y).numpy(), a @ b, rtol=1e-12)
    np.testing.assert_allclose(tensor.einsum("ij,jk->ki", x, y).numpy(), (a @ b).T, rtol=1e-12)
    assert backend.tape().num_ops() == 2


def test_einsum_and_embedding_compile_and_equal_eager_and_jax():
    backend = autodiff.new(JaxBackend("cpu"))
    ws, qs, idx = RNG.standard_normal((10, 4)), RNG.standard_normal((3, 4, 4)), np.array([[1, 9], [1, 0], [4, 4]])

    def step(w, q, ids):
        e = w.embedding(ids)                                           # [3, 2, 4]
        y = tensor.einsum("bti,bij,bsj->bts", e, q, e)                 # a bilinear score per batch
        y = y + tensor.einsum("bii->b", q).reshape((3, 1, 1)) + tensor.einsum("bti->", e)
        loss = (y * y).sum()
        return [loss] + backend.tape().gradient(loss, [w, q])

    args = (tensor.from_numpy(ws, backend), tensor.from_numpy(qs, backend), tensor.from_numpy(idx, backend))
    eager, compiled = step(*args), jtape.jit(step)(*args)

    def ref(w, q):
        e = w[idx]
        y = jnp.einsum("bti,bij,bsj->bts", e, q, e) + jnp.einsum("bii->b", q)[:, None, None] + jnp.sum(e)
        return jnp.sum(y * y)
    loss, grads = jax.value_and_grad(ref, argnums=(0, 1))(jnp.asarray(ws), jnp.asarray(qs))
    for got in (eager, compiled):
        np.testing.assert_allclose(got[0].numpy(), loss, rtol=1e-12)
        for g, want in zip(got[1:], grads):
            np.testing.assert_allclose(g.numpy(), want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("inner", [NumpyBackend(), JaxBackend("cpu")], ids=["numpy", "jax"])
def test_einsum_rule_reads_as_its_derivation(inner):
    """The recorded backward of 'ij,jk->ik' is two einsums with the subscripts swapped."""
    backend = autodiff.new(inner)
    a, b = tensor.from_numpy(RNG.standard_normal((3, 4)), backend), tensor.from_numpy(RNG.standard_normal((4, 5)),
                                                                                       backend)
    out = tensor.einsum("ij,jk->ik", a, b)
    n = backend.tape().num_ops()
    backend.tape().gradient(out.sum(), [a, b], create_graph=True)
    specs = [op.statics()["spec"] for op in backend.tape().operations()[n + 1:] if op.name == "Einsum"]
    assert sorted(specs) == ["ik,ij->jk", "ik,jk->ij"]


def _random_einsum(rng):
    """A random spec over letters a-d: 1-3 operands of rank 0-3, repeated letters (diagonals),
    letters of size 1 in some operands (broadcast), an explicit output of some of the letters."""
    sizes = dict(zip("abcd", rng.integers(2, 5, 4)))
    ranks = [0 if rng.random() < 0.1 else rng.integers(1, 4) for _ in range(rng.integers(1, 4))]
    terms = ["".join(rng.choice(list("abcd"), r)) for r in ranks]
    shapes = []
    for term in terms:
        ones = {c for c in set(term) if rng.random() < 0.2}
        shapes.append(tuple(1 if c in ones else int(sizes[c]) for c in term))
    used = sorted(set("".join(terms)))
    out = "".join(rng.permutation([c for c in used if rng.random() < 0.5])) if used else ""
    return ",".join(terms) + "->" + out, shapes


@pytest.mark.parametrize("seed", range(40))
def test_einsum_of_random_specs_matches_jax_vjp(seed):
    rng = np.random.default_rng(seed)
    spec, shapes = _random_einsum(rng)
    arrays = [rng.standard_normal(s) for s in shapes]
    backend = autodiff.new(NumpyBackend())
    ts = [tensor.from_numpy(a, backend) for a in arrays]
    out = tensor.einsum(spec, *ts)
    expected, pullback = jax.vjp(lambda *xs: jnp.einsum(spec, *xs), *map(jnp.asarray, arrays))
    ct = rng.standard_normal(expected.shape)
    grads = backend.tape().gradient(out, ts, output_gradients=tensor.from_numpy(ct, backend))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12, err_msg=f"{spec} {shapes}")
    for i, (g, want) in enumerate(zip(grads, pullback(jnp.asarray(ct)))):
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=f"{spec} {shapes} input {i}")
