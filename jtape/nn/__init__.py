"""Neural-network building blocks on the tape: ``Module``, ``Parameter``, layers, activations,
losses, initializers and ``accuracy``.

    backend = autodiff.new(JaxBackend())
    model = nn.Sequential(nn.Linear(64, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 10, backend, seed=1))
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()                     # each parameter's .grad

Every module is written with Tensor methods, so every op of a forward pass is on the tape.
"""

from . import init
from .activation import ReLU, Sigmoid, SiLU, Softmax, Tanh
from .layers import AvgPool2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D
from .loss import CrossEntropyLoss, MSELoss, accuracy
from .module import Buffer, Module, Parameter, Sequential

__all__ = ["AvgPool2D", "Buffer", "Conv2D", "CrossEntropyLoss", "Dropout", "Flatten", "Linear", "MSELoss", "MaxPool2D", "Module",
           "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax", "Tanh", "accuracy", "init"]
