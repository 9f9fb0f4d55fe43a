"""Hand-written ``Tensor`` methods for reductions and shapes whose Tensor spelling differs from the
backend op (the ``TensorMethods`` mixin): PyTorch-style ``dim=None | int | tuple, keepdim=False``
reductions, ``max``/``min`` with ``(values, indices)``, ``linear`` with an optional bias, ``stack``
and ``view``. Every other op is
a generated method (``tensor.install_op_method``): ``t.permute(1, 0)``, ``t.repeat(2, 1)``,
``t.flatten(1)``, ``t.split([2, 3], 1)``, ...

Each method is one backend op (or one composite), so on an ``AutodiffBackend`` it is recorded on
the tape like any other op."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DTypeError, ShapeError

if TYPE_CHECKING:
    from .tensor import Tensor

Dims = int | Sequence[int] | None


class MinMax(NamedTuple):
    """What ``t.max(dim)`` / ``t.min(dim)`` return, as ``torch.max(t, dim)`` does: the values and
    the (int32) indices where they are (the first one on ties)."""

    values: Tensor
    indices: Tensor


class TensorMethods:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()

    # -- reductions: dim=None (every dim) | int | tuple, keepdim=False ------------------------------
    def sum(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The sum over ``dim`` (all elements by default: a 0-d tensor)."""
        if dim is None and keepdim is False:
            return self._new(self.backend.sum(self._raw))
        return self._new(self.backend.sum_dim(self._raw, dim, keepdim))

    def mean(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The mean over ``dim`` (all elements by default; float dtypes), exact for any number of
        elements in every float dtype (half dtypes accumulate in float32)."""
        if not self.dtype.is_float:
            raise DTypeError(f"mean: got dtype {self.dtype.value}; expected a float dtype (cast first: "
                             f"t.cast('float32').mean())")
        return self._new(self.backend.mean_dim(self._raw, dim, keepdim))

    def amax(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The largest element over ``dim``; tied maxima share the gradient equally."""
        return self._new(self.backend.amax(self._raw, dim, keepdim))

    def amin(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The smallest element over ``dim``; tied minima share the gradient equally."""
        return self._new(self.backend.amin(self._raw, dim, keepdim))

    def prod(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The product over ``dim`` (its gradient is exact with zeros in the tensor)."""
        return self._new(self.backend.prod(self._raw, dim, keepdim))

    def var(self, dim: Dims = None, keepdim: bool = False, correction: float = 1) -> Tensor:
        """The variance over ``dim``: Σ (x - mean)² / (n - correction) (1: unbiased, 0: population)."""
        return self._new(self.backend.var(self._raw, dim, keepdim, correction))

    def std(self, dim: Dims = None, keepdim: bool = False, correction: float = 1) -> Tensor:
        """The standard deviation over ``dim``: sqrt of ``var(dim, keepdim, correction)``."""
        return self._new(self.backend.std(self._raw, dim, keepdim, correction))

    def logsumexp(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """log Σ exp(x) over ``dim``, computed stably (the backend's ``logsumexp``)."""
        return self._new(self.backend.logsumexp(self._raw, dim, keepdim))

    def norm(self, p: float = 2, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The vector p-norm over ``dim`` (all elements by default): p = 2, 1, inf or -inf."""
        return self._new(self.backend.norm(self._raw, p, dim, keepdim))

    def max(self, dim: int | None = None, keepdim: bool = False) -> Tensor | MinMax:
        """With no dim, the largest element (a 0-d tensor, as ``amax()``); with a dim, as
        ``torch.max(t, dim)``: ``(values, indices)`` — the values as ``amax(dim, keepdim)`` (tied
        maxima share the gradient, where torch gives it all to the one index) and the indices as
        ``argmax(dim)``."""
        return self._extremum("max", self.amax, self.argmax, dim, keepdim)

    def min(self, dim: int | None = None, keepdim: bool = False) -> Tensor | MinMax:
        """With no dim, the smallest element; with a dim, ``(values, indices)`` as ``max``."""
        return self._extremum("min", self.amin, self.argmin, dim, keepdim)

    def _extremum(self, name: str, values: Any, indices: Any, dim: Any, keepdim: bool) -> Tensor | MinMax:
        if dim is None:
            return values(None, keepdim)
        if isinstance(dim, TensorMethods):
            raise TypeError(f"{name}: got a Tensor for dim; for the elementwise {name}imum of two tensors use "
                            f"t.{name}imum(other)")
        if isinstance(dim, (list, tuple)):
            raise ShapeError(f"{name}: got dim={tuple(dim)}; expected one int (amax/amin take several dims and "
                             f"give the values only)")
        where = indices(dim)
        return MinMax(values(dim, keepdim), where.unsqueeze(dim) if keepdim else where)

    # -- linear algebra -----------------------------------------------------------------------------
    def linear(self, weight: Any, bias: Any = None) -> Tensor:
        """``self @ weightᵀ`` for a weight ``[out, in]``, plus ``bias`` ``[out]`` when given
        (PyTorch's ``F.linear``): the ``linear`` op, or ``affine`` with a bias — one op either way,
        with no transposed copy of the weight."""
        w = self._lift(weight, "linear")
        if bias is None:
            return self._new(self.backend.linear(self._raw, w))
        return self._new(self.backend.affine(self._raw, w, self._lift(bias, "affine")))

    # -- shapes -------------------------------------------------------------------------------------
    def stack(self, others: Sequence[Tensor], dim: int = 0) -> Tensor:
        """This tensor and ``others`` (all of one shape) stacked along a new dim ``dim``."""
        return self._new(self.backend.stack([self._raw] + [self._lift(o, "stack") for o in others], dim))

    def view(self, *shape: Any) -> Tensor:
        """``reshape``, for PyTorch users: jtape never mutates a tensor in place, so a view and a
        reshaped copy cannot be told apart."""
        return self.reshape(*shape)
