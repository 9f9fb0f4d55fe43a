"""jtape's error types.

Every error names the op, what it got (shapes, dtypes, values of static arguments) and what it
expected. They subclass the built-in ``ValueError`` / ``TypeError`` so ordinary ``except`` clauses
keep working.
"""

from __future__ import annotations


class JtapeError(Exception):
    """Base class of every error jtape raises on purpose."""


class ShapeError(JtapeError, ValueError):
    """Shapes, dims or static arguments (stride, padding, sizes) that an op cannot accept."""


class DTypeError(JtapeError, TypeError):
    """A dtype that an op cannot accept (a float op on integers, mixed dtypes, ...)."""


class BackendError(JtapeError, ValueError):
    """Tensors from different backends or devices, or a backend that cannot do what was asked."""


class TapeError(JtapeError, RuntimeError):
    """Misuse of the gradient tape: backward with nothing recorded, a tensor not on the tape, ..."""


class ArgumentError(JtapeError, TypeError):
    """An argument of the wrong kind: an array or a list where a Tensor goes, a value where a
    callable goes, ..."""
