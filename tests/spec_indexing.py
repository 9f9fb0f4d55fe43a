"""Spec rows of the second round's indexing ops and einsum (see ``spec.py`` for the fields).

Index inputs are drawn in range with repeats (a repeated index must add its gradients up), in
every integer dtype — uint8 included, into more than 256 rows, so positions must not be computed
in the index's own dtype. ``t[...]`` itself (built from these ops) is tested against jax in
``tests/tensor/test_getitem.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from spec import (
    ANY,
    FLOATS,
    INTS,
    NUMERIC,
    E,
    OpSpec,
    S,
    bools,
    dim_errors,
    float_only_error,
    mixed_dtype_error,
    normal,
)


# -- input domains ------------------------------------------------------------------------------------
def _positions(rng, n, shape, dtype):
    """Ints in [0, n), at most 256 of them for uint8 (which cannot hold more); repeats likely."""
    return rng.integers(0, min(n, 256) if dtype == "uint8" else n, shape)


def select_index(rng, shape, dtype, sample):
    """Positions along ``dim`` of x (the first input)."""
    return _positions(rng, sample.shapes[0][sample.kwargs["dim"]], shape, dtype)


def embedding_ids(rng, shape, dtype, sample):
    """Row numbers of the weight (the first input)."""
    return _positions(rng, sample.shapes[0][0], shape, dtype)


def classes(rng, shape, dtype, sample):
    """Class numbers in [0, n)."""
    return _positions(rng, sample.kwargs["n"], shape, dtype)


# -- references: jax.numpy only -----------------------------------------------------------------------
def ref_strided_slice(x, slices):
    return x[tuple(slice(*t) for t in slices)]


def ref_index_select(x, index, dim):
    return jnp.take(x, index.astype(jnp.int32), axis=dim)


def ref_embedding(weight, ids):
    return weight[ids.astype(jnp.int32)]


def ref_masked_fill(x, mask, value):
    return jnp.where(mask, jnp.asarray(value).astype(x.dtype), x)   # uint8 wraps: -3 -> 253


def ref_one_hot(index, n, dtype="float32"):
    return jax.nn.one_hot(index, n, dtype=jnp.dtype(dtype))


def _einsum_call(backend, tensors, kwargs):
    return backend.einsum(kwargs["spec"], *tensors)


SPECS: tuple = (
    OpSpec("strided_slice", ref_strided_slice, (
        S((5, 4), slices=((1, None, 2), (None, None, -1))),                   # a step, a reversal
        S((3, 4, 5), slices=((-1, None, None), (3, 0, -2), (1, 4, 1))),      # negative start, negative step
        S((6,), slices=((None, None, 3),)),
        S((6,), slices=((-2, -100, -1),)),                                    # a bound past the start: clipped
        S((7,), slices=((6, None, -4),)),
        S((2, 3), slices=((5, 10, 1),)),                                      # past the end: empty
        S((4, 1, 3), slices=((None, None, -3),)),                             # fewer triples than dims
        S((0, 3), slices=((None, None, -1), (1, None, None))),
        S((), slices=()),
    ), ANY, grad=(0,), errors=(
        E((3, 4), slices=((None, None, 0),), match="strided_slice: got step 0 for dim 0; expected a non-zero step"),
        E((3,), slices=((0, 1, 1), (0, 1, 1)),
          match="strided_slice: got slices=((0, 1, 1), (0, 1, 1)) for shape (3,); expected a tuple of at most 1 "
                "(start, stop, step) triples"),
        E((3,), slices=((0, 1),), match="strided_slice: got (0, 1) for dim 0; expected a (start, stop, step) triple"),
        E((3,), slices=((0.5, None, None),), match="strided_slice: got slices[0]=0.5; expected an int"),
        E((3,), slices=[[0, 1, 1]], match="strided_slice: got slices=[[0, 1, 1]]; expected a hashable value"))),

    OpSpec("index_select", ref_index_select, (
        S((5, 3), (7,), dim=0),                                               # repeats
        S((3, 4), (6,), dim=-1).dtypes(None, "int64"),
        S((300, 2), (40,), dim=0).dtypes(None, "uint8"),                      # uint8 positions past 255 rows
        S((2, 3, 4), (5,), dim=-2),
        S((2, 3, 4), (0,), dim=1),                                            # an empty selection
        S((1,), (4,), dim=0),
        S((0, 3), (2,), dim=1),
    ), ANY, grad=(0,), domain=(normal, select_index), in_dtypes=(None, "int32"),
        call=lambda b, xs, kw: b.index_select(xs[0], kw["dim"], xs[1]),
        errors=dim_errors("index_select", (3, 4), (2,)) + (
            E((3, 4), (2,), dim=0, dtypes=("float32", "float32"), error="DTypeError",
              match="index_select: got index of dtype float32; expected an integer dtype"),
            E((3, 4), (2, 2), dim=0, match="index_select: got index shape (2, 2); expected a 1-D index"),
            E((), (2,), dim=0, match="index_select: got dim=0 for a 0-d tensor"))),

    OpSpec("embedding", ref_embedding, (
        S((10, 4), (3, 5)),                                                   # repeated ids
        S((300, 3), (6, 7)).dtypes(None, "uint8"),
        S((5, 2), (8,)).dtypes(None, "int64"),
        S((4, 3), ()),                                                        # one id
        S((6,), (2, 3)),                                                      # rank-1 weight: scalars
        S((3, 2, 2), (4,)),
        S((5, 3), (0, 2)),                                                    # no ids
    ), ANY, grad=(0,), domain=(normal, embedding_ids), in_dtypes=(None, "int32"), errors=(
        E((4, 3), (2,), dtypes=("float32", "float32"), error="DTypeError",
          match="embedding: got ids of dtype float32; expected an integer dtype"),
        E((), (2,), match="embedding: got weight shape (); expected rank >= 1 [num_embeddings, ...]"))),

    OpSpec("masked_fill", ref_masked_fill, (
        S((3, 4), (3, 4), value=2),                                           # ints need integral values
        S((2, 3, 4), (3, 1), value=-3),                                       # the mask broadcasts
        S((3, 4), (4,), value=0.5),
        S((5,), (), value=7.25),                                              # one flag for everything
        S((), (), value=-1.0),
        S((2, 1, 3), (1, 1, 3), value=100.0),
        S((0, 3), (1, 3), value=1.0),
    ), NUMERIC, grad=(0,), domain=(normal, bools), in_dtypes=(None, "bool"), errors=(
        E((3,), (3,), dtypes=("float32", "float32"), value=1.0, error="DTypeError",
          match="masked_fill: got mask of dtype float32; expected bool"),
        E((3,), (2, 3), dtypes=("float32", "bool"), value=1.0,
          match="masked_fill: got x shape (3,) and mask shape (2, 3); expected a mask that broadcasts to x's shape"),
        E((3, 4), (5,), dtypes=("float32", "bool"), value=1.0,
          match="masked_fill: got shapes (3, 4) and (5,), which do not broadcast"),
        E((3,), (3,), dtypes=("bool", "bool"), value=1, error="DTypeError",
          match="masked_fill: got dtype bool; expected a numeric dtype"),
        E((3,), (3,), dtypes=("int32", "bool"), value=0.5, error="DTypeError",
          match="masked_fill: got scalar 0.5 for a tensor of dtype int32; expected an integral value"))),

    # not differentiable; only the first two samples run per index dtype (more in tests/ops/test_select.py)
    OpSpec("one_hot", ref_one_hot, (
        S((2, 3), n=300, dtype="float32"),                                    # classes past uint8's range
        S((5,), n=4, dtype="int32"),
    ), INTS, domain=classes, errors=(
        E((3,), n=2, dtypes=("float32",), error="DTypeError",
          match="one_hot: got index of dtype float32; expected an integer dtype"),
        E((3,), n=0, dtypes=("int32",), match="one_hot: got n=0; expected a positive int"),
        E((3,), n=2, dtype="complex64", dtypes=("int32",), error="DTypeError",
          match="one_hot: dtype: got 'complex64'; expected one of float32"))),

    OpSpec("einsum", lambda *xs, spec: jnp.einsum(spec, *xs), (
        S((3, 4), (4, 5), spec="ij,jk->ik"),
        S((2, 3, 4), (2, 4, 5), spec="bij,bjk->bik"),
        S((3, 3), spec="ii->"),                                               # trace
        S((3, 3), spec="ii->i"),                                              # diagonal
        S((3, 2, 3), spec="iji->j"),
        S((2, 2, 3), (3,), spec="iik,k->i"),
        S((3, 4), spec="ij->i"),                                              # j summed in one operand only
        S((3, 4), (4, 5), spec="ij,jk->i"),                                   # k only in b: b's gradient expands
        S((3, 4), (5,), spec="ij,k->kji"),                                    # outer product, permuted
        S((3, 4), (4, 5), (5, 2), spec="ij,jk,kl->il"),
        S((3, 1), (4,), spec="ij,j->ij"),                                     # a size-1 letter broadcasts
        S((2, 2, 3), (1,), spec="iij,j"),                                     # j has size 3 in x_t only
        S((3,), (1,), (3,), spec="i,i,i->"),
        S((1, 2, 3), (4, 3, 5), spec="bij,bjk->bk"),
        S((3, 2, 3), spec="i...i->..."),
        S((2, 1, 3, 4), (5, 4, 2), spec="...ij,...jk->...ik"),                # broadcast batch dims
        S((3, 4), (4, 5), spec="ij,jk"),                                      # implicit output: ik
        S((), (3,), spec=",i->i"),
        S((2, 3), (2, 3), spec="ij,ij->"),
        S((0, 3), (3, 2), spec="ij,jk->ik"),
        S((3, 0), (0, 2), spec="ij,jk->ik"),                                  # an empty sum: zeros
    ), FLOATS, grad="all", call=_einsum_call, errors=(
        E((3, 4), (5, 6), spec="ij,jk->ik",
          match="einsum: got spec 'ij,jk->ik': letter 'j' has size 4 in operand 0 and size 5 in operand 1; expected "
                "equal sizes (or 1, which broadcasts)"),
        E((3, 4), spec="ijk->i",
          match="einsum: operand 0 has shape (3, 4) (rank 2), but 'ijk' names 3 dim(s); expected one letter per dim"),
        E((3, 4), (4,), spec="ij->i", match="einsum: got 2 tensor(s) for spec 'ij->i'; expected 1, one per operand it names"),
        E((3, 4), spec="ij->ii", match="einsum: got spec 'ij->ii': output letter 'i' appears twice"),
        E((3, 4), spec="ij->k", match="einsum: got spec 'ij->k': output letter 'k' is in no input"),
        E((3, 4), spec="i1->i", match="einsum: got '1' in spec 'i1->i'; expected letters a-z A-Z"),
        E((3, 4), spec="ii->i",
          match="einsum: got letter 'i' repeated in operand 0 (shape (3, 4)) with sizes [3, 4]; a repeated letter takes "
                "a diagonal, expected equal sizes"),
        E((2, 3), spec="...i->i", match="einsum: got spec '...i->i': the inputs' '...' covers dims but the output "
                                        "has no '...'"),
        E((2, 3), spec="...i...->i", match="einsum: got '...i...' in spec '...i...->i'; expected at most one '...'"),
        E((3,), spec="i->i->i", match="einsum: got spec 'i->i->i'; expected at most one '->'"),
        E((3,), spec=3, match="einsum: got spec 3; expected a string such as 'ij,jk->ik'"),
        E(spec="i->i", match="einsum: got spec 'i->i' and no tensors; expected at least one"),
        float_only_error("einsum", (3,), spec="i->i"),
        mixed_dtype_error("einsum", (3,), (3,), spec="i,i->"))),
)
