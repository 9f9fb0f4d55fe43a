"""Spec rows of the second round's reductions and shape ops (see ``spec.py`` for the fields).

Conventions checked against jax, each with dedicated samples: ties in amax/amin (the gradient is
shared equally among the tied elements), zeros in prod (one zero in a slice: only the zero has a
slope; several: none has). Every other sample draws values away from such points."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from spec import (
    ANY,
    FLOATS,
    INTS,
    NUMERIC,
    E,
    OpSpec,
    S,
    away_from_zero,
    dim_errors,
    distinct,
    float_only_error,
    mixed_dtype_error,
)

# -- domains ---------------------------------------------------------------------------------------
_TIED: set = set()                  # ids of the amax/amin samples drawn with many ties
_ZEROS: dict = {}                   # prod sample id -> flat positions of its zeros


def tied(sample):
    _TIED.add(sample.id)
    return sample


def with_zeros(sample, *flat: int):
    _ZEROS[sample.id] = flat
    return sample


def extremum_values(rng, shape, dtype, sample):
    """Tied samples: three levels only, so most slices have tied extrema (2, 3 or 4 of them) and
    a few a unique one; other samples: distinct values (no ties)."""
    if sample.id not in _TIED:
        return distinct(rng, shape, dtype, sample)
    levels = rng.integers(0, 3, shape)
    return levels if dtype in INTS else levels * 0.5 - 0.5


def prod_values(rng, shape, dtype, sample):
    """|x| in [0.5, 1.5] (ints: 1 or 2) with a random sign (uint8: positive), and exact zeros at the
    sample's positions."""
    if dtype in INTS:
        values = rng.integers(1, 3, shape) * (1 if dtype == "uint8" else rng.choice([-1, 1], shape))
    else:
        values = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    values = np.array(values, dtype=float if dtype not in INTS else np.int64).reshape(-1)
    values[list(_ZEROS.get(sample.id, ()))] = 0
    return values.reshape(shape)


# -- references: pure jax.numpy ------------------------------------------------------------------------
def _keep_dtype(f):
    return lambda x, **kw: f(x, **kw).astype(x.dtype)


def ref_flatten(x, start_dim, end_dim):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def ref_split(x, sizes_or_n, dim):
    if isinstance(sizes_or_n, int):
        return jnp.split(x, sizes_or_n, axis=dim)
    return jnp.split(x, list(np.cumsum(sizes_or_n)[:-1]), axis=dim)


def ref_pad(x, widths, value):
    """jnp.pad with NumPy's pad_width rule: the widths broadcast to one (before, after) per dim."""
    if x.ndim == 0:
        return x
    pairs = [tuple(int(w) for w in p) for p in np.broadcast_to(np.asarray(widths), (x.ndim, 2))]
    return jnp.pad(x, pairs, constant_values=jnp.asarray(value).astype(x.dtype))


# -- the rows --------------------------------------------------------------------------------------------
def extremum(name: str, ref) -> OpSpec:
    return OpSpec(name, lambda x, dim, keep_dim: ref(x, axis=dim, keepdims=keep_dim), (
        tied(S((3, 4), dim=-1, keep_dim=False)), tied(S((4, 4), dim=(0, 1), keep_dim=True)),
        S((3, 4), dim=None, keep_dim=False), tied(S((3, 3), dim=0, keep_dim=True)),
        tied(S((2, 3, 4), dim=(-1, 0), keep_dim=False)), S((2, 3, 4), dim=-2, keep_dim=True),
        tied(S((6, 5), dim=None, keep_dim=True)), S((2, 1, 3), dim=1, keep_dim=False), S((5,), dim=-1, keep_dim=True),
        S((), dim=None, keep_dim=False), S((0, 3), dim=1, keep_dim=False), S((0, 3), dim=-1, keep_dim=True),
    ), NUMERIC, grad=(0,), domain=extremum_values, errors=dim_errors(name, (3, 4)) + (
        E((3, 4), dim=(0, -2), match=f"{name}: got dims (0, -2) for a tensor of rank 2; expected each dim at most once"),
        E((0, 3), dim=0, match=f"{name}: got shape (0, 3) with dim 0 of size 0; expected non-empty dims to reduce"),
        E((3, 0), dim=None, match=f"{name}: got shape (3, 0) with dim 1 of size 0"),
        E((3, 4), dim=0, keep_dim=1, match=f"{name}: got keep_dim=1; expected True or False"),
        E((3, 4), dim=0.5, match=f"{name}: got dim=0.5; expected an int"),
        E((3,), dim=0, dtypes=("bool",), error="DTypeError", match=f"{name}: got dtype bool; expected a numeric dtype")))


def arg_extremum(name: str, ref) -> OpSpec:
    return OpSpec(name, lambda x, dim: ref(x, axis=dim).astype(jnp.int32), (
        S((3, 4), dim=-1), S((2, 3, 4), dim=-2), S((4, 4), dim=0), S((2, 1, 3), dim=1), S((5,), dim=0),
        S((0, 3), dim=1),
    ), NUMERIC, domain=distinct, errors=dim_errors(name, (3, 4)) + (
        E((0, 3), dim=0, match=f"{name}: got shape (0, 3) with dim 0 of size 0; expected a non-empty dim"),
        E((3,), dim=0, dtypes=("bool",), error="DTypeError", match=f"{name}: got dtype bool")))


def variance(name: str, ref) -> OpSpec:
    return OpSpec(name, lambda x, dim, keep_dim, correction: ref(x, axis=dim, keepdims=keep_dim, ddof=correction), (
        S((3, 4), dim=-1, keep_dim=False, correction=1), S((4, 4), dim=(0, 1), keep_dim=True, correction=0),
        S((3, 4), dim=None, keep_dim=False, correction=1), S((2, 3, 4), dim=(0, -1), keep_dim=False, correction=0),
        S((2, 3, 4), dim=-2, keep_dim=True, correction=1), S((3, 3), dim=0, keep_dim=False, correction=2),
        S((5,), dim=0, keep_dim=True, correction=0.5), S((2, 1, 3), dim=2, keep_dim=False, correction=1),
        S((0, 3), dim=1, keep_dim=False, correction=1),
    ), FLOATS, grad=(0,), errors=dim_errors(name, (3, 4)) + (
        E((3, 4), dim=(1, -1), match=f"{name}: got dims (1, -1) for a tensor of rank 2; expected each dim at most once"),
        E((3, 4), dim=0, keep_dim=False, correction="1", error="DTypeError",
          match=f"{name}: got correction '1' of type str; expected an int or float"),
        float_only_error(name, (3, 4), dim=0)))


SPECS: tuple = (
    # reductions
    extremum("amax", jnp.max),
    extremum("amin", jnp.min),
    arg_extremum("argmin", jnp.argmin),
    OpSpec("prod", _keep_dtype(lambda x, dim, keep_dim: jnp.prod(x, axis=dim, keepdims=keep_dim)), (
        with_zeros(S((3, 4), dim=-1, keep_dim=False), 1, 4, 7),        # row 0: one zero, row 1: two, row 2: none
        with_zeros(S((2, 3), dim=None, keep_dim=False), 4),            # one zero in all
        with_zeros(S((4, 4), dim=0, keep_dim=True), 4, 2, 10, 3, 7, 11),   # columns with 1, 2, 3 zeros
        with_zeros(S((2, 3, 4), dim=(0, -1), keep_dim=False), 14, 4, 19),  # slices j=0: one zero, j=1: two
        with_zeros(S((3, 4), dim=None, keep_dim=True), 0, 11),         # two zeros in all: every slope is 0
        S((2, 3, 4), dim=1, keep_dim=False), S((2, 3, 4), dim=(-1, -3), keep_dim=True),
        S((2, 1, 3), dim=1, keep_dim=False), S((5,), dim=-1, keep_dim=True), S((), dim=None, keep_dim=False),
        S((0, 3), dim=0, keep_dim=False), S((3, 0), dim=-1, keep_dim=True), S((7, 9), dim=1, keep_dim=False),
    ), NUMERIC, grad=(0,), domain=prod_values, errors=dim_errors("prod", (3, 4)) + (
        E((3, 4), dim=(0, 0), match="prod: got dims (0, 0) for a tensor of rank 2; expected each dim at most once"),
        E((3,), dim=0, dtypes=("bool",), error="DTypeError", match="prod: got dtype bool; expected a numeric dtype"))),
    OpSpec("cumsum", _keep_dtype(lambda x, dim: jnp.cumsum(x, axis=dim)), (
        S((3, 4), dim=-1), S((2, 3, 4), dim=1), S((4, 4), dim=0), S((2, 1, 3), dim=-2), S((5,), dim=0),
        S((1,), dim=-1), S((0, 3), dim=1), S((3, 0), dim=0),
    ), NUMERIC, grad=(0,), errors=dim_errors("cumsum", (3, 4)) + (
        E((), dim=0, match="cumsum: got dim=0 for a 0-d tensor; it has no dims"),
        E((3,), dim=0, dtypes=("bool",), error="DTypeError", match="cumsum: got dtype bool; expected a numeric dtype"))),
    variance("var", jnp.var),
    variance("std", jnp.std),
    OpSpec("norm", lambda x, p, dim, keep_dim: jnp.linalg.vector_norm(x, ord=p, axis=dim, keepdims=keep_dim), (
        S((3, 4), p=2, dim=None, keep_dim=False), S((3, 4), p=1, dim=-1, keep_dim=True),
        S((4, 4), p=math.inf, dim=(0, 1), keep_dim=False), S((2, 3, 4), p=-math.inf, dim=(-1, 0), keep_dim=True),
        S((2, 3, 4), p=2, dim=1, keep_dim=True), S((2, 3, 4), p=1, dim=None, keep_dim=False),
        S((5,), p=2, dim=0, keep_dim=False), S((), p=2, dim=None, keep_dim=False), S((2, 1, 3), p=math.inf, dim=2,
                                                                                     keep_dim=False),
        S((0, 3), p=2, dim=1, keep_dim=False), S((0, 3), p=1, dim=0, keep_dim=True),
    ), FLOATS, grad=(0,), domain=away_from_zero, errors=dim_errors("norm", (3, 4), p=2) + (
        E((3, 4), p=3, match="norm: got p=3; expected 1, 2, inf or -inf"),
        E((3, 4), p="fro", error="DTypeError", match="norm: got p 'fro' of type str; expected an int or float"),
        E((0, 3), p=math.inf, dim=0, match="norm: got shape (0, 3) and p=inf with an empty dim to reduce"),
        float_only_error("norm", (3, 4)))),

    # shape ops (any dtype)
    OpSpec("stack", lambda *xs, dim: jnp.stack(xs, axis=dim), (
        S((3, 4), (3, 4), dim=0), S((3, 4), (3, 4), (3, 4), dim=-1), S((2, 1, 3), (2, 1, 3), dim=1), S((5,), dim=0),
        S((), (), dim=0), S((2, 3), (2, 3), dim=2), S((0, 3), (0, 3), dim=-3), S((4, 4), (4, 4), dim=-2),
    ), ANY, grad="all", call=lambda b, xs, kw: b.stack(list(xs), kw["dim"]),
        errors=dim_errors("stack", (3, 4), (3, 4), insert=True) + (
        E((3, 4), (4, 3), dim=0, match="stack: tensor 1 has shape (4, 3), tensor 0 has shape (3, 4); expected equal "
                                       "shapes"),
        E(dim=0, match="stack: got no tensors; expected at least one"),
        mixed_dtype_error("stack", (3, 4), (3, 4), dim=0))),
    OpSpec("flatten", ref_flatten, (
        S((2, 3, 4), start_dim=0, end_dim=-1), S((2, 3, 4), start_dim=1, end_dim=2),
        S((2, 3, 4), start_dim=-3, end_dim=-2), S((3, 4), start_dim=1, end_dim=1), S((), start_dim=0, end_dim=-1),
        S((5,), start_dim=-1, end_dim=0), S((0, 3, 2), start_dim=1, end_dim=-1), S((2, 1, 3), start_dim=0, end_dim=1),
    ), ANY, grad=(0,), errors=(
        E((2, 3, 4), start_dim=2, end_dim=1,
          match="flatten: got start_dim=2 after end_dim=1 for a tensor of rank 3; expected start_dim <= end_dim"),
        E((3, 4), start_dim=2, match="flatten: got start_dim=2 for a tensor of rank 2; expected -2 <= start_dim <= 1"),
        E((3, 4), start_dim=0, end_dim=-3, match="flatten: got end_dim=-3 for a tensor of rank 2"),
        E((), start_dim=1, match="flatten: got start_dim=1 for a tensor of rank 0; expected -1 <= start_dim <= 0"))),
    OpSpec("permute", lambda x, dims: jnp.transpose(x, dims), (
        S((3, 4), dims=(1, 0)), S((2, 3, 4), dims=(-1, 0, -2)), S((2, 1, 3), dims=(2, 0, 1)), S((4, 4), dims=(1, 0)),
        S((), dims=()), S((5,), dims=(0,)), S((0, 1, 3), dims=(1, 2, 0)),
    ), ANY, grad=(0,), call=lambda b, xs, kw: b.permute(xs[0], *kw["dims"]), errors=(
        E((3, 4), dims=(0, 2), match="permute: got dim=2 for a tensor of rank 2; expected -2 <= dim <= 1"),
        E((3, 4), dims=(0, -2), match="permute: got dims (0, -2); expected a permutation of range(2), each dim once"),
        E((3, 4), dims=(0,), match="permute: got dims (0,) for a tensor of rank 2; expected a permutation of all 2"),
        E((3, 4), dims=(0, 1.0), match="permute: got dim 1.0 in dims (0, 1.0); expected ints"))),
    OpSpec("movedim", lambda x, source, destination: jnp.moveaxis(x, source, destination), (
        S((2, 3, 4), source=0, destination=-1), S((2, 3, 4), source=(0, 1), destination=(2, 0)),
        S((3, 4), source=-1, destination=0), S((2, 1, 3), source=(0, -1), destination=(-1, 0)),
        S((5,), source=0, destination=0), S((0, 3, 2), source=2, destination=0), S((4, 4), source=1, destination=0),
    ), ANY, grad=(0,), call=lambda b, xs, kw: b.movedim(xs[0], kw["source"], kw["destination"]), errors=(
        E((2, 3, 4), source=(0, 1), destination=2,
          match="movedim: got source (0, 1) and destination (2,); expected as many destinations as sources"),
        E((2, 3, 4), source=(0, -3), destination=(1, 2),
          match="movedim: got source (0, -3) for a tensor of rank 3; expected each dim at most once"),
        E((2, 3, 4), source=0, destination=3, match="movedim: got dim=3 for a tensor of rank 3; expected -3 <= dim <= 2"),
        E((2, 3, 4), source=None, destination=0, match="movedim: got source=None, destination=(0,); expected an int"))),
    OpSpec("flip", lambda x, dims: jnp.flip(x, dims), (
        S((3, 4), dims=0), S((2, 3, 4), dims=(0, -1)), S((4, 4), dims=(-1,)), S((2, 1, 3), dims=None), S((), dims=()),
        S((5,), dims=-1), S((0, 3), dims=(1,)),
    ), ANY, grad=(0,), errors=dim_errors("flip", (3, 4)) + (
        E((3, 4), dims=(1, -1), match="flip: got dims (1, -1) for a tensor of rank 2; expected each dim at most once"),)),
    OpSpec("repeat", lambda x, reps: jnp.tile(x, reps), (
        S((3, 4), reps=(2, 1)), S((2, 3), reps=(2,)), S((2, 1, 3), reps=(1, 3, 2)), S((3,), reps=(2, 1, 2)),
        S((), reps=(3,)), S((4,), reps=(0,)), S((0, 2), reps=(2, 3)), S((2, 2), reps=()), S((4, 4), reps=(2, 2)),
    ), ANY, grad=(0,), call=lambda b, xs, kw: b.repeat(xs[0], *kw["reps"]), errors=(
        E((3, 4), reps=(2, -1), match="repeat: got reps (2, -1); expected non-negative counts"),
        E((3, 4), reps=(1.5,), match="repeat: got rep 1.5 in reps (1.5,); expected ints"))),
    OpSpec("pad", ref_pad, (
        S((3, 4), widths=((1, 2), (0, 3)), value=0.0), S((2, 1, 3), widths=(1, 2), value=2.0),
        S((5,), widths=2, value=0.5), S((2, 3, 4), widths=((0, 0), (1, 0), (0, 2)), value=-1.5),
        S((3, 4), widths=((0, 0),), value=1.0), S((), widths=3, value=2.0), S((0, 3), widths=((1, 1), (2, 0)), value=1.0),
        S((4, 4), widths=[[2], [1]], value=0.0),
    ), ANY, grad=(0,), errors=(
        E((3, 4), widths=((1, -1), (0, 0)), match="pad: got widths=((1, -1), (0, 0)); expected non-negative widths"),
        E((3, 4), widths=((1, 1), (1, 1), (1, 1)),
          match="pad: got 3 (before, after) pairs ((1, 1), (1, 1), (1, 1)) for a tensor of rank 2; expected one pair "
                "per dim, or one pair for every dim"),
        E((3, 4), widths=((1, 2, 3),),
          match="pad: got widths=((1, 2, 3),); expected ((before, after), ...) per dim, one (before, after) pair or one "
                "int"),
        E((3, 4), widths=1.5, match="pad: got widths=1.5; expected ((before, after), ...)"),
        E((3,), widths=1, value=0.5, dtypes=("int32",), error="DTypeError",
          match="pad: got scalar 0.5 for a tensor of dtype int32; expected an integral value"),
        E((3,), widths=1, value="0", error="DTypeError", match="pad: got value '0' of type str; expected an int or "
                                                                "float"))),
    OpSpec("split", ref_split, (
        S((6, 4), sizes_or_n=3, dim=0), S((3, 5), sizes_or_n=(1, 4), dim=-1), S((2, 6, 3), sizes_or_n=(2, 0, 4), dim=1),
        S((5,), sizes_or_n=1, dim=0), S((4,), sizes_or_n=[4], dim=-1), S((0, 4), sizes_or_n=2, dim=-1),
        S((4, 4), sizes_or_n=[1, 1, 2], dim=-2),
    ), ANY, grad=(0,), errors=dim_errors("split", (4, 4), sizes_or_n=2) + (
        E((5,), sizes_or_n=2, dim=0,
          match="split: cannot split dim 0 of size 5 (shape (5,)) into 2 equal pieces; expected n to divide 5"),
        E((5,), sizes_or_n=[2, 2], dim=0,
          match="split: got sizes [2, 2] for dim 0 of size 5 (shape (5,)); expected non-negative sizes adding up to 5"),
        E((5,), sizes_or_n=(6, -1), dim=0, match="split: got sizes [6, -1] for dim 0 of size 5"),
        E((4,), sizes_or_n=0, dim=0, match="split: got n=0; expected a positive number of pieces"),
        E((4,), sizes_or_n=2.5, dim=0, match="split: got sizes_or_n=2.5; expected an int or a sequence of ints"))),
    *(OpSpec(name, ref, (
        S((3, 4), k=0), S((4, 4), k=1), S((2, 3, 3), k=-1), S((4, 3), k=-5), S((3, 4), k=10), S((1, 1), k=0),
        S((0, 3), k=0), S((2, 0, 2), k=1),
    ), ANY, grad=(0,), errors=(
        E((3,), k=0, match=f"{name}: got shape (3,); expected rank >= 2"),
        E((3, 3), k=0.5, match=f"{name}: got k=0.5; expected an int"))) for name, ref in (("tril", jnp.tril),
                                                                                         ("triu", jnp.triu))),
)
