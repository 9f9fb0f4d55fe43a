"""Every gradient entry point x every way its graph can be missing: a clear ``TapeError`` (one
wording per cause), never a partial, None or zero gradient.

Entry points: ``Tensor.backward``, ``autodiff.backward``, ``GradientTape.backward``,
``GradientTape.gradient`` and ``autodiff.gradient`` (both ``unconnected_gradients`` modes),
``GradientTape.jacobian``, ``GradientTape.batch_jacobian``, and the ``create_graph=True``
variants. Causes:

* released — the target reads a tensor whose producing ops an earlier ``Tensor.backward``
  released (``h = x * x; h.sum().backward(); z = (h * 3).sum()``);
* foreign target — the target was recorded on another backend's tape;
* foreign source — a source lives on another backend (the gradient/jacobian entry points);
* empty tape — the ops that produced the target were cleared from the tape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from jtape import autodiff, tensor
from jtape.tensor import BackendError, TapeError

from ..conftest import make_inner

# The wording family of each cause (a regex every entry point's message must match).
WORDING = {
    "released": r"earlier backward",
    "foreign target": r"not produced by an op on this tape",
    "foreign source": r"(?i)another backend|not on this tape|this tape's backend",
    "empty tape": r"tape is empty|nothing (was )?recorded|not produced by an op on this tape",
}
ERRORS = {"foreign source": (TapeError, BackendError)}


@dataclass
class Scene:
    backend: Any     # the backend whose entry point is called
    z: Any           # a scalar target
    zb: Any          # a [2, 3] target (batch_jacobian)
    x: Any           # the source


def _x(backend):
    return tensor.from_numpy(np.arange(1.0, 7.0).reshape(2, 3), backend)


def _released(inner_name: str) -> Scene:
    b = autodiff.new(make_inner(inner_name))
    x = _x(b)
    h = x * x
    h.sum().backward()                 # clears the tape: h's history is gone
    zb = h * 3
    return Scene(b, zb.sum(), zb, x)


def _foreign_target(inner_name: str) -> Scene:
    mine, other = autodiff.new(make_inner(inner_name)), autodiff.new(make_inner(inner_name))
    _x(mine).sum()                     # mine's tape holds something, but not the target
    x = _x(other)
    zb = x * 3
    return Scene(mine, zb.sum(), zb, x)


def _foreign_source(inner_name: str) -> Scene:
    mine, other = autodiff.new(make_inner(inner_name)), autodiff.new(make_inner(inner_name))
    zb = _x(mine) * 3
    return Scene(mine, zb.sum(), zb, _x(other))


def _empty_tape(inner_name: str) -> Scene:
    b = autodiff.new(make_inner(inner_name))
    x = _x(b)
    zb = x * 3
    z = zb.sum()
    b.tape().clear()
    return Scene(b, z, zb, x)


SCENES: dict[str, Callable[[str], Scene]] = {"released": _released, "foreign target": _foreign_target,
                                             "foreign source": _foreign_source, "empty tape": _empty_tape}


def _on(s: Scene, t: Any) -> Any:
    """``t`` as a Tensor of the called backend (a foreign target is re-wrapped onto it)."""
    return t if t.backend is s.backend else tensor.Tensor(t.raw(), s.backend)


def _seed(s: Scene) -> Any:
    return s.backend.full((), 1.0, "float64")


def _gradient(mode: str, create_graph: bool = False) -> Callable[[Scene], Any]:
    def run(s: Scene) -> Any:
        return s.backend.tape().gradient(_on(s, s.z), [s.x], unconnected_gradients=mode, create_graph=create_graph)
    return run


# entry point -> (call, takes sources)
ENTRY_POINTS: dict[str, tuple[Callable[[Scene], Any], bool]] = {
    "Tensor.backward": (lambda s: _on(s, s.z).backward(), False),
    "Tensor.backward(create_graph)": (lambda s: _on(s, s.z).backward(create_graph=True), False),
    "autodiff.backward": (lambda s: autodiff.backward(_on(s, s.z), s.backend), False),
    "autodiff.backward(create_graph)": (lambda s: autodiff.backward(_on(s, s.z), s.backend, create_graph=True), False),
    "tape.backward": (lambda s: s.backend.tape().backward(_seed(s), s.backend, output=s.z.raw()), False),
    "tape.backward(create_graph)": (
        lambda s: s.backend.tape().backward(_seed(s), s.backend, output=s.z.raw(), create_graph=True), False),
    "tape.gradient(none)": (_gradient("none"), True),
    "tape.gradient(zero)": (_gradient("zero"), True),
    "tape.gradient(none, create_graph)": (_gradient("none", True), True),
    "tape.gradient(zero, create_graph)": (_gradient("zero", True), True),
    "autodiff.gradient(zero)": (
        lambda s: autodiff.gradient(s.backend.tape(), s.backend, _on(s, s.z), [s.x], unconnected_gradients="zero"), True),
    "tape.jacobian(none)": (lambda s: s.backend.tape().jacobian(_on(s, s.z), s.x), True),
    "tape.jacobian(zero)": (lambda s: s.backend.tape().jacobian(_on(s, s.z), s.x, unconnected_gradients="zero"), True),
    "tape.batch_jacobian(none)": (lambda s: s.backend.tape().batch_jacobian(_on(s, s.zb), s.x), True),
    "tape.batch_jacobian(zero)": (
        lambda s: s.backend.tape().batch_jacobian(_on(s, s.zb), s.x, unconnected_gradients="zero"), True),
}

CASES = [pytest.param(entry, scene, id=f"{entry}-{scene}")
         for entry, (_, takes_sources) in ENTRY_POINTS.items() for scene in SCENES
         if takes_sources or scene != "foreign source"]


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
@pytest.mark.parametrize("entry, scene", CASES)
def test_entry_point_raises_a_clear_tape_error(entry, scene, inner_name):
    s = SCENES[scene](inner_name)
    call, _ = ENTRY_POINTS[entry]
    grad_before = s.x.raw().grad
    with pytest.raises(ERRORS.get(scene, TapeError), match=WORDING[scene]):
        result = call(s)
        pytest.fail(f"{entry} returned {result!r} instead of raising")
    assert s.x.raw().grad is grad_before, "a failed backward changed the source's .grad"


@pytest.mark.parametrize("inner_name", ["jax", "numpy"])
@pytest.mark.parametrize("entry", [e for e, (_, takes) in ENTRY_POINTS.items() if takes])
def test_the_same_entry_points_work_on_a_live_graph(entry, inner_name):
    """The control: with the graph in place every entry point gives ∂(Σ 3·x)/∂x = 3."""
    b = autodiff.new(make_inner(inner_name))
    x = _x(b)
    zb = x * 3
    result = ENTRY_POINTS[entry][0](Scene(b, zb.sum(), zb, x))
    got = (result[0] if isinstance(result, list) else result).numpy()
    want = np.broadcast_to(3 * np.eye(3), (2, 3, 3)) if "batch_jacobian" in entry else np.full((2, 3), 3.0)
    np.testing.assert_array_equal(got, want)
