"""``Tensor`` indexing (the ``TensorIndexing`` mixin): ``t[...]`` as ops on the tape."""

from __future__ import annotations


class TensorIndexing:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()
