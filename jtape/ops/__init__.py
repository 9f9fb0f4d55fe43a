"""``Operation`` and one class per differentiable op, grouped by family."""

from .base import Operation, unbroadcast
from .conv import Conv2DOp, MaxPool2DOp
from .elementwise import AddOp, AddScalarOp, DivOp, DivScalarOp, MulOp, MulScalarOp, SubOp, SubScalarOp
from .indexing import GatherOp, WhereOp
from .kernels import GRADIENT_OP_CLASSES  # the gradient kernels' own ops (for create_graph), in .kernels
from .linalg import MatMulOp
from .loss import CrossEntropyOp
from .reduce import MeanDimOp, SumDimOp, SumOp
from .shape import CatOp, ChunkOp, ExpandOp, ReshapeOp, SqueezeOp, TransposeOp, UnsqueezeOp
from .unary import CastOp, CosOp, ExpOp, LogOp, ReLUOp, RsqrtOp, SigmoidOp, SiLUOp, SinOp, SoftmaxOp, SqrtOp, TanhOp

# The op each Backend method records (chunk records one ChunkOp per piece).
OP_CLASSES: dict[str, type[Operation]] = {
    "add": AddOp, "sub": SubOp, "mul": MulOp, "div": DivOp,
    "add_scalar": AddScalarOp, "sub_scalar": SubScalarOp, "mul_scalar": MulScalarOp, "div_scalar": DivScalarOp,
    "exp": ExpOp, "log": LogOp, "sqrt": SqrtOp, "rsqrt": RsqrtOp, "sin": SinOp, "cos": CosOp,
    "relu": ReLUOp, "sigmoid": SigmoidOp, "tanh": TanhOp, "silu": SiLUOp, "softmax": SoftmaxOp,
    "matmul": MatMulOp, "conv2d": Conv2DOp, "max_pool2d": MaxPool2DOp, "cross_entropy": CrossEntropyOp,
    "sum": SumOp, "sum_dim": SumDimOp, "mean_dim": MeanDimOp,
    "reshape": ReshapeOp, "transpose": TransposeOp, "squeeze": SqueezeOp, "unsqueeze": UnsqueezeOp,
    "expand": ExpandOp, "cat": CatOp, "chunk": ChunkOp, "gather": GatherOp, "where": WhereOp, "cast": CastOp,
}

__all__ = ["GRADIENT_OP_CLASSES", "OP_CLASSES", "Operation", "unbroadcast"] + sorted(c.__name__ for c in OP_CLASSES.values())
