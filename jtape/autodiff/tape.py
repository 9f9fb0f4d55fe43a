"""``GradientTape``: the list of recorded operations, and the reverse walk over it."""

from __future__ import annotations

import gc
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from jax.core import Tracer

from ..ops.base import Operation
from ..tensor.errors import TapeError
from ..tensor.raw import RawTensor, check_gradient
from . import views
from .anomaly import SWITCHES, on_record
from .fusion import apply_rule
from .grad_mode import GRAD, enable_grad
from .observers import observe


class GradientTape:
    """Records operations during the forward pass; ``backward`` walks them in reverse.

    The tape is a plain list in recording order. An op can only read tensors that already exist,
    so every op comes after the ops that produced its inputs: the reversed list is already a
    topological order, and the walk needs no graph search and no recursion.
    """

    def __init__(self, *, traced: bool | None = None) -> None:
        self._ops: list[Operation] = []
        self._recording = False
        self._released = 0          # how many ops the last release dropped (views explain an empty tape)
        # A tape made inside a jax trace (jtape.jit's private tapes, a backend created inside a
        # jax.jit-ed function) lives with that trace and may hold its tracers; a tape made outside
        # never holds any (see ``add``).
        self._traced = inside_jax_trace() if traced is None else traced

    # -- recording ---------------------------------------------------------------------------
    def start_recording(self) -> None:
        self._recording = True

    def stop_recording(self) -> None:
        self._recording = False

    def is_recording(self) -> bool:
        """True when recording is on and the current thread is not inside ``no_grad``."""
        return self._recording and not GRAD.depth

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record for the duration, even if the tape was stopped or this thread is inside
        ``no_grad`` (a backward pass with ``create_graph=True`` is recorded so)."""
        was = self._recording
        self._recording = True
        try:
            with enable_grad():
                yield
        finally:
            self._recording = was

    def record(self, op: Operation) -> None:
        """Append ``op`` if the tape is recording (and the thread is not in ``no_grad``); see ``add``."""
        out = op.output()
        if self._recording and not GRAD.depth and (self._traced or not isinstance(out.data, Tracer)):
            if self._traced:
                _no_captured_tensors(op.inputs())
            if SWITCHES.on:  # capture_source / detect_anomaly (off: this check is all it costs)
                on_record(op)
            self._ops.append(op)  # one atomic list append: threads may record on one tape
        else:
            out.requires_grad = False

    def add(self, operation: type, out: RawTensor, inputs: list, statics: dict) -> None:
        """Record ``operation(out, *inputs, **statics)`` if the tape records now; otherwise ``out``
        is a constant (``requires_grad`` False): under ``no_grad``, while stopped, and — on a tape
        made outside a jax trace — when ``out`` holds a jax tracer (jax.jit / jax.vmap / jax.grad
        of jtape code): such ops are not kept, so no tracer is ever left on this tape. A tape made
        inside a trace refuses a tensor captured from outside it that wants a gradient
        (``_no_captured_tensors``)."""
        if self._recording and not GRAD.depth and (self._traced or not isinstance(out.data, Tracer)):
            if self._traced:
                _no_captured_tensors(inputs)
            op = operation(out, *inputs, **statics)
            if SWITCHES.on:
                on_record(op)
            self._ops.append(op)
        else:
            out.requires_grad = False

    def clear(self) -> list[Operation]:
        """Drop every recorded op (and with them the tensors they saved). Recording state stays.
        Returns the dropped ops."""
        dropped, self._ops = self._ops, []
        return dropped

    def release(self) -> None:
        """``clear()``, marking every output of the dropped ops as released: its history is gone,
        and a later walk that reaches it raises instead of silently stopping there."""
        dropped = self.clear()
        for op in dropped:
            op.output().released = True
        self._released = len(dropped)

    def released_ops(self) -> int:
        """How many ops the last ``release`` (a ``Tensor.backward``) dropped, if nothing was recorded since."""
        return self._released if not self._ops else 0

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
    def walk(self, seeds: dict[RawTensor, RawTensor], backend: Any, *, keep: Iterable[RawTensor] | None = None,
             sources: Iterable[RawTensor] | None = None, create_graph: bool = False, trace: Any = None
             ) -> dict[RawTensor, RawTensor]:
        """The reverse walk from seeded outputs (``{output: ∂ℒ/∂output}``): for each op, newest
        first, if a gradient reached its output, apply its rule and add the results into its
        inputs' gradients (a tensor used k times receives k contributions, summed here — the
        multivariate chain rule). Returns the map tensor -> gradient.

        The rules run on ``backend``'s inner backend, or — ``create_graph`` — on the recording
        AutodiffBackend itself, so the backward pass is recorded too. With ``keep``, gradients
        of other tensors are dropped once consumed. ``sources`` are the tensors whose gradients
        are wanted (None: all). ``trace``, hooks and anomaly mode are observers (``observers.py``).
        """
        flush = getattr(backend, "flush", None)
        if flush is not None:                 # deferred mode: the pending forward ops run first
            flush()
        rules = backend if create_graph else getattr(backend, "inner", lambda: backend)()
        ops = list(self._ops)
        _check_seeds(ops, seeds)
        watch = observe(ops, seeds, rules, trace)
        needed = None if sources is None else _leading_to(ops, sources)    # prune: only what reaches sources
        grads = dict(seeds)
        with _walking(backend if create_graph else None):
            for op in reversed(ops):
                out = op.output()
                g = grads.get(out) if keep is None or out in keep else grads.pop(out, None)
                if g is None or (needed is not None and out not in needed):
                    continue
                if watch:
                    g = watch.arrive(op, g, grads)
                inputs = op.inputs()
                wanted = tuple(x.requires_grad and (needed is None or x in needed) for x in inputs)
                in_grads = apply_rule(op, g, rules, wanted, create_graph)
                if len(in_grads) != len(inputs):
                    raise TapeError(f"{type(op).__name__}.backward returned {len(in_grads)} gradients for "
                                    f"{len(inputs)} inputs; expected one (or None) per input")
                if watch:
                    watch.sent(op, in_grads, wanted, grads)
                for i, (x, gx) in enumerate(zip(inputs, in_grads)):
                    if gx is not None and wanted[i]:
                        check_gradient(f"{type(op).__name__} input {i}", gx, x)
                        prev = grads.get(x)
                        grads[x] = gx if prev is None else rules.add(prev, gx)
            if watch:
                watch.finish(grads)
        _check_released(grads, sources)
        return grads

    def backward(self, output_grad: RawTensor, backend: Any, output: RawTensor | None = None, *,
                 create_graph: bool = False, trace: Any = None) -> dict[RawTensor, RawTensor]:
        """Gradients of every tensor on the tape, given ``output_grad = ∂ℒ/∂output`` (Born's API).

        ``output`` is the tensor being differentiated; without it, the output of the last
        recorded op (as Born does). See ``walk``."""
        if not self._ops:
            raise TapeError("backward: the tape is empty — nothing was recorded (was recording on, "
                            "and the ops run on the AutodiffBackend outside no_grad?)")
        if output is None:
            output = self._ops[-1].output()
        return self.walk({output: output_grad}, backend, create_graph=create_graph, trace=trace)

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "none", *, backend: Any = None, create_graph: bool = False) -> Any:
        """TF-style gradients of ``target`` for ``sources``, in the structure of ``sources``
        (``backend`` defaults to the target's). See ``jtape.autodiff.engine.gradient``."""
        from .engine import gradient
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
        ``[B, *target.shape[1:], *source.shape[1:]]`` (TF's). See ``jtape.autodiff.jacobian``."""
        from .jacobian import batch_jacobian
        return batch_jacobian(self, target, source, unconnected_gradients, backend=backend)

    # -- views (jtape.autodiff.views) -----------------------------------------------------------
    def summary(self, max_rows: int | None = 40) -> str:
        """The tape as a table (see ``views.summary``)."""
        return views.summary(self, max_rows)

    def __str__(self) -> str:
        return views.summary(self)

    def _repr_html_(self, max_rows: int | None = 40) -> str:
        return views.html_table(self, max_rows)

    def to_dot(self, grads: Mapping[Any, Any] | None = None, *, name: str = "tape", values: int = 8) -> str:
        """The recorded graph as Graphviz DOT text, with values and gradients of small tensors (see
        ``views.to_dot``)."""
        return views.to_dot(self, grads, name=name, values=values)

    def draw(self, grads: Mapping[Any, Any] | None = None, *, values: int = 8) -> views.Drawing:
        """The graph as a ``Drawing``, which a notebook shows inline (SVG with Graphviz)."""
        return views.Drawing(views.to_dot(self, grads, values=values))

    def render(self, path: str | Path, grads: Mapping[Any, Any] | None = None, *, format: str | None = None) -> Path:
        """Draw the graph into ``path`` (SVG, PNG or PDF) with Graphviz's ``dot``."""
        return views.render_dot(views.to_dot(self, grads), path, format=format)


@contextmanager
def _walking(recording_backend: Any) -> Iterator[None]:
    """Python's cyclic GC would rescan every live object (a long tape holds many) each time it
    triggers: paused here, the walk stays linear in tape length (it creates no cycles). With
    ``create_graph`` the backend's tape records the rules' ops, even in no_grad."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with ExitStack() as stack:
            if recording_backend is not None:
                if not hasattr(recording_backend, "tape"):
                    raise TapeError(f"backward(create_graph=True): got backend {recording_backend!r}, which records "
                                    f"no tape; expected the AutodiffBackend the forward pass ran on")
                stack.enter_context(recording_backend.tape().recording())
            yield
    finally:
        if enabled:
            gc.enable()


_RELEASED = ("an earlier backward released its graph (cleared the tape), so its history is gone; expected "
             "retain_graph=True on that earlier backward, or .detach() to make it a new leaf on purpose")


def _leading_to(ops: list, sources: Iterable[RawTensor]) -> set:
    """The tensors whose gradient leads to a source: the sources and every result computed from one
    (one pass in recording order). A rule's gradient for any other input is never computed. A
    released tensor may lead anywhere (its history is gone), so it counts: the walk then reaches it
    and raises rather than answer without it."""
    needed = set(sources)
    for op in ops:
        if any(x in needed or x.released for x in op.inputs()):
            needed.add(op.output())
            needed.update(x for x in op.inputs() if x.released)
    return needed


def _check_seeds(ops: list, seeds: dict) -> None:
    for out in seeds:
        if not any(op.output() is out for op in reversed(ops)):
            if out.released:
                raise TapeError(f"backward: the tensor {out!r} was not produced by an op on this tape any more — "
                                f"{_RELEASED}")
            raise TapeError(f"backward: the tensor {out!r} was not produced by an op on this tape; "
                            f"expected a result of recorded ops (was it computed under no_grad, on "
                            f"another backend, or before the tape was cleared?)")
        check_gradient("backward (output_grad)", seeds[out], out)


def _check_released(grads: dict, sources: Iterable[RawTensor] | None) -> None:
    """A gradient that reached a released tensor would stop there: the result would be partial."""
    wanted = None if sources is None else set(sources)
    for x in grads:
        if x.released and (wanted is None or x not in wanted):
            raise TapeError(f"backward: the gradient reached {x!r}, whose history is gone — {_RELEASED}. Stopping "
                            f"there would return a partial gradient")


def _no_captured_tensors(inputs: Iterable[RawTensor]) -> None:
    """Inside a trace every value is a tracer, except a tensor made outside and captured by the traced
    function. One that wants a gradient cannot be right: its value would be frozen into the compiled
    program as a constant, and its ``.grad`` would receive a tracer that outlives the trace."""
    for x in inputs:
        if x.requires_grad and x.dtype.floating and not isinstance(x.data, Tracer):
            raise TapeError(f"jtape.jit: the step reads a tensor of shape {tuple(x.shape)} {x.dtype.value} that wants "
                            f"gradients but is not part of the step's state: it was made outside the step and "
                            f"captured, so its value would be frozen into the compiled program and its .grad would "
                            f"hold a tracer. Expected its Module, Optimizer or Parameter in jtape.jit(step, "
                            f"state=[...]), or an argument of the step, or a constant (.requires_grad_(False))")


def inside_jax_trace() -> bool:
    """Is a jax transformation (jit, vmap, grad, ...) tracing the calling code right now?"""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # a jax without this helper: a jit-staged op returns a tracer
        import jax.numpy as jnp
        return isinstance(jnp.zeros(()), Tracer)
    return not trace_state_clean()


def new_gradient_tape() -> GradientTape:
    """A new, empty tape (not recording until ``start_recording()``)."""
    return GradientTape()
