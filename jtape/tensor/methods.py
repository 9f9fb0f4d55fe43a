"""Hand-written ``Tensor`` methods for reductions and shapes whose Tensor spelling differs from the
backend op (the ``TensorMethods`` mixin): PyTorch-style ``dim=None | int | tuple, keepdim=False``
reductions, varargs shapes. Every other op is a generated method (``tensor.install_op_method``)."""

from __future__ import annotations


class TensorMethods:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()
