"""``MultiheadAttention``: scaled dot-product attention over ``num_heads`` heads, as torch's.

For queries [N, L, E], keys [N, S, kdim] and values [N, S, vdim] (``batch_first=True``):

    q = query Wqᵀ + bq,  k = key Wkᵀ + bk,  v = value Wvᵀ + bv          each split into H heads of D = E / H
    weights = softmax(q kᵀ / √D + mask)      [N, H, L, S]                (dropout on them in training)
    out = concat_heads(weights v) W_outᵀ + b_out                         [N, L, E]

Masks follow torch: a **bool** mask marks with True the positions that may *not* be attended to
(they get -inf before the softmax); a **float** mask is added to the scores. ``attn_mask`` is
[L, S] (every batch and head) or [N·H, L, S]; ``key_padding_mask`` [N, S] hides padded keys.
``is_causal=True`` with no ``attn_mask`` builds the causal mask (query i sees keys j <= i); with
an ``attn_mask`` it is only a hint, and the given mask is used (as torch does). A query whose keys
are all masked gets NaN weights, as in torch.

Everything is Tensor methods (linear, reshape, permute, matmul, softmax, add), so the tape records
ordinary ops and differentiates through the projections, the scores and the softmax.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError, ShapeError
from ..tensor.tensor import Tensor
from . import init
from ._build import backend_of, filled, float_dtype, number, positive_int
from .layers import Dropout
from .module import Module, Parameter


class _OutProjection(Module):
    """The output projection's ``weight`` [E, E] and ``bias`` [E] (named ``out_proj.*`` as in torch)."""

    def __init__(self, weight: Tensor, bias: Tensor | None):
        self.weight = Parameter(weight)
        self.bias = None if bias is None else Parameter(bias)

    def forward(self, x: Tensor) -> Tensor:
        y = x.linear(self.weight)
        return y if self.bias is None else y + self.bias


def _seed(seed: int | None, k: int) -> int | None:
    return None if seed is None else seed + k


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention`` (see the module docstring).

    Parameters: ``in_proj_weight`` [3E, E] (Xavier uniform) and ``in_proj_bias`` [3E] (zeros) — or, when
    ``kdim``/``vdim`` differ from E, ``q_proj_weight`` [E, E], ``k_proj_weight`` [E, kdim] and
    ``v_proj_weight`` [E, vdim] — and ``out_proj.weight`` [E, E] (U(±1/√E), torch's Linear default),
    ``out_proj.bias`` [E] (zeros). ``dropout`` drops attention weights in training mode.
    ``batch_first=True`` (the default here; torch's is False) takes [N, L, E]; False takes [L, N, E];
    unbatched [L, E] works either way. ``backend`` defaults to ``jtape.default_backend()``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = True, *,
                 backend: Any = None, dtype: DataType | str = "float32", seed: int | None = None):
        self.embed_dim = positive_int("MultiheadAttention", "embed_dim", embed_dim)
        self.num_heads = positive_int("MultiheadAttention", "num_heads", num_heads)
        if embed_dim % num_heads:
            raise ArgumentError(f"MultiheadAttention: got embed_dim={embed_dim} and num_heads={num_heads}; expected "
                                f"embed_dim divisible by num_heads")
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else positive_int("MultiheadAttention", "kdim", kdim)
        self.vdim = embed_dim if vdim is None else positive_int("MultiheadAttention", "vdim", vdim)
        self.dropout = number("MultiheadAttention", "dropout", dropout)
        self.batch_first = bool(batch_first)
        self.packed = self.kdim == embed_dim and self.vdim == embed_dim
        backend, dt = backend_of(backend), float_dtype("MultiheadAttention", dtype)
        e = embed_dim
        if self.packed:
            self.in_proj_weight = Parameter(init.xavier_uniform((3 * e, e), backend, seed=seed, dtype=dt))
        else:
            self.q_proj_weight = Parameter(init.xavier_uniform((e, e), backend, seed=seed, dtype=dt))
            self.k_proj_weight = Parameter(init.xavier_uniform((e, self.kdim), backend, seed=_seed(seed, 1), dtype=dt))
            self.v_proj_weight = Parameter(init.xavier_uniform((e, self.vdim), backend, seed=_seed(seed, 2), dtype=dt))
        self.in_proj_bias = Parameter(filled((3 * e,), 0.0, backend, dt)) if bias else None
        bound = 1.0 / math.sqrt(e)
        self.out_proj = _OutProjection(init.uniform((e, e), backend, low=-bound, high=bound, seed=_seed(seed, 3),
                                                    dtype=dt), filled((e,), 0.0, backend, dt) if bias else None)
        self.attn_dropout = Dropout(self.dropout) if self.dropout > 0 else None

    # -- the projections ---------------------------------------------------------------------------
    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e, b = self.embed_dim, self.in_proj_bias
        if self.packed and query is key and key is value:  # self-attention: one product for q, k and v
            qkv = query.linear(self.in_proj_weight)
            return tuple((qkv if b is None else qkv + b).chunk(3, -1))
        if self.packed:
            weights = (self.in_proj_weight[0:e], self.in_proj_weight[e:2 * e], self.in_proj_weight[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        out = []
        for i, (x, w) in enumerate(zip((query, key, value), weights)):
            y = x.linear(w)
            out.append(y if b is None else y + b[i * e:(i + 1) * e])
        return out[0], out[1], out[2]

    def _heads(self, x: Tensor) -> Tensor:
        """[N, T, E] -> [N, H, T, D]."""
        n, t = x.shape[0], x.shape[1]
        return x.reshape(n, t, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    # -- the forward pass --------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """``(output, weights)``: output like ``query``; weights [N, L, S] averaged over heads (or
        [N, H, L, S] with ``average_attn_weights=False``), None unless ``need_weights``."""
        q_in, k_in, v_in, unbatched = self._check_inputs(query, key, value)
        n, length, s = q_in.shape[0], q_in.shape[1], k_in.shape[1]
        mask = self._mask(q_in, n, length, s, key_padding_mask, attn_mask, is_causal, unbatched)
        q, k, v = (self._heads(t) for t in self._project(q_in, k_in, v_in))
        scores = (q * (1.0 / math.sqrt(self.head_dim))).matmul(k.permute(0, 1, 3, 2))   # [N, H, L, S]
        if mask is not None:
            scores = scores + mask
        weights = scores.softmax(-1)
        if self.attn_dropout is not None and self.training:
            weights = self.attn_dropout(weights)
        heads = weights.matmul(v)                                                        # [N, H, L, D]
        out = self.out_proj(heads.permute(0, 2, 1, 3).reshape(n, length, self.embed_dim))
        if unbatched:
            out = out.reshape(length, self.embed_dim)
        elif not self.batch_first:
            out = out.permute(1, 0, 2)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights.reshape(tuple(weights.shape[1:])) if unbatched else weights)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
        """The inputs as batch-first [N, T, features], checked; and whether they were unbatched."""
        for name, x in (("query", query), ("key", key), ("value", value)):
            if not isinstance(x, Tensor):
                raise ArgumentError(f"MultiheadAttention: got a {type(x).__name__} as {name}; expected a Tensor")
            if not x.dtype.is_float:
                raise DTypeError(f"MultiheadAttention: got {name} of dtype {x.dtype.value}; expected a float tensor")
        unbatched = query.ndim == 2
        rank = 2 if unbatched else 3
        layout = "[L, E]" if unbatched else "[N, L, E]" if self.batch_first else "[L, N, E]"
        dims = {"query": self.embed_dim, "key": self.kdim, "value": self.vdim}
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x.ndim != rank or x.shape[-1] != dims[name]:
                raise ShapeError(f"MultiheadAttention: got {name} shape {tuple(x.shape)}; expected rank {rank} "
                                 f"({layout} for query) with last dim {dims[name]}")
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.permute(1, 0, 2), key.permute(1, 0, 2), value.permute(1, 0, 2)
        if tuple(key.shape[:2]) != tuple(value.shape[:2]) or key.shape[0] != query.shape[0]:
            raise ShapeError(f"MultiheadAttention: got query {tuple(query.shape)}, key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)} (batch first); expected one batch size N, and key and value "
                             f"with the same length S")
        return query, key, value, unbatched

    def _mask(self, like: Tensor, n: int, length: int, s: int, key_padding_mask: Tensor | None,
              attn_mask: Tensor | None, is_causal: bool, unbatched: bool) -> Tensor | None:
        """The additive mask [N or 1, H or 1, L, S] (0 where allowed, -inf where not, or the float
        values given), or None."""
        h, total = self.num_heads, None
        if attn_mask is None and is_causal:
            hidden = np.triu(np.ones((length, s), dtype=bool), 1)
            attn_mask = like.new_tensor(hidden, "bool")
        if attn_mask is not None:
            shapes = {(length, s): (1, 1, length, s), (h if unbatched else n * h, length, s): (n, h, length, s)}
            if tuple(attn_mask.shape) not in shapes:
                raise ShapeError(f"MultiheadAttention: got attn_mask shape {tuple(attn_mask.shape)}; expected "
                                 f"({length}, {s}) or ({h if unbatched else n * h}, {length}, {s}) "
                                 f"([L, S] or [{'H' if unbatched else 'N·H'}, L, S])")
            total = _additive("attn_mask", attn_mask, like).reshape(shapes[tuple(attn_mask.shape)])
        if key_padding_mask is not None:
            expected = (s,) if unbatched else (n, s)
            if tuple(key_padding_mask.shape) != expected:
                raise ShapeError(f"MultiheadAttention: got key_padding_mask shape {tuple(key_padding_mask.shape)}; "
                                 f"expected {expected} ({'[S]' if unbatched else '[N, S]'})")
            padding = _additive("key_padding_mask", key_padding_mask, like).reshape(n, 1, 1, s)
            total = padding if total is None else total + padding
        return total

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


def _additive(name: str, mask: Any, like: Tensor) -> Tensor:
    """A bool mask as 0 / -inf (True = hidden), a float mask as it is, in ``like``'s dtype."""
    if not isinstance(mask, Tensor):
        raise ArgumentError(f"MultiheadAttention: got a {type(mask).__name__} as {name}; expected a Tensor (bool: "
                            f"True = not allowed, or float: added to the scores)")
    if mask.dtype is DataType.BOOL:
        return filled(tuple(mask.shape), 0.0, like.backend, like.dtype).requires_grad_(False).masked_fill(
            mask, float("-inf"))
    if mask.dtype.is_float:
        return mask if mask.dtype is like.dtype else mask.cast(like.dtype)
    raise DTypeError(f"MultiheadAttention: got {name} of dtype {mask.dtype.value}; expected bool (True = not "
                     f"allowed) or a float dtype (added to the scores)")
