"""Concrete backends: ``JaxBackend`` (jitted XLA kernels) and ``NumpyBackend`` (plain NumPy)."""

from .base import KernelBackend
from .jax_backend import JaxBackend
from .numpy_backend import NumpyBackend

__all__ = ["JaxBackend", "KernelBackend", "NumpyBackend"]
