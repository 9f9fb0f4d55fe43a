"""Gradients of gradients: ``create_graph=True`` records the backward pass on the tape.

Every backward rule is written with Backend ops. An ordinary walk runs the rules on the inner
backend, so the backward pass leaves no trace. With ``create_graph=True`` (on
``GradientTape.backward`` / ``walk`` / ``gradient``, ``autodiff.backward``, ``autodiff.gradient``
and ``Tensor.backward``) the walk runs each rule on the AutodiffBackend itself, with recording
switched on: every backend call inside a rule — and every ``add`` that sums fan-in — is recorded
like a forward op. The gradients it returns are then ordinary results of recorded ops and can be
differentiated again::

    backend = autodiff.new(JaxBackend())
    x = tensor.from_numpy(np.array([1.0, 2.0]), backend)
    y = (x * x * x).sum()
    (g,) = backend.tape().gradient(y, [x], create_graph=True)      # g = 3x², recorded
    (h,) = backend.tape().gradient((g * v).sum(), [x])              # Hessian·v = 6x·v

The walk iterates over a snapshot of the tape, so the ops it appends are not walked in the same
pass; the tape grows by the recorded backward pass (clear it when done). Rules run op by op here
(not as JaxBackend's fused kernels), since each backend call must be recorded. Recording is
switched on for the duration of the walk even if the tape was stopped or the thread is inside
``no_grad`` (an explicit ``create_graph=True`` asks for it); the tape's recording flag is shared
by threads, so do not record other work on the same tape from another thread meanwhile.

Which ops support second (and higher) order. A rule is differentiable when every backend call in
it is recorded. The arithmetic and shape ops are recorded anyway; the *gradient kernels* that some
rules call are recorded as operations of their own (``jtape.ops.kernels``), each with a rule
that is again a Backend op (each kernel is linear in its gradient argument, so its rule is its
transpose). Every op is verified against ``jax.jvp(jax.grad(f))`` over the op spec table in
``tests/autodiff/test_higher_order.py``:

==================================  ==============  ===========================================
op (Operation)                      second order    how the backward is differentiated
==================================  ==============  ===========================================
add sub mul div, the scalar ops     yes             mul/div/sum_dim of recorded tensors
exp log sqrt rsqrt sin cos          yes             rules use out / x, both on the tape
relu                                yes (zero)      where(x > 0, g, 0): linear in g
sigmoid tanh silu softmax           yes             products of out (and sigmoid(x))
matmul                              yes             matmul + transpose
conv2d                              yes             Conv2DInputGradOp, Conv2DKernelGradOp:
                                                    rules are conv2d and the other kernel
max_pool2d                          yes             MaxPool2DGradOp: rule gathers at the
                                                    window's arg-max (zero for the input)
cross_entropy                       yes (logits)    softmax(z); the one-hot is a constant
sum sum_dim mean_dim                yes             expand / unsqueeze
reshape transpose squeeze           yes             reshape / transpose / sum_dim
unsqueeze expand
cat                                 yes             NarrowOp: rule is cat with zeros
chunk                               yes             cat with zeros
gather                              yes (x)         ScatterAddOp: rule is gather
where                               yes (x, y)      where with a zero
cast (float to float)               yes             cast back
gradient kernels (conv2d_input_     yes, any order  each one's rule uses conv2d, the other
grad, conv2d_kernel_grad,                           kernels, gather, cat: all recorded
max_pool2d_grad, narrow,
scatter_add)
a user's Operation                  if its rule     it must use only the Backend ops of the
                                    is              ``backend`` argument; one that cannot sets
                                                    ``differentiable_backward = False`` and a
                                                    second-order walk reaching it raises
==================================  ==============  ===========================================
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..tensor.errors import TapeError
from ..tensor.raw import RawTensor
from . import grad_mode


def recorded_walk(tape: Any, seeds: dict[RawTensor, RawTensor], backend: Any, keep: Any = None
                  ) -> dict[RawTensor, RawTensor]:
    """``tape.walk(seeds, backend, create_graph=True)``: the walk with its rules recorded on
    ``backend`` (an AutodiffBackend)."""
    if not hasattr(backend, "tape") or not hasattr(backend, "inner"):
        raise TapeError(f"backward(create_graph=True): got backend {backend!r}, which records no tape; expected "
                        f"the AutodiffBackend the forward pass ran on (the backward pass is recorded there)")
    with recording(backend.tape()):
        return tape.walk(seeds, RecordingRules(backend), keep=keep)


class RecordingRules:
    """What the walk runs the rules on when ``create_graph``: the AutodiffBackend itself.

    The walk runs rules on ``backend.inner()`` and calls ``run_rule``; here ``inner()`` is this
    object, ``run_rule`` applies the op's rule on the recording AutodiffBackend, and every other
    attribute (``add`` for fan-in, ``full``, ...) is the AutodiffBackend's — so all of it is recorded.
    """

    def __init__(self, backend: Any):
        self.backend = backend

    def inner(self) -> "RecordingRules":
        return self

    def run_rule(self, op: Any, g: RawTensor, wanted: tuple | None = None) -> list:
        if not getattr(op, "differentiable_backward", True):
            name = getattr(op, "name", type(op).__name__)
            raise TapeError(f"{type(op).__name__}: its backward is not differentiable; second-order gradients "
                            f"through {name} are not supported (create_graph=True reached it)")
        return op.backward(g, self.backend)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"RecordingRules({self.backend!r})"


@contextmanager
def recording(tape: Any) -> Iterator[None]:
    """Record on ``tape`` for the duration, even if it was stopped or this thread is in no_grad."""
    was_recording = tape._recording
    depth = getattr(grad_mode._state, "depth", 0)
    tape.start_recording()
    grad_mode._state.depth = 0
    try:
        yield
    finally:
        grad_mode._state.depth = depth
        if not was_recording:
            tape.stop_recording()
