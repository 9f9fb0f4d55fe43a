"""The PyTorch-style Tensor methods of the reductions and shape ops: ``dim=None | int | tuple,
keepdim=False``, ``max``/``min`` with ``(values, indices)``, varargs shapes, ``view``, ``stack``,
each recorded on the tape and differentiated like its backend op."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.backends import JaxBackend, NumpyBackend
from jtape.tensor import DTypeError, ShapeError, Tensor
from jtape.tensor.methods import MinMax

INNERS = {"numpy": NumpyBackend(), "jax": JaxBackend("cpu")}


@pytest.fixture(params=sorted(INNERS))
def backend(request):
    return autodiff.new(INNERS[request.param])


def _x(backend, shape=(2, 3, 4), seed=0):
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.25 - 1.0
    return tensor.from_numpy(values, backend)


REDUCTIONS = [
    ("sum", jnp.sum), ("amax", jnp.max), ("amin", jnp.min), ("prod", jnp.prod),
    ("mean", jnp.mean), ("var", lambda x, axis, keepdims: jnp.var(x, axis=axis, keepdims=keepdims, ddof=1)),
    ("std", lambda x, axis, keepdims: jnp.std(x, axis=axis, keepdims=keepdims, ddof=1)),
    ("norm", lambda x, axis, keepdims: jnp.linalg.vector_norm(x, axis=axis, keepdims=keepdims)),
]


@pytest.mark.parametrize("name, ref", REDUCTIONS, ids=[n for n, _ in REDUCTIONS])
@pytest.mark.parametrize("dim", [None, -1, (-1, 0), ()], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduction_methods_take_none_int_or_tuple_dims(backend, name, ref, dim, keepdim):
    x = _x(backend)
    if name == "norm":
        y = x.norm(dim=dim, keepdim=keepdim)
    else:
        y = getattr(x, name)(dim, keepdim=keepdim)
    expected = ref(jnp.asarray(x.numpy()), axis=dim, keepdims=keepdim)
    assert isinstance(y, Tensor) and tuple(y.shape) == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)
    if name in ("var", "std") and dim == ():
        return                               # one element per slice: n - 1 = 0, NaN as in jax
    cotangent = np.random.default_rng(1).standard_normal(expected.shape)
    (y * tensor.from_numpy(cotangent, backend)).sum().backward()
    _, pullback = jax.vjp(lambda a: ref(a, axis=dim, keepdims=keepdim), jnp.asarray(x.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), pullback(cotangent)[0], rtol=1e-12, atol=1e-12)


def test_sum_and_mean_keep_their_old_behaviour(backend):
    x = tensor.from_slice([1.0, 2.0, 4.0], (3,), backend)
    s, m = x.sum(), x.mean()
    assert s.shape == () and s.item() == 7.0 and m.item() == pytest.approx(7 / 3)
    assert [op.name for op in backend.tape().operations()] == ["Sum", "MeanDim"]   # sum() is still the Sum op
    ints = tensor.from_numpy(np.arange(4, dtype=np.int32), backend)
    assert ints.sum().item() == 6 and ints.sum(0, keepdim=True).dtype is tensor.int32
    with pytest.raises(DTypeError, match=r"mean: got dtype int32; expected a float dtype \(cast first: "
                                         r"t.cast\('float32'\).mean\(\)\)"):
        ints.mean()
    with pytest.raises(DTypeError, match="mean: got dtype int32"):
        ints.mean(0)


def test_float16_mean_over_more_elements_than_float16_can_count_is_exact(backend):
    n = 70_000                                 # > 65,504, the largest float16
    x = tensor.full((n,), 0.5, backend, "float16")
    assert x.mean().item() == 0.5 and x.mean(0, keepdim=True).numpy().tolist() == [0.5]
    x.mean().backward()
    assert x.grad.numpy()[:3].tolist() == [np.float16(1 / n)] * 3        # 1/n rounded once (a subnormal)


def test_max_and_min_over_everything_and_along_a_dim(backend):
    x = tensor.from_numpy(np.array([[1.0, 5.0, 5.0], [7.0, -2.0, 0.0]]), backend)
    assert x.max().item() == 7.0 and x.min().item() == -2.0 and x.max().shape == ()
    values, indices = x.max(1)
    assert isinstance(x.max(1), MinMax) and x.max(dim=1).values is not None
    assert values.numpy().tolist() == [5.0, 7.0] and indices.numpy().tolist() == [1, 0]
    assert indices.dtype is tensor.int32                     # argmax's dtype; the first index on ties
    kept = x.min(-1, keepdim=True)
    assert kept.values.numpy().tolist() == [[1.0], [-2.0]] and kept.indices.numpy().tolist() == [[0], [1]]
    assert x.max(0, True).indices.shape == (1, 3)
    values.sum().backward()                                 # the tie at 5, 5 shares the gradient (amax)
    assert x.grad.numpy().tolist() == [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]
    with pytest.raises(ShapeError, match=r"max: got dim=\(0, 1\); expected one int"):
        x.max((0, 1))
    with pytest.raises(TypeError, match=r"min: got a Tensor for dim; for the elementwise minimum of two tensors "
                                        r"use t.minimum\(other\)"):
        x.min(x)


def test_varargs_and_sequence_forms_of_shape_methods(backend):
    x = _x(backend, (2, 3, 4))
    assert x.permute(2, 0, 1).shape == x.permute((2, 0, 1)).shape == x.permute([2, 0, 1]).shape == (4, 2, 3)
    assert x.repeat(2, 1, 1).shape == x.repeat((2, 1, 1)).shape == (4, 3, 4)
    assert x.repeat(2).shape == (2, 3, 8)                   # NumPy tile: reps apply to the last dims
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12) and x.flatten(0, -2).shape == (6, 4)
    assert x.view(6, 4).shape == x.view((6, 4)).shape == x.reshape(6, 4).shape
    assert x.movedim(0, -1).shape == (3, 4, 2) and x.flip(0).shape == x.shape
    assert [p.shape for p in x.split(3, 1)] == [(2, 1, 4)] * 3          # an int is a count of pieces
    assert [p.shape for p in x.split([1, 3], -1)] == [(2, 3, 1), (2, 3, 3)]
    assert x.pad(((0, 0), (1, 1), (0, 2)), 7.0).shape == (2, 5, 6)
    assert x.tril().shape == x.triu(1).shape == x.shape and x.cumsum(-1).shape == x.shape
    assert x.stack([x, x], -1).shape == tensor.stack([x, x, x], -1).shape == (2, 3, 4, 3)
    with pytest.raises(ShapeError, match="stack: got no tensors; expected at least one"):
        tensor.stack([])


def test_shape_methods_are_recorded_and_differentiate(backend):
    x = _x(backend, (2, 3))
    y = x.permute(1, 0).repeat(2, 1).view(-1).stack([x.flatten().repeat(2)], 0)
    names = [op.name for op in backend.tape().operations()]
    assert names == ["Permute", "Repeat", "Reshape", "Flatten", "Repeat", "Stack"]
    (y * y * y).sum().backward()
    expected = jax.grad(lambda a: jnp.sum(jnp.stack([jnp.tile(a.T, (2, 1)).reshape(-1),
                                                     jnp.tile(a.reshape(-1), 2)]) ** 3))(jnp.asarray(x.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


class _Recorder:
    """A stand-in backend that records the call ``logsumexp`` makes (the op itself belongs to the
    activations family)."""

    def __init__(self):
        self.calls = []

    def logsumexp(self, x, dim, keep_dim):
        self.calls.append((dim, keep_dim))
        return x


@pytest.mark.parametrize("args, kwargs, call", [((), {}, (None, False)), ((1,), {}, (1, False)),
                                                (((0, -1),), {"keepdim": True}, ((0, -1), True))])
def test_logsumexp_method_passes_dims_and_keepdim_to_the_backend_op(args, kwargs, call):
    recorder = _Recorder()
    raw = NumpyBackend().from_numpy(np.zeros((2, 3)))
    Tensor(raw, recorder).logsumexp(*args, **kwargs)
    assert recorder.calls == [call]
