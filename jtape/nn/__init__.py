"""Neural-network building blocks on the tape: ``Module``, ``Parameter``, layers, activations,
losses, initializers and ``accuracy``.

    backend = autodiff.new(JaxBackend())
    model = nn.Sequential(nn.Linear(64, 32, backend, seed=0), nn.ReLU(), nn.Linear(32, 10, backend, seed=1))
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()                     # each parameter's .grad

Every module is written with Tensor methods, so every op of a forward pass is on the tape.
"""

from . import init
from .activation import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from .attention import MultiheadAttention
from .containers import ModuleDict, ModuleList, ParameterList
from .embedding import Embedding
from .layers import AvgPool2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D
from .loss import CrossEntropyLoss, MSELoss, NLLLoss, accuracy
from .module import Buffer, Module, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .regression_loss import BCEWithLogitsLoss, HuberLoss, L1Loss, SmoothL1Loss

__all__ = ["ELU", "GELU", "AvgPool2D", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Buffer", "Conv2D",
           "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "HuberLoss", "Identity", "L1Loss", "LayerNorm",
           "LeakyReLU", "Linear", "MSELoss", "MaxPool2D", "Module", "ModuleDict", "ModuleList", "MultiheadAttention",
           "NLLLoss", "Parameter", "ParameterList", "ReLU", "Sequential", "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax",
           "Softplus", "Tanh", "accuracy", "init"]
