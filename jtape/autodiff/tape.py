"""``GradientTape``: the list of recorded operations, and the reverse walk over it."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import numpy as np

from ..ops.base import Operation
from ..tensor.errors import BackendError, DTypeError, ShapeError, TapeError
from ..tensor.raw import RawTensor
from .anomaly import SWITCHES, on_record
from .grad_mode import is_grad_enabled
from .views import TapeViews
from .watch import tracing, watch_walk


class GradientTape(TapeViews):  # TapeViews: print(tape), summary(), to_dot(), render()
    """Records operations during the forward pass; ``backward`` walks them in reverse.

    The tape is a plain list in recording order. An op can only read tensors that already exist,
    so every op comes after the ops that produced its inputs: the reversed list is already a
    topological order, and the walk needs no graph search and no recursion.
    """

    def __init__(self) -> None:
        self._ops: list[Operation] = []
        self._recording = False
        self._lock = threading.Lock()

    # -- recording ---------------------------------------------------------------------------
    def start_recording(self) -> None:
        self._recording = True

    def stop_recording(self) -> None:
        self._recording = False

    def is_recording(self) -> bool:
        """True when recording is on and the current thread is not inside ``no_grad``."""
        return self._recording and is_grad_enabled()

    def record(self, op: Operation) -> None:
        """Append ``op`` if the tape is recording (and the thread is not in ``no_grad``)."""
        if self._recording and is_grad_enabled():
            if SWITCHES.on:  # capture_source / detect_anomaly (off: this check is all it costs)
                on_record(op)
            with self._lock:
                self._ops.append(op)

    def clear(self) -> list[Operation]:
        """Drop every recorded op (and with them the tensors they saved). Recording state stays.
        Returns the dropped ops (``Tensor.backward`` marks their outputs as released)."""
        with self._lock:
            dropped, self._ops = self._ops, []
        return dropped

    def num_ops(self) -> int:
        return len(self._ops)

    def operations(self) -> list[Operation]:
        """A copy of the recorded ops, in recording order."""
        return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def __repr__(self) -> str:
        state = "recording" if self._recording else "stopped"
        return f"GradientTape({len(self._ops)} ops, {state})"

    # -- the reverse walk ----------------------------------------------------------------------
    def backward(self, output_grad: RawTensor, backend: Any, output: RawTensor | None = None, *,
                 create_graph: bool = False, trace: Any = None) -> dict[RawTensor, RawTensor]:
        """Gradients of every tensor on the tape, given ``output_grad = ∂ℒ/∂output``.

        ``output`` is the tensor being differentiated; without it, the output of the last
        recorded op (as Born does). Returns a map RawTensor -> ∂ℒ/∂tensor for every tensor the
        gradient reached, the output included. The rules run on ``backend`` (its inner backend
        if it is an AutodiffBackend, so the backward pass is not itself recorded) — unless
        ``create_graph``, which records it so the gradients can be differentiated again.
        ``trace`` (e.g. ``print``) is called with each step of the walk (see ``jtape.autodiff.watch``).
        """
        ops = self._ops
        if not ops:
            raise TapeError("backward: the tape is empty — nothing was recorded (was recording on, "
                            "and the ops run on the AutodiffBackend outside no_grad?)")
        if output is None:
            output = ops[-1].output()
        return self.walk({output: output_grad}, backend, create_graph=create_graph, trace=trace)

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "none", *, backend: Any = None, create_graph: bool = False) -> Any:
        """TF-style gradients of ``target`` for ``sources``, in the structure of ``sources``.

        ``backend`` defaults to the target's (for Tensor targets). See ``jtape.autodiff.engine.gradient``.
        """
        from .engine import gradient
        if backend is None:
            first = target[0] if isinstance(target, (list, tuple)) else target
            backend = getattr(first, "backend", None)
            if backend is None:
                raise TapeError("gradient: targets are RawTensors; pass backend= to run the rules on")
        return gradient(self, backend, target, sources, output_gradients, unconnected_gradients,
                        create_graph=create_graph)

    def jacobian(self, target: Any, source: Any, unconnected_gradients: str = "none", *, backend: Any = None) -> Any:
        """∂target/∂source with shape ``target.shape + source.shape`` (TF's ``jacobian``); ``source``
        may be a nest. See ``jtape.autodiff.jacobian``."""
        from .jacobian import jacobian
        return jacobian(self, target, source, unconnected_gradients, backend=backend)

    def batch_jacobian(self, target: Any, source: Any, unconnected_gradients: str = "none", *,
                       backend: Any = None) -> Any:
        """Per-row Jacobians of ``target [B, ...]`` for ``source [B, ...]``, shape
        ``[B, *target.shape[1:], *source.shape[1:]]`` (TF's ``batch_jacobian``). See ``jtape.autodiff.jacobian``."""
        from .jacobian import batch_jacobian
        return batch_jacobian(self, target, source, unconnected_gradients, backend=backend)

    def walk(self, seeds: dict[RawTensor, RawTensor], backend: Any, *, keep: Iterable[RawTensor] | None = None,
             create_graph: bool = False, trace: Any = None) -> dict[RawTensor, RawTensor]:
        """The reverse walk from several seeded outputs (``{output: ∂ℒ/∂output}``).

        For each op, newest first: if a gradient reached its output, apply its rule and add the
        results into its inputs' gradients (a tensor used k times receives k contributions, summed
        here — the multivariate chain rule). With ``keep``, gradients of other tensors are dropped
        once their op has consumed them, so intermediate gradients do not pile up in memory.
        With ``create_graph``, the rules run on ``backend`` itself (an AutodiffBackend, recording),
        so the backward pass is recorded too (see ``jtape.autodiff.higher``). ``trace``, tensor
        hooks and anomaly mode are served by a watcher (``jtape.autodiff.watch``), None when all are off.
        """
        if create_graph:
            from .higher import recorded_walk
            with tracing(trace):  # recorded_walk walks again (below); the trace goes with it
                return recorded_walk(self, seeds, backend, keep)
        rules = getattr(backend, "inner", lambda: backend)()
        ops = list(self._ops)
        produced = {op.output() for op in ops}
        for out, g in seeds.items():
            if out not in produced:
                raise TapeError(f"backward: the tensor {out!r} was not produced by an op on this tape; "
                                f"expected a result of recorded ops (was it computed under no_grad, on "
                                f"another backend, or was the tape cleared by an earlier backward?)")
            _check_grad("backward (output_grad)", None, g, out)
        # Python's cyclic GC would rescan every live object (a long tape holds many) each time
        # it triggers: paused here, the walk stays linear in tape length; it creates no cycles.
        with _gc_paused():
            grads = dict(seeds)
            keep_set = None if keep is None else set(keep)
            watch = watch_walk(ops, seeds, rules, trace)
            for op in reversed(ops):
                out = op.output()
                g = grads.get(out) if keep_set is None or out in keep_set else grads.pop(out, None)
                if g is None:
                    continue
                if watch:
                    g = watch.arrive(op, g, grads)
                inputs = op.inputs()
                wanted = tuple(x.requires_grad for x in inputs)
                in_grads = rules.run_rule(op, g, wanted) if hasattr(rules, "run_rule") else op.backward(g, rules)
                if len(in_grads) != len(inputs):
                    raise TapeError(f"{type(op).__name__}.backward returned {len(in_grads)} gradients for "
                                    f"{len(inputs)} inputs; expected one (or None) per input")
                if watch:
                    watch.sent(op, in_grads, wanted, grads)
                for i, (x, gx) in enumerate(zip(inputs, in_grads)):
                    if gx is None or not wanted[i]:
                        continue
                    _check_grad(type(op).__name__, i, gx, x)
                    prev = grads.get(x)
                    grads[x] = gx if prev is None else rules.add(prev, gx)
            if watch:
                watch.finish(grads)
            return grads


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_grad(op: str, index: int | None, g: Any, x: RawTensor) -> None:
    """Every gradient must have exactly its tensor's shape and dtype."""
    where = f"{op} input {index}" if index is not None else op
    if not isinstance(g, RawTensor):
        raise TapeError(f"{where}: got a gradient of type {type(g).__name__}; expected a RawTensor or None")
    if tuple(g.shape) != tuple(x.shape):
        raise ShapeError(f"{where}: got a gradient of shape {tuple(g.shape)}; expected the input's shape {tuple(x.shape)}")
    if g.dtype is not x.dtype:
        raise DTypeError(f"{where}: got a gradient of dtype {g.dtype.value}; expected the input's dtype {x.dtype.value}")
    if g.device is not x.device or (type(g.data) is np.ndarray) is not (type(x.data) is np.ndarray):
        raise BackendError(f"{where}: got a gradient holding {type(g.data).__name__} on {g.device.value}; expected one "
                           f"from the input's backend ({type(x.data).__name__} on {x.device.value})")


def new_gradient_tape() -> GradientTape:
    """A new, empty tape (not recording until ``start_recording()``)."""
    return GradientTape()
