"""``AutodiffBackend``: the decorator that adds a gradient tape to any Backend.

Every op is forwarded to the inner backend; while the tape records, each differentiable op also
appends its ``Operation`` — built as ``OpClass(out, *inputs, **statics)`` from the op's own
check, so the record holds everything needed to run the op again. The recording ceremony is
written once, in ``_recorded`` below, and installed for every op of the registry. Ops with bool or
integer results (comparisons, logic, argmax, integer arithmetic) pass straight through: no
gradient can flow through them. A result that is not recorded — under ``no_grad``, while the tape
is stopped, or when no input wants a gradient — is a constant (``requires_grad`` False).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from ..tensor.backend import Backend
from ..tensor.defaults import default_backend
from ..tensor.dtype import DataType
from ..tensor.errors import BackendError
from ..tensor.raw import RawTensor
from ..tensor.registry import OpDef, subscribe
from ..tensor.shape import Device
from ..tensor.tensor import Tensor
from .anomaly import SWITCHES
from .deferred import Deferred
from .grad_mode import no_grad
from .programs import flat_inputs
from .tape import GradientTape, inside_jax_trace


class AutodiffBackend:
    """Wraps ``inner`` (any Backend) and records differentiable ops on its ``GradientTape``."""

    def __init__(self, inner: Backend, tape: GradientTape | None = None, *, defer: bool | None = None):
        self._inner = inner
        self._tape = GradientTape() if tape is None else tape
        # A KernelBackend runs an op it is handed already checked; any other Backend gets the call.
        self._execute = getattr(inner, "execute", None)
        if defer is None:     # deferred eager by default where a program can be compiled (deferred.py)
            defer = bool(getattr(inner, "jit_compatible", False)) and not inside_jax_trace()
        if defer and self._execute is None:
            raise BackendError(f"AutodiffBackend: defer=True needs a backend that runs checked ops "
                               f"(a KernelBackend); got {inner!r}")
        self._deferred = Deferred(inner) if defer else None

    def inner(self) -> Backend:
        """The wrapped backend (ops called on it directly are never recorded)."""
        return self._inner

    def name(self) -> str:
        return f"Autodiff({self._inner.name()})"

    def device(self) -> Device:
        return self._inner.device()

    def tape(self) -> GradientTape:
        return self._tape

    get_tape = tape  # Born's GetTape, for BackwardCapable

    @contextmanager
    def using_tape(self, tape: GradientTape) -> Iterator[GradientTape]:
        """Record on ``tape`` instead of this backend's own tape for the duration, running every op
        at once (``jtape.jit`` gives each trace a private tape so no tracer lands on the user's)."""
        self.flush()
        previous, self._tape = self._tape, tape
        deferred, self._deferred = self._deferred, None
        try:
            yield tape
        finally:
            self._tape, self._deferred = previous, deferred

    def is_deferred(self) -> bool:
        """Whether ops are recorded now and run later as one program (see ``jtape.autodiff.deferred``)."""
        return self._deferred is not None

    def flush(self) -> None:
        """Run the ops still pending (deferred mode); a no-op otherwise."""
        if self._deferred is not None:
            self._deferred.flush()

    def deferred_backward(self, seeds: dict, keep: Any, retain: bool) -> dict | None:
        """The pending ops and the tape's walk as one program (see ``Deferred.backward``: a seed of
        None is ones); None: walk op by op."""
        if self._deferred is None:
            return None
        return self._deferred.backward(self._tape, seeds, list(keep), retain)

    def deferred_update(self, fn: Callable, params: list, grads: list, state: Any, extra: dict) -> tuple | None:
        """An optimizer's update joined to the program a ``Tensor.backward`` left waiting (see
        ``Deferred.update``); None: run it apart."""
        if self._deferred is None:
            return None
        return self._deferred.update(fn, params, grads, state, extra)

    def no_grad(self, fn: Callable[[], Any] | None = None) -> Any:
        """``backend.no_grad(fn)`` runs fn without recording; ``with backend.no_grad():`` too.
        Only the calling thread stops recording."""
        return no_grad(fn)

    def tensor_backward(self, t: Any, grad: Any = None, **options: Any) -> None:
        """``Tensor.backward`` on this backend's tape (see ``jtape.autodiff.engine.tensor_backward``)."""
        _tensor_backward(t, grad, **options)

    def __repr__(self) -> str:
        return f"AutodiffBackend({self._inner!r}, {self._tape!r})"

    def __reduce__(self) -> tuple:
        """Pickled as (inner backend, deferred or not), never its tape; unpickled onto an equal
        backend: the process default when equal, else one per (inner, mode) (``restore``)."""
        return restore, (self._inner, self.is_deferred())

    def __deepcopy__(self, memo: dict) -> AutodiffBackend:
        return self          # a service, not state: copies of tensors and models share it

    def __copy__(self) -> AutodiffBackend:
        return self

    # -- creation and transfer pass through --------------------------------------------------
    def from_numpy(self, array: Any, dtype: DataType | str | None = None) -> RawTensor:
        return self._inner.from_numpy(array, dtype)

    def full(self, shape: Any, value: Any, dtype: DataType | str = "float32") -> RawTensor:
        return self._inner.full(shape, value, dtype)

    def to_numpy(self, x: RawTensor) -> Any:
        x.value()                # a pending value runs its ops first
        return self._inner.to_numpy(x)

    def accepts(self, op: str, tensors: Any) -> None:
        """The inner backend's check that ``tensors`` are its own (see ``KernelBackend.accepts``)."""
        accepts = getattr(self._inner, "accepts", None)
        if accepts is not None:
            accepts(op, tensors)

    def _run(self, op: OpDef, args: tuple, inputs: list, statics: dict, shape: Any, dtype: DataType) -> Any:
        if self._deferred is not None and not SWITCHES.on:
            out = self._deferred.defer(op, inputs, statics, shape, dtype)
            if out is not None:
                return out
        if self._execute is not None:
            return self._execute(op, inputs, statics, shape, dtype)
        return getattr(self._inner, op.name)(*args)


def _recorded(op: OpDef) -> Callable[..., RawTensor]:
    """The one recording wrapper: check the call, run it on the inner backend, then record
    ``op.operation(out, *inputs, **statics)`` — when the result is a float, some input wants a
    gradient and the tape records (``GradientTape.add``); otherwise the result is a constant.
    Written flat, because it is the path of every eager op."""
    bind, check, operation, name = op.bind, op.check, op.operation, op.name
    arity, flat = op.arity, bool(op._sequences)

    def method(self: AutodiffBackend, *args: Any, **kwargs: Any) -> RawTensor:
        if kwargs or len(args) != arity:
            args = bind(args, kwargs)
        inputs, statics, shape, dtype = check(args)
        out = None
        if self._deferred is not None and not SWITCHES.on:
            out = self._deferred.defer(op, inputs, statics, shape, dtype)
        if out is None:
            out = (self._execute(op, inputs, statics, shape, dtype) if self._execute is not None
                   else getattr(self._inner, name)(*args))
        if dtype.floating:
            if flat:
                inputs = flat_inputs(inputs)
            for x in inputs:
                if x.requires_grad and x.dtype.floating:
                    self._tape.add(operation, out, inputs, statics)
                    break
            else:
                out.requires_grad = False
        return out
    return op.describe(method, f"{name} on the inner backend, recorded as {operation.__name__} on the tape.")


def _forwarded(op: OpDef) -> Callable[..., Any]:
    """An op with no gradient (bool/int results): checked, run on the inner backend, not recorded."""
    bind, check = op.bind, op.check

    def method(self: AutodiffBackend, *args: Any, **kwargs: Any) -> Any:
        args = bind(args, kwargs)
        return self._run(op, args, *check(args))
    return op.describe(method, f"{op.name} on the inner backend (not recorded: no gradient flows through it).")


def _install(op: OpDef) -> None:
    if op.composite:
        method = op.composite_method()
    elif op.operation is not None:
        method = _recorded(op)
    else:
        method = _forwarded(op)
    setattr(AutodiffBackend, op.name, method)


subscribe(_install)


@runtime_checkable
class BackwardCapable(Backend, Protocol):
    """A Backend with a gradient tape (Born's BackwardCapable): AutodiffBackend is one.
    ``autodiff.backward`` accepts any backend that satisfies it."""

    def get_tape(self) -> GradientTape: ...


def new(backend: Backend, *, defer: bool | None = None) -> AutodiffBackend:
    """Wrap ``backend`` with autodiff; the new tape is already recording. ``defer`` (default: yes
    for a backend jax can compile, such as JaxBackend) records ops now and runs them as one
    compiled program at the next backward or value read (``jtape.autodiff.deferred``)."""
    ad = AutodiffBackend(backend, defer=defer)
    ad.tape().start_recording()
    return ad


def plain(backend: Any) -> Any:
    """The backend that runs rules and creates constants: an AutodiffBackend's inner backend,
    or ``backend`` itself."""
    inner = getattr(backend, "inner", None)
    return backend if inner is None else inner()


def index_checker(x: Any) -> Any:
    """The backend that checks the index ranges of ``x``'s array — a Tensor's plain inner backend,
    if it has ``index_range`` — or None (a RawTensor, or a backend without the check)."""
    backend = plain(x.backend) if isinstance(x, Tensor) else None
    return backend if hasattr(backend, "index_range") else None


def options_backend(backends: Any) -> Any:
    """The first of ``backends`` (as plain inner backends) that picks XLA options for its programs
    (``compiler_options``: JaxBackend), or None."""
    return next((plain(b) for b in backends if hasattr(plain(b), "compiler_options")), None)


_restored: dict[tuple[int, bool], AutodiffBackend] = {}
_restore_lock = threading.Lock()


def restore(inner: Backend, deferred: bool) -> AutodiffBackend:
    """Unpickle an AutodiffBackend: the process default if it wraps ``inner`` (already restored to
    this process's equal backend) in the same mode, else one recording backend per (inner, mode)."""
    default = default_backend()
    if isinstance(default, AutodiffBackend) and default.inner() is inner and default.is_deferred() == deferred:
        return default
    with _restore_lock:
        key = (id(inner), deferred)
        found = _restored.get(key)
        if found is None:
            found = _restored[key] = new(inner, defer=deferred)
        return found


# Imported last: the engine imports ``plain`` from here (an import inside ``tensor_backward`` cost
# every training step its lookup)
from .engine import tensor_backward as _tensor_backward  # noqa: E402
