"""``Embedding``: a lookup table of learned vectors, one row per id.

``out[p] = weight[ids[p]]`` is one ``embedding`` op on the tape (EmbeddingOp): its rule
scatter-adds each output row's gradient back into the row it was read from, so a row used twice
gets both gradients and rows never looked up get zeros.
"""

from __future__ import annotations

from typing import Any

from ..autodiff import no_grad
from ..tensor.dtype import DataType
from ..tensor.errors import ArgumentError, DTypeError
from ..tensor.tensor import Tensor
from . import init
from ._build import backend_of, float_dtype, positive_int
from .module import Module, Parameter


class Embedding(Module):
    """Rows of ``weight`` [num_embeddings, embedding_dim] picked by integer ids of any shape: an input
    [*] gives [*, embedding_dim]. ``weight`` starts from N(0, 1) (as torch), drawn from ``seed``.

    ``padding_idx``: that row starts at zeros, and its positions in the output get no gradient, so the
    row stays as it is through training (as torch: a padding token contributes a fixed vector).
    ``backend`` defaults to ``jtape.default_backend()``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 backend: Any = None, dtype: DataType | str = "float32", seed: int | None = None):
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, int) \
                    or not -num_embeddings <= padding_idx < num_embeddings:
                raise ArgumentError(f"Embedding: got padding_idx={padding_idx!r}; expected an int in "
                                    f"[-{num_embeddings}, {num_embeddings}) or None")
            padding_idx %= num_embeddings  # torch keeps it non-negative too
        self.padding_idx = padding_idx
        backend, dt = backend_of(backend), float_dtype("Embedding", dtype)
        weight = init.normal((num_embeddings, embedding_dim), backend, std=1.0, seed=seed, dtype=dt)
        if padding_idx is not None:
            rows = weight.new_tensor([[i != padding_idx] for i in range(num_embeddings)], "bool")
            with no_grad():
                weight = weight.where(rows, 0.0)
        self.weight = Parameter(weight.requires_grad_(True))

    def forward(self, ids: Tensor) -> Tensor:
        if not ids.dtype.is_int:
            raise DTypeError(f"Embedding: got ids of dtype {ids.dtype.value}; expected integer ids (int32, int64 "
                             f"or uint8) in [0, {self.num_embeddings})")
        out = self.weight.embedding(ids)
        if self.padding_idx is None:
            return out
        # torch's padding row: its value is read as usual, but no gradient flows to it
        with no_grad():
            pad_row = self.weight[self.padding_idx]
        return out.where((ids != self.padding_idx).unsqueeze(-1), pad_row)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
