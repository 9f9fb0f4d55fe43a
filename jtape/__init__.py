"""jtape: reverse-mode automatic differentiation with an explicit gradient tape, on JAX.

    from jtape import autodiff, tensor
    from jtape.backends import JaxBackend

    backend = autodiff.new(JaxBackend())
    x = tensor.from_slice([2.0], tensor.Shape((1,)), backend)
    y = x * x
    y.backward()
    print(x.grad)        # [4.]
"""

from . import autodiff, backends, distributed, nn, ops, optim, random, tensor
from .autodiff import AutodiffBackend, GradientTape, jit, no_grad
from .backends import JaxBackend
from .checkpoint import load, save
from .tensor import DataType, Device, RawTensor, Shape, Tensor
from .tensor.defaults import default_backend, set_default_backend, set_factory

set_factory(lambda: autodiff.new(JaxBackend()))

__version__ = "0.1.0"

__all__ = ["AutodiffBackend", "DataType", "Device", "GradientTape", "JaxBackend", "RawTensor", "Shape", "Tensor",
           "autodiff", "backends", "default_backend", "distributed", "jit", "load", "nn", "no_grad", "ops", "optim",
           "random", "save", "set_default_backend", "tensor", "__version__"]
