"""Reverse-mode autodiff: ``AutodiffBackend`` (the decorator), ``GradientTape`` and ``backward``.

    backend = autodiff.new(JaxBackend())     # its tape is recording
    y = x * x
    y.backward()                             # x.grad == 2x
"""

from ..tensor.raw import HookHandle
from .anomaly import AnomalyError, SourceLocation, capture_source, detect_anomaly, is_anomaly_enabled
from .backend import AutodiffBackend, BackwardCapable, new
from .compiled import jit
from .custom import custom_op
from .engine import backward, gradient, tensor_backward
from .forward import jvp
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .observers import TraceEvent, register_hook, tracing
from .tape import GradientTape, new_gradient_tape
from .views import GraphvizError, label

__all__ = ["AutodiffBackend", "BackwardCapable", "GradientTape", "backward", "custom_op", "enable_grad", "gradient",
           "is_grad_enabled", "jit", "jvp", "new", "new_gradient_tape", "no_grad", "tensor_backward"]
__all__ += ["AnomalyError", "GraphvizError", "HookHandle", "SourceLocation", "TraceEvent", "capture_source",
            "detect_anomaly", "is_anomaly_enabled", "label", "register_hook", "tracing"]  # teaching views
