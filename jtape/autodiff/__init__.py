"""Reverse-mode autodiff: ``AutodiffBackend`` (the decorator), ``GradientTape`` and ``backward``.

    backend = autodiff.new(JaxBackend())     # its tape is recording
    y = x * x
    y.backward()                             # x.grad == 2x
"""

from .backend import AutodiffBackend, BackwardCapable, new
from .compiled import jit
from .engine import backward, gradient, tensor_backward
from .grad_mode import is_grad_enabled, no_grad
from .tape import GradientTape, new_gradient_tape

__all__ = ["AutodiffBackend", "BackwardCapable", "GradientTape", "backward", "gradient", "is_grad_enabled", "jit", "new",
           "new_gradient_tape", "no_grad", "tensor_backward"]
