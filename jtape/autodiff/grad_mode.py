"""``no_grad``: switch recording off for the current thread only.

Born's ``NoGrad`` flipped one flag shared by every goroutine; here the switch is a per-thread
counter, so one thread evaluating a model never stops another thread's tape. Nesting works
(each ``with`` adds one) and the count is restored even when the body raises.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class _State(threading.local):
    depth = 0  # a class default: reading it in a new thread costs no exception


GRAD = _State()  # this thread's no_grad depth (the tape reads it on every op)


def is_grad_enabled() -> bool:
    """False inside a ``no_grad`` block of the current thread."""
    return not GRAD.depth


class no_grad:
    """Disable recording in this thread: ``with no_grad(): ...`` or ``no_grad(fn)``.

    Called with a function, runs it with recording off and returns its result (Born's
    ``NoGrad(fn)``); called with nothing, returns a context manager.
    """

    def __new__(cls, fn: Callable[[], Any] | None = None):
        self = super().__new__(cls)
        if fn is None:
            return self
        with self:
            return fn()

    def __enter__(self) -> "no_grad":
        GRAD.depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        GRAD.depth -= 1


class enable_grad:
    """Turn recording back on in this thread inside a ``no_grad`` block: ``with enable_grad(): ...``
    (as PyTorch's). The ``no_grad`` depth is restored on exit. ``create_graph`` uses it: a
    requested second-order walk records even when called from inside ``no_grad``."""

    def __enter__(self) -> "enable_grad":
        self._depth, GRAD.depth = GRAD.depth, 0
        return self

    def __exit__(self, *exc: Any) -> None:
        GRAD.depth = self._depth
