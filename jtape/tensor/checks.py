"""Shape and dtype inference for every op, shared by all backends.

Each function takes the op's name, its inputs' shapes/dtypes and its static arguments, checks
them, and returns the output's ``(Shape, DataType)`` — or raises a ``ShapeError``/``DTypeError``
that names the op, what it got and what it expected. Both backends call these *before* any kernel
runs, so the two raise the same message for the same mistake. Only shapes and dtypes are looked
at (never array values), so the checks also work on tracers inside ``jax.jit``.

The results are cached: shapes, dtypes and static arguments are hashable, and a training loop
asks the same questions every step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from .dtype import DataType
from .errors import DTypeError, ShapeError
from .shape import Shape

_cache = lru_cache(maxsize=8192)
# For checks of dims, keep_dim and n: an untyped cache would treat 1, 1.0 and True as one key, so a
# bad `dim=True` or `keep_dim=1` would pass once a good call with an equal value had been cached.
_typed_cache = lru_cache(maxsize=8192, typed=True)


# -- dims -------------------------------------------------------------------------------------

def normalize_dim(op: str, dim: int, ndim: int, *, insert: bool = False) -> int:
    """Map a possibly negative ``dim`` into ``[0, ndim)`` (``[0, ndim]`` when ``insert``)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        try:
            if isinstance(dim, bool):  # True.__index__() is 1: a bool is not a dim
                raise AttributeError
            dim = dim.__index__()
        except AttributeError:
            raise ShapeError(f"{op}: got dim={dim!r}; expected an int") from None
    top = ndim + 1 if insert else ndim
    if not -top <= dim < top:
        lo, hi = -top, top - 1
        if top == 0:
            raise ShapeError(f"{op}: got dim={dim} for a 0-d tensor; it has no dims; expected a tensor of rank >= 1")
        raise ShapeError(f"{op}: got dim={dim} for a tensor of rank {ndim}; expected {lo} <= dim <= {hi}")
    return dim + top if dim < 0 else dim


def pair(op: str, name: str, value, *, minimum: int) -> tuple[int, int]:
    """Normalise an int-or-pair static argument (stride, padding, kernel size)."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value, value)
    else:
        try:
            out = tuple(int(v.__index__()) for v in value)
        except (AttributeError, TypeError):
            out = ()
        if len(out) != 2:
            raise ShapeError(f"{op}: got {name}={value!r}; expected an int or a pair of ints")
    if min(out) < minimum:
        raise ShapeError(f"{op}: got {name}={value!r}; expected values >= {minimum}")
    return out


# -- dtypes -----------------------------------------------------------------------------------

def _need_float(op: str, *dtypes: DataType) -> None:
    for d in dtypes:
        if not d.is_float:
            raise DTypeError(f"{op}: got dtype {d.value}; expected a float dtype "
                             f"(float32, float64, float16, bfloat16) — cast first")


def _need_numeric(op: str, *dtypes: DataType) -> None:
    for d in dtypes:
        if d.is_bool:
            raise DTypeError(f"{op}: got dtype bool; expected a numeric dtype (use and_/or_/not_ for bool, or cast)")


def _need_bool(op: str, *dtypes: DataType) -> None:
    for d in dtypes:
        if not d.is_bool:
            raise DTypeError(f"{op}: got dtype {d.value}; expected bool")


def _same_dtype(op: str, *dtypes: DataType) -> DataType:
    if any(d is not dtypes[0] for d in dtypes):
        got = ", ".join(d.value for d in dtypes)
        raise DTypeError(f"{op}: got dtypes {got}; expected all inputs to have the same dtype (cast first)")
    return dtypes[0]


# -- broadcasting ------------------------------------------------------------------------------

@_cache
def broadcast_shapes(op: str, *shapes: tuple) -> Shape:
    """NumPy broadcasting: align trailing dims; each pair must be equal or contain a 1."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        sizes = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(sizes) > 1:
            got = " and ".join(str(tuple(s)) for s in shapes)
            raise ShapeError(f"{op}: got shapes {got}, which do not broadcast (dim {i} has sizes "
                             f"{sorted(sizes)}); expected equal sizes or 1 in each trailing dim")
        out.append(sizes.pop() if sizes else 1)
    return Shape(out)


@_cache
def binary_arith(op: str, sa: tuple, da: DataType, sb: tuple, db: DataType, float_only: bool = False):
    dtype = _same_dtype(op, da, db)
    (_need_float if float_only else _need_numeric)(op, dtype)
    return broadcast_shapes(op, sa, sb), dtype


@_cache
def compare(op: str, sa: tuple, da: DataType, sb: tuple, db: DataType, ordered: bool):
    dtype = _same_dtype(op, da, db)
    if ordered:
        _need_numeric(op, dtype)
    return broadcast_shapes(op, sa, sb), DataType.BOOL


@_cache
def logical(op: str, *shapes_dtypes):
    shapes, dtypes = shapes_dtypes[::2], shapes_dtypes[1::2]
    _need_bool(op, *dtypes)
    return broadcast_shapes(op, *shapes), DataType.BOOL


def scalar(op: str, dtype: DataType, value, float_only: bool = False):
    """Check a Python scalar for a scalar op; returns it converted for ``dtype``."""
    if float_only:
        _need_float(op, dtype)
    else:
        _need_numeric(op, dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = value.item()  # NumPy scalars and 0-d arrays
        except AttributeError:
            pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DTypeError(f"{op}: got scalar {value!r} of type {type(value).__name__}; expected an int or float")
    if dtype.is_int:
        if value != int(value):
            raise DTypeError(f"{op}: got scalar {value!r} for a tensor of dtype {dtype.value}; "
                             f"expected an integral value (cast the tensor to float first)")
        return int(value)
    return float(value)


@_cache
def unary_float(op: str, dtype: DataType) -> DataType:
    _need_float(op, dtype)
    return dtype


# -- linear algebra, convolution, pooling, loss ------------------------------------------------

@_cache
def matmul(sa: tuple, da: DataType, sb: tuple, db: DataType):
    op = "matmul"
    dtype = _same_dtype(op, da, db)
    _need_float(op, dtype)
    if len(sa) < 2 or len(sb) < 2:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected both of rank >= 2 "
                         f"(unsqueeze a vector to [1, n] or [n, 1] first)")
    if sa[-1] != sb[-2]:
        raise ShapeError(f"matmul: got shapes {sa} and {sb}; expected a.shape[-1] ({sa[-1]}) "
                         f"to equal b.shape[-2] ({sb[-2]})")
    batch = broadcast_shapes(op, sa[:-2], sb[:-2])
    return Shape(batch + (sa[-2], sb[-1])), dtype


def conv_out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@_cache
def conv2d(si: tuple, di: DataType, sk: tuple, dk: DataType, stride: tuple, padding: tuple):
    op = "conv2d"
    dtype = _same_dtype(op, di, dk)
    _need_float(op, dtype)
    if len(si) != 4:
        raise ShapeError(f"conv2d: got input shape {si}; expected rank 4 [N, C_in, H, W]")
    if len(sk) != 4:
        raise ShapeError(f"conv2d: got kernel shape {sk}; expected rank 4 [C_out, C_in, KH, KW]")
    if si[1] != sk[1]:
        raise ShapeError(f"conv2d: got input shape {si} with {si[1]} channels and kernel shape {sk} "
                         f"expecting {sk[1]}; expected input.shape[1] == kernel.shape[1]")
    ph, pw = si[2] + 2 * padding[0], si[3] + 2 * padding[1]
    if sk[2] > ph or sk[3] > pw or 0 in sk[2:]:
        raise ShapeError(f"conv2d: got kernel {sk[2]}x{sk[3]} for input {si[2]}x{si[3]} with padding "
                         f"{padding} (padded {ph}x{pw}); expected a non-empty kernel no larger than the padded input")
    oh = conv_out_size(si[2], sk[2], stride[0], padding[0])
    ow = conv_out_size(si[3], sk[3], stride[1], padding[1])
    return Shape((si[0], sk[0], oh, ow)), dtype


@_cache
def max_pool2d(si: tuple, di: DataType, kernel: tuple, stride: tuple):
    op = "max_pool2d"
    _need_float(op, di)
    if len(si) != 4:
        raise ShapeError(f"max_pool2d: got input shape {si}; expected rank 4 [N, C, H, W]")
    if kernel[0] > si[2] or kernel[1] > si[3]:
        raise ShapeError(f"max_pool2d: got kernel_size {kernel} for input {si[2]}x{si[3]}; "
                         f"expected a window no larger than the input")
    oh = (si[2] - kernel[0]) // stride[0] + 1
    ow = (si[3] - kernel[1]) // stride[1] + 1
    return Shape((si[0], si[1], oh, ow)), di


@_cache
def cross_entropy(sl: tuple, dl: DataType, st: tuple, dt: DataType):
    op = "cross_entropy"
    _need_float(op, dl)
    if not dt.is_int:
        raise DTypeError(f"cross_entropy: got targets of dtype {dt.value}; expected integer class "
                         f"indices (int32, int64 or uint8)")
    if len(sl) != 2:
        raise ShapeError(f"cross_entropy: got logits shape {sl}; expected rank 2 [B, C]")
    if len(st) != 1:
        raise ShapeError(f"cross_entropy: got targets shape {st}; expected rank 1 [B]")
    if sl[0] != st[0]:
        raise ShapeError(f"cross_entropy: got logits shape {sl} and targets shape {st}; "
                         f"expected the same batch size B")
    if sl[1] == 0:
        raise ShapeError(f"cross_entropy: got logits shape {sl}; expected at least one class")
    return Shape(()), dl


# -- reductions --------------------------------------------------------------------------------

@_cache
def sum_all(dtype: DataType):
    _need_numeric("sum", dtype)
    return Shape(()), dtype


@_typed_cache
def reduce_dim(op: str, shape: tuple, dtype: DataType, dim: int, keep_dim: bool, float_only: bool):
    (_need_float if float_only else _need_numeric)(op, dtype)
    d = normalize_dim(op, dim, len(shape))
    if not isinstance(keep_dim, bool):
        raise ShapeError(f"{op}: got keep_dim={keep_dim!r}; expected True or False")
    out = shape[:d] + ((1,) if keep_dim else ()) + shape[d + 1:]
    return Shape(out), dtype, d


@_typed_cache
def argmax(shape: tuple, dtype: DataType, dim: int):
    _need_numeric("argmax", dtype)
    d = normalize_dim("argmax", dim, len(shape))
    if shape[d] == 0:
        raise ShapeError(f"argmax: got shape {shape} with dim {dim} of size 0; expected a non-empty dim")
    return Shape(shape[:d] + shape[d + 1:]), DataType.INT32, d


@_typed_cache
def softmax(shape: tuple, dtype: DataType, dim: int):
    _need_float("softmax", dtype)
    return normalize_dim("softmax", dim, len(shape))


# -- shape ops ---------------------------------------------------------------------------------

def as_shape_arg(op: str, shape) -> tuple:
    """Normalise a user's target shape (a Shape, tuple, list or int) to a tuple of ints."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        return (shape,)
    try:
        return tuple(int(d.__index__()) for d in shape)
    except (AttributeError, TypeError):
        raise ShapeError(f"{op}: got shape {shape!r}; expected a sequence of ints") from None


@_cache
def reshape(shape: tuple, new: tuple) -> Shape:
    size = Shape(shape).size
    if new.count(-1) > 1 or any(d < -1 for d in new):
        raise ShapeError(f"reshape: got target shape {new}; expected non-negative sizes and at most one -1")
    if -1 in new:
        rest = Shape(d for d in new if d != -1).size
        if rest == 0 or size % rest:
            raise ShapeError(f"reshape: cannot reshape {shape} (size {size}) to {new}; the -1 cannot be "
                             f"inferred; expected the other sizes' product ({rest}) to be non-zero and divide {size}")
        new = tuple(size // rest if d == -1 else d for d in new)
    if Shape(new).size != size:
        raise ShapeError(f"reshape: cannot reshape {shape} (size {size}) to {new} (size {Shape(new).size}); "
                         f"expected the same number of elements")
    return Shape(new)


def transpose(shape: tuple, axes: tuple):
    # The cache below compares axes by value, and (True, 0) == (1, 0): reject non-int axes and
    # pass plain ints, so a bad axis is rejected whatever was cached before.
    for a in axes:
        if isinstance(a, bool) or not hasattr(a, "__index__"):
            raise ShapeError(f"transpose: got axis {a!r} in axes {tuple(axes)}; expected ints")
    return _transpose(shape, tuple(a.__index__() for a in axes))


@_cache
def _transpose(shape: tuple, axes: tuple):
    n = len(shape)
    if not axes:
        axes = tuple(range(n - 1, -1, -1))
    if len(axes) != n:
        raise ShapeError(f"transpose: got axes {axes} for a tensor of rank {n}; expected no axes "
                         f"(reverse all) or a permutation of all {n} dims")
    perm = tuple(normalize_dim("transpose", a, n) for a in axes)
    if sorted(perm) != list(range(n)):
        raise ShapeError(f"transpose: got axes {axes}; expected a permutation of range({n})")
    return Shape(shape[p] for p in perm), perm


@_typed_cache
def squeeze(shape: tuple, dim: int):
    d = normalize_dim("squeeze", dim, len(shape))
    if shape[d] != 1:
        raise ShapeError(f"squeeze: got shape {shape} and dim={dim} of size {shape[d]}; expected a dim of size 1")
    return Shape(shape[:d] + shape[d + 1:]), d


@_typed_cache
def unsqueeze(shape: tuple, dim: int):
    d = normalize_dim("unsqueeze", dim, len(shape), insert=True)
    return Shape(shape[:d] + (1,) + shape[d:]), d


@_cache
def expand(shape: tuple, target: tuple) -> Shape:
    if len(target) < len(shape):
        raise ShapeError(f"expand: cannot expand shape {shape} to {target}; expected a target of rank >= {len(shape)}")
    lead = len(target) - len(shape)
    out = list(target[:lead])
    if any(d < 0 for d in out):
        raise ShapeError(f"expand: got target {target}; -1 is only allowed for existing dims; expected "
                         f"non-negative sizes for the {lead} new leading dim(s)")
    for i, (s, t) in enumerate(zip(shape, target[lead:])):
        if t == -1:
            t = s
        if s != t and s != 1:
            raise ShapeError(f"expand: cannot expand shape {shape} to {target}: dim {lead + i} has size {s}; "
                             f"expected size 1 or {t}")
        if t < 0:
            raise ShapeError(f"expand: got target {target}; expected non-negative sizes or -1")
        out.append(t)
    return Shape(out)


@_typed_cache
def cat(shapes: tuple, dtypes: tuple, dim: int):
    if not shapes:
        raise ShapeError("cat: got no tensors; expected at least one")
    dtype = _same_dtype("cat", *dtypes)
    first = shapes[0]
    d = normalize_dim("cat", dim, len(first))
    for i, s in enumerate(shapes):
        if len(s) != len(first) or s[:d] != first[:d] or s[d + 1:] != first[d + 1:]:
            raise ShapeError(f"cat: tensor {i} has shape {s}, tensor 0 has shape {first}; expected equal "
                             f"shapes except along dim {dim}")
    return Shape(first[:d] + (sum(s[d] for s in shapes),) + first[d + 1:]), dtype, d


@_typed_cache
def chunk(shape: tuple, n: int, dim: int):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ShapeError(f"chunk: got n={n!r}; expected a positive int")
    d = normalize_dim("chunk", dim, len(shape))
    if shape[d] % n:
        raise ShapeError(f"chunk: cannot split dim {dim} of size {shape[d]} (shape {shape}) into {n} "
                         f"equal chunks; expected n to divide {shape[d]}")
    return Shape(shape[:d] + (shape[d] // n,) + shape[d + 1:]), d


@_typed_cache
def gather(sx: tuple, dim: int, si: tuple, di: DataType):
    if not di.is_int:
        raise DTypeError(f"gather: got index of dtype {di.value}; expected an integer dtype")
    d = normalize_dim("gather", dim, len(sx))
    if len(si) != len(sx):
        raise ShapeError(f"gather: got x shape {sx} and index shape {si}; expected the same rank")
    for i, (a, b) in enumerate(zip(sx, si)):
        if i != d and b > a:
            raise ShapeError(f"gather: got x shape {sx} and index shape {si}; expected index.shape[{i}] "
                             f"<= x.shape[{i}] for every dim except {dim}")
    return Shape(si), d


@_cache
def where(sc: tuple, dc: DataType, sx: tuple, dx: DataType, sy: tuple, dy: DataType):
    if not dc.is_bool:
        raise DTypeError(f"where: got condition of dtype {dc.value}; expected bool (compare first, e.g. x.greater(y))")
    dtype = _same_dtype("where", dx, dy)
    return broadcast_shapes("where", sc, sx, sy), dtype


def cast_target(dtype) -> DataType:
    try:
        return DataType.of(dtype)
    except DTypeError as e:
        raise DTypeError(f"cast: {e}") from None


def same_shapes(op: str, got: Sequence, expected: Sequence) -> None:
    if tuple(got) != tuple(expected):
        raise ShapeError(f"{op}: got shape {tuple(got)}; expected {tuple(expected)}")
