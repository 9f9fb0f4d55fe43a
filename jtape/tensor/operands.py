"""What may stand on the other side of a Tensor's operator, and how it gets onto the tape.

A Python number becomes a 0-d constant of the tensor's dtype (``args.scalar_for``: integral and
in range for an integer tensor). A NumPy array (or NumPy scalar) or a jax array becomes a
constant on the tensor's backend (``array_operand``), in the dtype the operator computes in:

===================  ======================  =======================  ==========================
array \\ tensor       float tensor             integer tensor           bool tensor
===================  ======================  =======================  ==========================
float array          the tensor's dtype       DTypeError (cast first)  DTypeError
integer array        the tensor's dtype       the tensor's dtype [1]_  DTypeError
bool array           the tensor's dtype (0/1) the tensor's dtype (0/1) bool
===================  ======================  =======================  ==========================

.. [1] values outside the tensor's dtype are refused (when the array is concrete; a traced jax
   array is converted as ``astype`` does).

That is the operators' rule (``cast=True``). Arguments of other ops keep their kind: an integer
or bool array passed to a method (an index, a mask) keeps its own dtype, and only a float array
takes the tensor's float dtype.

NumPy ufuncs reach a Tensor through ``Tensor.__array_ufunc__`` (``ndarray + tensor`` is
``np.add(ndarray, tensor)``): the ufuncs of Python's operators run as those operators, on the
tape (``array_ufunc``); any other ufunc (``np.exp(t)``) raises a TypeError naming the jtape
method, instead of silently computing on a copy of the values that no gradient can reach.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .dtype import DataType
from .errors import ArgumentError, DTypeError
from .raw import RawTensor
from .shape import Shape


def is_number(x: Any) -> bool:
    """A Python or NumPy real number (bools are not numbers here)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def is_array(x: Any) -> bool:
    """A NumPy array or scalar (np.bool_ included), or a jax array (a tracer included)."""
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def _target(op: str, array_dtype: DataType, dtype: DataType, cast: bool, numpy_name: str) -> DataType:
    if not cast:
        return dtype if (array_dtype.is_float and dtype.is_float) else array_dtype
    if dtype.is_float or array_dtype is dtype or (dtype.is_int and not array_dtype.is_float):
        return dtype
    want = "a bool array" if dtype.is_bool else "an integer or bool array (or cast the tensor to a float dtype)"
    raise DTypeError(f"{op}: got a {numpy_name} array for a tensor of dtype {dtype.value}; expected {want}")


def array_operand(t: Any, other: Any, op: str, cast: bool) -> RawTensor:
    """``other`` (a NumPy or jax array, or a NumPy scalar) as a constant RawTensor on ``t``'s
    backend, in the dtype of the table above."""
    if isinstance(other, np.generic):
        other = np.asarray(other)
    try:
        array_dtype = DataType.of(other.dtype)
    except DTypeError:
        raise DTypeError(f"{op}: got an array of dtype {other.dtype}; expected a float, integer or bool "
                         f"array") from None
    dtype = _target(op, array_dtype, t.dtype, cast, array_dtype.value)
    if cast and dtype.is_int and array_dtype.is_int and array_dtype is not dtype:
        _check_range(op, other, dtype)
    if isinstance(other, jax.core.Tracer):
        if not isinstance(t.data, jax.Array):
            raise ArgumentError(f"{op}: got a traced jax array for a tensor on {t.backend.name()}; expected a concrete "
                            f"array (only a JaxBackend tensor can meet a traced array)")
        raw = RawTensor(other.astype(dtype.numpy), Shape(other.shape), dtype, t.device)
    else:
        raw = t.backend.from_numpy(other, dtype)
    raw.requires_grad = False
    return raw


def _check_range(op: str, other: Any, dtype: DataType) -> None:
    if isinstance(other, jax.core.Tracer) or other.size == 0:
        return
    values = np.asarray(other)
    low, high = dtype.int_range
    if values.min() < low or values.max() > high:
        raise DTypeError(f"{op}: got an integer array with values in [{values.min()}, {values.max()}] for a tensor of "
                         f"dtype {dtype.value}; expected values in [{low}, {high}] (cast the tensor first)")


# -- NumPy ufuncs --------------------------------------------------------------------------------
# The ufunc behind each Python operator: (method when the Tensor is on the left, when on the right).
OPERATOR_UFUNCS: dict[Any, tuple[str, str]] = {
    np.add: ("__add__", "__radd__"), np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"), np.true_divide: ("__truediv__", "__rtruediv__"),
    np.power: ("__pow__", "__rpow__"), np.matmul: ("__matmul__", "__rmatmul__"),
    np.equal: ("__eq__", "__eq__"), np.not_equal: ("__ne__", "__ne__"),
    np.less: ("__lt__", "__gt__"), np.less_equal: ("__le__", "__ge__"),
    np.greater: ("__gt__", "__lt__"), np.greater_equal: ("__ge__", "__le__"),
    np.bitwise_and: ("__and__", "__and__"), np.bitwise_or: ("__or__", "__or__"),
    np.negative: ("__neg__", ""), np.positive: ("__pos__", ""), np.absolute: ("__abs__", ""),
    np.invert: ("__invert__", ""),
}

# NumPy's name -> jtape's, where they differ (the rest: a Tensor method of the ufunc's own name).
_RENAMED = {"arctan": "atan", "fabs": "abs", "less": "lower", "less_equal": "lower_equal", "logical_and": "and_",
            "logical_or": "or_", "logical_not": "not_", "float_power": "pow"}


def ufunc_hint(ufunc: Any, tensor_type: type) -> str:
    """What to write instead of ``np.<ufunc>(t)``."""
    name = _RENAMED.get(ufunc.__name__, ufunc.__name__)
    if callable(getattr(tensor_type, name, None)):
        return f"use t.{name}({'other' if ufunc.nin == 2 else ''}) instead"
    return "jtape has no op for it; write it with jtape ops, or take the values off the tape on purpose with t.numpy()"


def array_ufunc(ufunc: Any, method: str, inputs: tuple, kwargs: dict, tensor_type: type, methods: type) -> Any:
    """``Tensor.__array_ufunc__``: an operator's ufunc runs as that operator (on the tape);
    everything else is refused with a TypeError that says what to use. ``tensor_type`` tells
    Tensors apart; ``methods`` is the class whose methods the hint may name."""
    name = f"numpy.{ufunc.__name__}"
    pair = OPERATOR_UFUNCS.get(ufunc)
    if pair is None:
        raise ArgumentError(f"{name} got a jtape Tensor: it would compute on a copy of the values, off the tape (no "
                        f"gradient could reach them); {ufunc_hint(ufunc, methods)}")
    if method != "__call__":
        raise ArgumentError(f"{name}.{method} got a jtape Tensor; expected a plain call (only the ufuncs of Python's "
                        f"operators take Tensors: ndarray + tensor)")
    if kwargs:
        raise ArgumentError(f"{name} got a jtape Tensor with {', '.join(sorted(kwargs))}=; expected no keyword "
                        f"arguments (a NumPy array cannot hold a Tensor's result: write `a = a + t`, not `a += t`)")
    if len(inputs) == 1:
        return getattr(inputs[0], pair[0])()
    left, right = inputs
    if isinstance(left, tensor_type):
        return getattr(left, pair[0])(right)
    return getattr(right, pair[1])(left)
