"""Linear algebra: matrix multiplication (2-D and batched, broadcast batch dims) and einsum."""

from __future__ import annotations

import math
import string
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.args import Static, Tensor, Tensors
from ..tensor.checks import broadcast_shapes, need_float, same_dtype
from ..tensor.errors import ShapeError
from ..tensor.registry import op
from .base import Operation, unbroadcast
from .precision import HALF, in_float32


def _matmul_jax(a, b):
    wide = jnp.float32 if a.dtype in HALF else None
    return jnp.matmul(a, b, preferred_element_type=wide).astype(a.dtype)


@op(jax=_matmul_jax, numpy=in_float32(np.matmul))
def matmul(a: Tensor, b: Tensor):
    """``a @ b`` over the last two dims; the batch dims in front broadcast as in NumPy (both of
    rank >= 2; float32 accumulation for half dtypes)."""
    sa, sb = tuple(a.shape), tuple(b.shape)
    dtype = need_float("matmul", same_dtype("matmul", a.dtype, b.dtype))
    if len(sa) < 2 or len(sb) < 2:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected both of rank >= 2 "
                         f"(unsqueeze a vector to [1, n] or [n, 1] first)")
    if sa[-1] != sb[-2]:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected a.shape[-1] ({sa[-1]}) "
                         f"to equal b.shape[-2] ({sb[-2]})")
    return broadcast_shapes("matmul", sa[:-2], sb[:-2]) + (sa[-2], sb[-1]), dtype


def swap_last(x):
    """x with its last two dims swapped: ᵀ of each matrix in a batch."""
    n = x.ndim
    return x.transpose(*range(n - 2), n - 1, n - 2)


@matmul.rule
class MatMulOp(Operation):
    """out = a @ b:  out[..., i, j] = Σ_k a[..., i, k] · b[..., k, j]  (batch dims broadcast).

    Derivation: ∂out_ij/∂a_ik = b_kj and ∂out_ij/∂b_kj = a_ik, so
        ∂ℒ/∂a_ik = Σ_j g_ij b_kj = (g @ bᵀ)_ik      ∂ℒ/∂b_kj = Σ_i a_ik g_ij = (aᵀ @ g)_kj
    with ᵀ swapping the last two dims. Batch dims were broadcast, so each is summed back:
        grad_a = unbroadcast(g @ bᵀ, a.shape)       grad_b = unbroadcast(aᵀ @ g, b.shape)
    Saves: a, b.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, a, b):
        return [unbroadcast(g @ swap_last(b), a.shape), unbroadcast(swap_last(a) @ g, b.shape)]


def _dot_t(x, weight):
    """x @ weightᵀ as one dot over x's last dim and the weight's second (no transposed copy), in
    float32 for half dtypes: the caller casts back (after adding a bias, for ``affine``)."""
    wide = jnp.float32 if x.dtype in HALF else None
    return jax.lax.dot_general(x, weight, (((x.ndim - 1,), (1,)), ((), ())), preferred_element_type=wide)


def _linear_jax(x, weight):
    return _dot_t(x, weight).astype(x.dtype)


def _dot_t_shape(name: str, x: Any, weight: Any) -> tuple:
    """The shape of x @ weightᵀ for a weight [out, in] and x [..., in] (``linear``, ``affine``)."""
    sx, sw = tuple(x.shape), tuple(weight.shape)
    if len(sx) < 1 or len(sw) != 2:
        raise ShapeError(f"{name}: got x shape {sx} and weight shape {sw}; expected x of rank >= 1 and a weight "
                         f"[out, in]")
    if sx[-1] != sw[1]:
        raise ShapeError(f"{name}: got x shape {sx} and weight shape {sw}; expected x.shape[-1] ({sx[-1]}) to equal "
                         f"weight.shape[1] ({sw[1]})")
    return sx[:-1] + (sw[0],)


def _dot_t_grads(g: Any, x: Any, w: Any) -> tuple:
    """LinearOp's rule: (grad_x, grad_W, g with its rows flattened) for out = x @ Wᵀ."""
    rows = math.prod(x.shape[:-1])             # explicit: reshape(-1, 0) is ambiguous when in = 0
    rows_g, rows_x = g.reshape(rows, w.shape[0]), x.reshape(rows, w.shape[1])
    return (rows_g @ w).reshape(x.shape), swap_last(rows_g) @ rows_x, rows_g


@op(jax=_linear_jax, numpy=in_float32(lambda x, weight: np.matmul(x, weight.T)))
def linear(x: Tensor, weight: Tensor):
    """``x @ weightᵀ`` for a weight ``[out, in]`` (a layer's weight as stored), with no transpose
    materialised: one dot over x's last dim and the weight's second; x is ``[..., in]``."""
    dtype = need_float("linear", same_dtype("linear", x.dtype, weight.dtype))
    return _dot_t_shape("linear", x, weight), dtype


@linear.rule
class LinearOp(Operation):
    """out = x @ Wᵀ:  out[..., o] = Σ_i x[..., i] · W[o, i]  (W is [out, in], x is [..., in]).

    Derivation: ∂out[..., o]/∂x[..., i] = W[o, i] and ∂out[..., o]/∂W[o, i] = x[..., i], so
        grad_x[..., i] = Σ_o g[..., o] W[o, i]            i.e.  grad_x = g @ W
        grad_W[o, i] = Σ_{all rows r} g[r, o] x[r, i]     i.e.  grad_W = gᵀ @ x, rows flattened.
    Neither needs Wᵀ: the forward and both gradients are single dots.
    Saves: x, W.
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x, w):
        grad_x, grad_w, _ = _dot_t_grads(g, x, w)
        return [grad_x, grad_w]


def _affine_jax(x, weight, bias):
    out = _dot_t(x, weight)
    return (out + bias.astype(out.dtype)).astype(x.dtype)


@op(jax=_affine_jax, numpy=in_float32(lambda x, weight, bias: np.matmul(x, weight.T) + bias))
def affine(x: Tensor, weight: Tensor, bias: Tensor):
    """``x @ weightᵀ + bias`` for a weight ``[out, in]`` and a bias ``[out]``: ``nn.Linear``'s
    forward as one op (``x.linear(weight, bias)``; PyTorch's ``F.linear``). No transpose is
    materialised; half dtypes accumulate the dot and add the bias in float32."""
    dtype = need_float("affine", same_dtype("affine", x.dtype, weight.dtype, bias.dtype))
    shape = _dot_t_shape("affine", x, weight)
    sw, sb = tuple(weight.shape), tuple(bias.shape)
    if sb != (sw[0],):
        raise ShapeError(f"affine: got bias shape {sb} for weight shape {sw}; expected a bias [out] = ({sw[0]},)")
    return shape, dtype


@affine.rule
class AffineOp(Operation):
    """out = x @ Wᵀ + b:  out[..., o] = Σ_i x[..., i] · W[o, i] + b[o]  (W [out, in], b [out]).

    Derivation: the dot is LinearOp's, so grad_x = g @ W and grad_W = gᵀ @ x (rows flattened);
    ∂out[..., o]/∂b[o] = 1 at every row, so grad_b[o] = Σ_{all rows r} g[r, o] — the bias was
    broadcast over the rows, and the adjoint of that copy is the sum.
    Saves: x, W (b's gradient needs only g).
    """

    __slots__ = ()
    fuse = True

    def vjp(self, g, out, x, w, b):
        grad_x, grad_w, rows_g = _dot_t_grads(g, x, w)
        return [grad_x, grad_w, rows_g.sum(0)]


# -- einsum --------------------------------------------------------------------------------------
_LETTERS = string.ascii_letters


def _terms(spec: str) -> tuple[list[str], str]:
    """A normalised spec (letters only, explicit output) split into its input and output subscripts."""
    lhs, out = spec.split("->")
    return lhs.split(","), out


def letter_sizes(terms: list[str], shapes: list) -> dict[str, int]:
    """The size of each letter over all operands: the one size other than 1 (size 1 broadcasts)."""
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for c, n in zip(term, shape):
            if sizes.get(c, 1) == 1:
                sizes[c] = n
    return sizes


def _tokens(name: str, spec: str, term: str) -> list[str]:
    """A term's letters in order, with '...' as one token."""
    out, i = [], 0
    while i < len(term):
        if term.startswith("...", i):
            out.append("...")
            i += 3
        elif term[i] in _LETTERS:
            out.append(term[i])
            i += 1
        else:
            raise ShapeError(f"{name}: got {term[i]!r} in spec {spec!r}; expected letters a-z A-Z, one ',' between "
                             f"operands, '->' and '...'")
    if out.count("...") > 1:
        raise ShapeError(f"{name}: got {term!r} in spec {spec!r}; expected at most one '...' per operand")
    return out


def parse_einsum(spec: Any, shapes: list) -> tuple[str, tuple]:
    """The spec with every '...' replaced by letters of its own (broadcast right-aligned, as
    NumPy), the output made explicit (implicit: the letters used once, sorted, after '...'), and
    the output shape. Checks the letters, ranks and sizes."""
    name = "einsum"
    if not isinstance(spec, str):
        raise ShapeError(f"{name}: got spec {spec!r}; expected a string such as 'ij,jk->ik'")
    if not shapes:
        raise ShapeError(f"{name}: got spec {spec!r} and no tensors; expected at least one")
    text = spec.replace(" ", "")
    if text.count("->") > 1:
        raise ShapeError(f"{name}: got spec {spec!r}; expected at most one '->'")
    lhs, arrow, rhs = text.partition("->")
    terms = [_tokens(name, spec, t) for t in lhs.split(",")]
    if len(terms) != len(shapes):
        raise ShapeError(f"{name}: got {len(shapes)} tensor(s) for spec {spec!r}; expected {len(terms)}, one per operand it "
                         f"names")
    ranks = []
    for i, (term, shape) in enumerate(zip(terms, shapes)):
        named = len(term) - term.count("...")
        if len(shape) < named or ("..." not in term and len(shape) != named):
            raise ShapeError(f"{name}: operand {i} has shape {tuple(shape)} (rank {len(shape)}), but "
                             f"{''.join(term)!r} names {named} dim(s); expected one letter per dim (or '...')")
        ranks.append(len(shape) - named if "..." in term else 0)
    free = [c for c in _LETTERS if c not in text]
    ellipsis = "".join(free[:max(ranks)])
    if len(ellipsis) < max(ranks):
        raise ShapeError(f"{name}: got spec {spec!r}, which needs more than {len(_LETTERS)} letters; expected fewer dims")
    ins = ["".join(ellipsis[len(ellipsis) - r:] if c == "..." else c for c in term) for term, r in zip(terms, ranks)]
    if arrow:
        out_terms = _tokens(name, spec, rhs)
        if ellipsis and "..." not in out_terms:
            raise ShapeError(f"{name}: got spec {spec!r}: the inputs' '...' covers dims but the output has no '...'; "
                             f"expected '...' in the output too (or letters for the dims to sum)")
        out = "".join(ellipsis if c == "..." else c for c in out_terms)
        for c in out:
            if out.count(c) > 1:
                raise ShapeError(f"{name}: got spec {spec!r}: output letter {c!r} appears twice; expected each "
                                 f"output letter once")
            if not any(c in t for t in ins):
                raise ShapeError(f"{name}: got spec {spec!r}: output letter {c!r} is in no input; expected "
                                 f"output letters taken from the inputs")
    else:
        joined = "".join(ins)
        out = ellipsis + "".join(sorted(c for c in set(joined) - set(ellipsis) if joined.count(c) == 1))
    _check_sizes(spec, ins, shapes, ellipsis)
    sizes = letter_sizes(ins, shapes)
    return ",".join(ins) + "->" + out, tuple(sizes[c] for c in out)


def _check_sizes(spec: str, ins: list[str], shapes: list, ellipsis: str) -> None:
    seen: dict[str, tuple[int, int]] = {}    # letter -> (size other than 1, the operand it is from)
    for i, (term, shape) in enumerate(zip(ins, shapes)):
        for c, n in zip(term, shape):
            what = "a '...' dim" if c in ellipsis else f"letter {c!r}"
            sizes = [m for d, m in zip(term, shape) if d == c]
            if len(set(sizes)) > 1:
                raise ShapeError(f"einsum: got {what} repeated in operand {i} (shape {tuple(shape)}) with sizes "
                                 f"{sizes}; a repeated letter takes a diagonal, expected equal sizes")
            if n != 1:
                if c in seen and seen[c][0] != n:
                    raise ShapeError(f"einsum: got spec {spec!r}: {what} has size {seen[c][0]} in operand "
                                     f"{seen[c][1]} and size {n} in operand {i}; expected equal sizes (or 1, "
                                     f"which broadcasts)")
                seen[c] = (n, i)


def _full(xs: list, spec: str, broadcast: Any) -> list:
    """The operands with their size-1 dims broadcast to their letters' sizes."""
    terms, _ = _terms(spec)
    sizes = letter_sizes(terms, [x.shape for x in xs])
    return [broadcast(x, tuple(sizes[c] for c in t)) for x, t in zip(xs, terms)]


def _einsum_jax(xs, spec):
    wide = jnp.float32 if xs[0].dtype in HALF else None
    full = _full(xs, spec, jnp.broadcast_to)
    return jnp.einsum(spec, *full, preferred_element_type=wide).astype(xs[0].dtype)


def _einsum_np(xs, spec):
    """np.einsum on the operands broadcast to their letters' sizes (half dtypes widened first)."""
    return np.einsum(spec, *_full(xs, spec, np.broadcast_to), optimize=len(xs) > 2)


@op(jax=_einsum_jax, numpy=in_float32(_einsum_np))
def einsum(spec: Static, *xs: Tensors):
    """Einstein summation, as NumPy's: ``einsum("ij,jk->ik", a, b)`` is a @ b. Each operand names its
    dims with letters; letters left out of the output are summed; a letter repeated within one
    operand takes its diagonal (``"ii->"`` is the trace); ``...`` stands for broadcast dims; without
    ``->`` the output is the letters used once, sorted. Size-1 dims broadcast. Float dtypes, float32
    accumulation for half dtypes."""
    if not xs:
        raise ShapeError(f"einsum: got spec {spec!r} and no tensors; expected at least one")
    dtype = need_float("einsum", same_dtype("einsum", *(x.dtype for x in xs)))
    normal, shape = parse_einsum(spec, [tuple(x.shape) for x in xs])
    return shape, dtype, {"spec": normal}


@einsum.rule
class EinsumOp(Operation):
    """out = einsum(spec, x₁, …, xₙ):  out[O] = Σ over the letters not in O of  Π_u x_u[S_u],
    where S_u are the letters of operand u and O those of the output.

    Derivation: out is linear in each operand. Fix t: ∂out[O]/∂x_t[S_t] = Π_{u≠t} x_u[S_u], so
        ∂ℒ/∂x_t[S_t] = Σ over the letters not in S_t of  g[O] · Π_{u≠t} x_u[S_u]
    — another einsum, of g and the other operands: g takes x_t's place, and S_t becomes the output
    (the subscripts of g and x_t swap). For the spec ``ij,jk->ik`` (out = a @ b):
        grad_a[i, j] = Σ_k g[i, k] · b[j, k]        grad_b[j, k] = Σ_i g[i, k] · a[i, j]
    that is, grad_a is the einsum ``ik,jk->ij`` of g and b, which is g @ bᵀ, and grad_b the einsum
    ``ik,ij->jk`` of g and a, which is aᵀ @ g. Three refinements. Letters of S_t that neither O nor
    another operand holds (or holds only at size 1) were summed over in x_t alone: out does not
    depend on where along them x_t's element sits, so the gradient is constant along them —
    compute without them, then expand (for ``ij->i``: grad_x[i, j] = g[i]). A letter repeated in
    S_t (``ii->i`` reads the diagonal) lets only diagonal elements reach out, so the gradient is
    δ-masked: rename the repeat (i → p) and multiply by the identity I[i, p] inside the same
    einsum (for ``ii->i`` the rule is the einsum ``i,ip->ip`` of g and I). A dim of size 1 in x_t
    that broadcast to n was read n times: sum the gradient back over it.
    Saves: spec and the operands (each operand's gradient reads the others).
    """

    __slots__ = ("spec",)
    fuse = True

    def vjp(self, g, out, *xs):
        terms, o = _terms(self.spec)
        sizes = letter_sizes(terms, [x.shape for x in xs])
        return [_operand_grad(self.spec, terms, o, sizes, g, xs, t) for t in range(len(xs))]


def _operand_grad(spec: str, terms: list[str], o: str, sizes: dict, g, xs, t: int):
    """grad_x_t of EinsumOp (see its derivation)."""
    spare = iter(c for c in _LETTERS if c not in spec)
    target, subs, operands = "", [o], [g]
    for u, (term, x) in enumerate(zip(terms, xs)):
        if u != t:
            subs.append(term)
            operands.append(x)
    for c in terms[t]:
        if c in target:                                     # a repeat: a diagonal, masked by the identity
            p = next(spare)
            sizes = {**sizes, p: sizes[c]}
            subs.append(c + p)
            operands.append(g.new_tensor(np.eye(sizes[c]), g.dtype))
            c = p
        target += c
    reached = set("".join(subs))
    kept = "".join(c for c in target if c in reached)
    grad = g if (kept == o and len(operands) == 1) else einsum(",".join(subs) + "->" + kept, *operands)
    if kept != target:                                      # letters summed in x_t alone: constant along them
        grad = grad.reshape(tuple(grad.shape[kept.index(c)] if c in reached else 1 for c in target))
    full = tuple(sizes[c] for c in target)
    if tuple(grad.shape) != full:                           # ... and letters of size 1 wherever else they are
        grad = grad.expand(full)
    summed = tuple(d for d, (c, n) in enumerate(zip(terms[t], xs[t].shape)) if n == 1 and sizes[c] != 1)
    return grad.sum_dim(summed, True) if summed else grad
