"""The operators and the hand-written methods of ``Tensor`` (the ``TensorOperators`` mixin).

``+ - * / **`` take Python numbers on either side (the scalar ops; ``t ** p`` is ``pow_scalar``)
and Tensors on the same backend (the broadcasting ops); ``@`` is matmul; ``-t`` is neg,
``abs(t)`` abs; comparisons give bool tensors. ``t += x`` (and ``-= *= /= **= @= &= |=``) is
in place for the tensor *object*, as in PyTorch (``_inplace``). A NumPy or jax array on either side becomes a
constant on the tensor's backend (``operands``: a float array takes the tensor's float dtype),
and NumPy's ufuncs of these operators (``ndarray + t`` calls ``np.add``) run them on the tape;
any other ufunc on a Tensor (``np.exp(t)``) is refused with the jtape method to use.

The methods written here by hand are those whose Tensor spelling differs from the backend op
(``sum``, ``mean``, ``reshape(*shape)``, ``cat(others)``, ``where(condition, other)``,
``pow(number or tensor)``); every other op is a generated method
(``jtape.tensor.tensor.install_op_method``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from jax.core import Tracer

from .args import scalar_for
from .dtype import DataType
from .errors import ArgumentError, BackendError, DTypeError, ShapeError, TapeError
from .operands import array_operand, array_ufunc, is_array, is_number
from .raw import Pending, RawTensor

if TYPE_CHECKING:
    from .tensor import Tensor


class TensorOperators:
    """Mixed into ``Tensor``; ``self._new(raw)`` wraps a result, ``self._raw`` is the RawTensor."""

    __slots__ = ()

    # -- operands ------------------------------------------------------------------------------
    def _lift(self, other: Any, op: str, cast: bool = False) -> RawTensor:
        """``other`` as a RawTensor on this tensor's backend: a Tensor's own (same backend), a number
        as a 0-d constant of this tensor's dtype, an array as a constant (``operands.array_operand``:
        with ``cast``, the operators' rule, else integer and bool arrays keep their dtype)."""
        if isinstance(other, TensorOperators):
            if other.backend is not self.backend:
                raise BackendError(f"{op}: got tensors from two backends ({self.backend.name()} and "
                                   f"{other.backend.name()}); expected both on the same backend")
            return other._raw
        if is_number(other):
            raw = self.backend.full((), scalar_for(op, self.dtype, other), self.dtype)
            raw.requires_grad = False
            return raw
        if is_array(other):
            return array_operand(self, other, op, cast)
        raise ArgumentError(f"{op}: got an operand of type {type(other).__name__}; expected a Tensor, a Python number, "
                        f"or a NumPy or jax array")

    def _wrap(self, out: Any) -> Any:
        """An op's result(s) as Tensor(s) on this backend."""
        return self._new(out) if isinstance(out, RawTensor) else [self._new(r) for r in out]

    def _arith(self, op: str, other: Any) -> "Tensor":
        if isinstance(other, TensorOperators) and other.backend is self.backend:      # the usual case, first
            return self._new(getattr(self.backend, op)(self._raw, other._raw))
        if (other.__class__ in (int, float) or (isinstance(other, np.generic) and not isinstance(other, np.bool_))
                or (isinstance(other, Tracer) and other.ndim == 0 and self.dtype.is_float)):
            # a traced 0-d scalar too: a rule's saved scalar inside a deferred program (``Operation.concrete``)
            return self._new(getattr(self.backend, op + "_scalar")(self._raw, other))
        return self._new(getattr(self.backend, op)(self._raw, self._lift(other, op, cast=True)))

    def _binary(self, op: str, other: Any, reflected: bool = False) -> "Tensor":
        """``op(self, other)`` (``op(other, self)`` when ``reflected``), other converted as an operand."""
        lifted = self._lift(other, op, cast=True)
        args = (lifted, self._raw) if reflected else (self._raw, lifted)
        return self._new(getattr(self.backend, op)(*args))

    # -- arithmetic ----------------------------------------------------------------------------
    def add(self, other: Any) -> "Tensor":
        return self._arith("add", other)

    def sub(self, other: Any) -> "Tensor":
        return self._arith("sub", other)

    def mul(self, other: Any) -> "Tensor":
        return self._arith("mul", other)

    def div(self, other: Any) -> "Tensor":
        return self._arith("div", other)

    def pow(self, exponent: Any) -> "Tensor":
        """``self ** exponent``: ``pow_scalar`` for a Python (or NumPy) number, ``pow`` (broadcasting)
        for a Tensor or an array. The two agree except at conventions (``PowScalarOp``: x ** 0 has
        gradient 0 at x = 0, where jax's tensor power gives NaN)."""
        if is_number(exponent):
            return self._new(self.backend.pow_scalar(self._raw, exponent))
        return self._binary("pow", exponent)

    __add__, __sub__, __mul__, __truediv__ = add, sub, mul, div    # Tensor overrides these with fast paths
    __radd__, __rmul__, __pow__ = add, mul, pow

    def __rsub__(self, other: Any) -> "Tensor":
        return self._binary("sub", other, reflected=True)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._binary("div", other, reflected=True)

    def __rpow__(self, base: Any) -> "Tensor":
        """``base ** self`` for a number or an array: ``pow`` with the base as a constant of this
        tensor's dtype, so jax's conventions for a base <= 0 hold (0 ** x has gradient 0 in x; a
        negative base gives NaN gradients). Not exp(x · log s), which is NaN at s = 0, x = 0."""
        return self._binary("pow", base, reflected=True)

    def __neg__(self) -> "Tensor":
        return self._new(self.backend.neg(self._raw))

    def __pos__(self) -> "Tensor":
        return self

    def __abs__(self) -> "Tensor":
        return self._new(self.backend.abs(self._raw))

    def __matmul__(self, other: Any) -> "Tensor":
        return self._binary("matmul", other)

    def __rmatmul__(self, other: Any) -> "Tensor":
        return self._binary("matmul", other, reflected=True)

    # -- in place: t += x ----------------------------------------------------------------------
    def _inplace(self, sym: str, op: Any, other: Any) -> "Tensor":
        """``t op= x``: ``op(t, x)`` (``t op x``, computed and recorded as any op) becomes this tensor's
        value — the tensor object changes, as in PyTorch, so ``for p in params: p -= lr * p.grad``
        updates the parameters. (Without this, Python would rebind the loop variable to a new
        tensor and leave every parameter as it was: no error, no update.) jtape's arrays are
        immutable, so the tensor swaps in the result's RawTensor:

        * not recorded (under ``no_grad``, or nothing wants a gradient): the tensor keeps being what
          it was — ``requires_grad``, ``.grad``, hooks and name move to the new values, as
          ``assign`` does for an optimizer step;
        * recorded, on a tensor an op made (``h += b`` in a forward): the tensor now names the op's
          output, and gradients flow through the op to the old value, as for ``h = h + b``;
        * recorded, on a leaf that wants a gradient (a Parameter outside ``no_grad``): refused
          before anything runs, as PyTorch refuses it — the leaf would stop being the tensor its
          gradient is for.

        The result must keep the tensor's shape and dtype (an in-place op cannot broadcast or
        promote its target); otherwise the error comes and the tensor is left as it was.

        Inside a jax trace (``jtape.jit``), a tensor made outside it (captured by the step) or an
        argument of a ``jtape.jit`` step refuses too: the first would be left holding a tracer, and
        the compiled step could not change the caller's tensor as the eager step does. A step's
        state (its Parameters and Buffers) and the tensors it makes change in place as eagerly."""
        old = self._raw
        if STEP_INPUTS.ids and id(old) in STEP_INPUTS.ids:
            raise ArgumentError(f"{sym}=: the tensor changed in place (shape {tuple(old.shape)}) is an argument of "
                                f"the jtape.jit step; the compiled step cannot change the caller's tensor as an eager "
                                f"step would. Expected t = t {sym} x inside the step (or the tensor in state=[...])")
        tape = getattr(self.backend, "tape", None)
        recording = tape is not None and tape().is_recording()
        if recording and old.requires_grad and old.dtype.floating and not _made_by_an_op(old, tape()):
            raise TapeError(f"{sym}=: a leaf tensor that requires a gradient (shape {tuple(old.shape)}) cannot change "
                            f"in place while the tape records; for an update write it inside "
                            f"`with jtape.no_grad():` (p -= lr * p.grad), for a new tensor write t = t {sym} x")
        new = op(self, other)._raw
        if isinstance(new.data, Tracer) and not isinstance(old.data, Tracer):
            raise ArgumentError(f"{sym}=: the tensor changed in place (shape {tuple(old.shape)}) was made outside this "
                                f"jax trace (a jtape.jit step captured it); it would be left holding a tracer. "
                                f"Expected it in the step's state=[...] (a Parameter or Buffer), or t = t {sym} x")
        if new.shape != old.shape:
            raise ShapeError(f"{sym}=: the result has shape {tuple(new.shape)}, the tensor changed in place has shape "
                             f"{tuple(old.shape)}; expected the same (write t = t {sym} x for a new tensor)")
        if new.dtype is not old.dtype:
            raise DTypeError(f"{sym}=: the result has dtype {new.dtype.value}, the tensor changed in place has dtype "
                             f"{old.dtype.value}; expected the same (write t = t {sym} x for a new tensor)")
        if not (recording and new.requires_grad and new.dtype.floating):     # not recorded: the same tensor, new values
            old.carry_state_to(new)
        self._raw = new
        return self

    def __iadd__(self, other: Any) -> "Tensor":
        return self._inplace("+", type(self).__add__, other)

    def __isub__(self, other: Any) -> "Tensor":
        return self._inplace("-", type(self).__sub__, other)

    def __imul__(self, other: Any) -> "Tensor":
        return self._inplace("*", type(self).__mul__, other)

    def __itruediv__(self, other: Any) -> "Tensor":
        return self._inplace("/", type(self).__truediv__, other)

    def __ipow__(self, other: Any) -> "Tensor":
        return self._inplace("**", type(self).__pow__, other)

    def __imatmul__(self, other: Any) -> "Tensor":
        return self._inplace("@", type(self).__matmul__, other)

    def __iand__(self, other: Any) -> "Tensor":
        return self._inplace("&", type(self).__and__, other)

    def __ior__(self, other: Any) -> "Tensor":
        return self._inplace("|", type(self).__or__, other)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy's hook: ``ndarray + t`` runs ``t.__radd__(ndarray)`` on the tape; ``np.exp(t)``
        raises a TypeError naming ``t.exp()`` (see ``operands.array_ufunc``)."""
        return array_ufunc(ufunc, method, inputs, kwargs, TensorOperators, type(self))

    # -- methods whose Tensor spelling differs from the backend op -----------------------------------
    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return self._new(self.backend.reshape(self._raw, shape))

    def expand(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return self._new(self.backend.expand(self._raw, shape))

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def cat(self, others: Sequence["Tensor"], dim: int = 0) -> "Tensor":
        """This tensor joined with ``others`` along ``dim``."""
        return self._new(self.backend.cat([self._raw] + [self._lift(o, "cat") for o in others], dim))

    def where(self, condition: "Tensor", other: Any) -> "Tensor":
        """``condition ? self : other`` elementwise (torch's ``x.where(cond, y)``)."""
        return self._new(self.backend.where(self._lift(condition, "where"), self._raw, self._lift(other, "where")))

    def astype(self, dtype: DataType | str) -> "Tensor":
        return self.cast(dtype)

    # -- comparisons and logic as operators --------------------------------------------------------
    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._binary("equal", other)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._binary("not_equal", other)

    def __gt__(self, other: Any) -> "Tensor":
        return self._binary("greater", other)

    def __ge__(self, other: Any) -> "Tensor":
        return self._binary("greater_equal", other)

    def __lt__(self, other: Any) -> "Tensor":
        return self._binary("lower", other)

    def __le__(self, other: Any) -> "Tensor":
        return self._binary("lower_equal", other)

    def __and__(self, other: Any) -> "Tensor":
        return self._binary("and_", other)

    def __or__(self, other: Any) -> "Tensor":
        return self._binary("or_", other)

    __rand__, __ror__ = __and__, __or__

    def __invert__(self) -> "Tensor":
        return self.not_()


class _StepInputs(threading.local):
    ids: frozenset = frozenset()     # a class default: a new thread starts with none


# id() of the RawTensors of the arguments of the jtape.jit step being traced on this thread
# (``jtape.autodiff.compiled`` sets it while tracing): an in-place op refuses them.
STEP_INPUTS = _StepInputs()


def _made_by_an_op(raw: RawTensor, tape: Any) -> bool:
    """Was ``raw`` made by an op on ``tape`` (not a leaf)? A pending value that wants a gradient
    was recorded (deferred mode); otherwise the tape is searched, newest first (only an in-place
    op on a tensor that wants a gradient asks)."""
    if raw.data.__class__ is Pending:
        return True
    return any(op.output() is raw for op in reversed(tape.operations()))
