"""The process's default backend: what layers, ``tensor.asarray`` and the creation functions use
when no ``backend=`` is given.

    jtape.set_default_backend(autodiff.new(NumpyBackend()))   # e.g. to teach on NumPy
    jtape.default_backend()                                   # the one in use

Initially it is ``autodiff.new(JaxBackend())``, made the first time it is asked for. This module
sits in ``jtape.tensor`` (the bottom layer), so it cannot import the backends: ``jtape/__init__``
registers the factory that makes the initial one (``set_factory``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .errors import ArgumentError

_lock = threading.Lock()
_default: Any = None
_factory: Callable[[], Any] | None = None


def set_factory(factory: Callable[[], Any]) -> None:
    """How to make the initial default backend (jtape/__init__: ``autodiff.new(JaxBackend())``)."""
    global _factory
    _factory = factory


def default_backend() -> Any:
    """The backend used where none is given (made on first use: ``autodiff.new(JaxBackend())``)."""
    global _default
    with _lock:
        if _default is None:
            if _factory is None:
                raise ArgumentError("default_backend: no backend given and no default set; expected "
                                    "jtape.set_default_backend(backend) or backend=")
            _default = _factory()
        return _default


def set_default_backend(backend: Any) -> Any:
    """Make ``backend`` the process default (layers, ``tensor.asarray``, creation functions); returns
    the previous default (None if none was made yet)."""
    global _default
    for name in ("from_numpy", "full", "name"):
        if not callable(getattr(backend, name, None)):
            raise ArgumentError(f"set_default_backend: got {type(backend).__name__}; expected a Backend "
                                f"(e.g. autodiff.new(JaxBackend()))")
    with _lock:
        previous, _default = _default, backend
    return previous


def resolve(backend: Any) -> Any:
    """``backend``, or the default when it is None."""
    return default_backend() if backend is None else backend
