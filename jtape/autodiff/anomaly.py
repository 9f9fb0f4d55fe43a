"""Source capture and anomaly mode: two opt-in switches that watch ops as they are recorded.

* ``capture_source(True)`` — each recorded ``Operation`` remembers the line of *user* code that
  recorded it (``op.source``: file, line, function), so tables, drawings and errors can point at
  it. It walks the Python stack once per op, so it is off by default.
* ``detect_anomaly()`` — raise ``AnomalyError`` on the first NaN or Inf that an op produces, in the
  forward pass (checked as each op is recorded) and in the backward walk (checked as each rule
  returns), naming the op, its shapes and the line that recorded it. What an op only carries
  through is not its anomaly: an Inf that was already in an input (``where(mask, x, -inf)`` before
  a softmax, the standard masking pattern, whose gradient is finite) passes, and a NaN that was
  already in an input (a leaf holding NaN) is reported as entering the graph there, not as
  produced by the op. Checking needs the values, so every check is a host sync; anomaly mode
  captures source too.

Both switches belong to the calling thread (like ``no_grad``). Each works as a call and as a
context manager that restores the previous setting::

    autodiff.capture_source(True)          # on from here on, in this thread
    with autodiff.detect_anomaly():        # on inside the block only
        loss.backward()

When both are off the recording path pays one attribute check (``SWITCHES.on`` in
``GradientTape.record``) and nothing else: no stack walk, no host sync, ``op.source`` is None.

**Under ``jax.jit``** the values do not exist yet (RawTensors hold tracers), so anomaly mode
cannot check them: it raises a ``TapeError`` saying so instead of silently checking nothing.
Run the step eagerly under ``detect_anomaly()`` to find the op, or use JAX's own checker
(``jax.config.update("jax_debug_nans", True)``) for jitted code. Source capture works under jit.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..tensor.errors import JtapeError, TapeError
from ..tensor.raw import RawTensor

_JTAPE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(JtapeError, FloatingPointError):
    """An op produced NaN or Inf while ``detect_anomaly()`` was on."""


class SourceLocation(NamedTuple):
    """Where user code recorded an op: ``str()`` gives ``file:line``."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def short(self) -> str:
        """``file:line`` with the file relative to the working directory when it lies below it."""
        rel = os.path.relpath(self.file) if self.file.startswith(os.getcwd() + os.sep) else os.path.basename(self.file)
        return f"{rel}:{self.line}"

    def code(self) -> str:
        """The source line itself (empty when the file cannot be read)."""
        return linecache.getline(self.file, self.line).strip()

    def describe(self) -> str:
        """``file:line (in function): code`` for error messages."""
        code = self.code()
        where = f" (in {self.function})" if self.function != "<module>" else ""
        return f"{self}{where}" + (f": {code}" if code else "")


class _Switches(threading.local):
    """Per-thread switches; class attributes are each new thread's defaults."""

    source = False
    anomaly = False
    on = False  # source or anomaly: the one attribute the recording path checks


SWITCHES = _Switches()


def _set(source: bool | None = None, anomaly: bool | None = None) -> None:
    if source is not None:
        SWITCHES.source = source
    if anomaly is not None:
        SWITCHES.anomaly = anomaly
    SWITCHES.on = SWITCHES.source or SWITCHES.anomaly


class capture_source:
    """Record the user-code line of every op from now on (``capture_source(False)``: stop).

    Usable as a call (the setting stays) or as ``with capture_source():`` (restored on exit).
    Affects the calling thread only; costs one stack walk per recorded op while on.
    """

    def __init__(self, enabled: bool = True):
        self._previous = SWITCHES.source
        _set(source=bool(enabled))

    def __enter__(self) -> "capture_source":
        return self

    def __exit__(self, *exc: Any) -> None:
        _set(source=self._previous)


class detect_anomaly:
    """Raise ``AnomalyError`` on the first NaN/Inf produced in forward or backward.

    ``with detect_anomaly(): ...`` turns it on inside the block; ``detect_anomaly(False)`` turns
    it off. Calling tape-wise ops inside ``jax.jit`` while it is on raises a ``TapeError``
    (traced values cannot be checked). Affects the calling thread only.
    """

    def __init__(self, enabled: bool = True):
        self._previous = SWITCHES.anomaly
        _set(anomaly=bool(enabled))

    def __enter__(self) -> "detect_anomaly":
        return self

    def __exit__(self, *exc: Any) -> None:
        _set(anomaly=self._previous)


def is_anomaly_enabled() -> bool:
    """True while ``detect_anomaly`` is on in this thread."""
    return SWITCHES.anomaly


def is_source_captured() -> bool:
    """True while ops recorded in this thread remember their source line (anomaly mode included)."""
    return SWITCHES.on


def user_frame() -> SourceLocation | None:
    """The innermost stack frame outside the jtape package: the user's line."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_JTAPE_DIR):
        f = f.f_back
    if f is None:
        return None
    return SourceLocation(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def on_record(op: Any) -> None:
    """Called by ``GradientTape.record`` only while a switch is on: capture, then check."""
    op.source = user_frame()
    if SWITCHES.anomaly:
        bad = nonfinite(op.output(), "forward", inf=True)
        if bad is None:
            return
        for k, x in enumerate(op.inputs()):
            had = nonfinite(x, "forward", inf=True)
            if had == "NaN" or (had and bad == "Inf"):
                if bad == "Inf":
                    return    # an Inf carried through (where(mask, x, -inf), x + inf): not this op's doing
                raise AnomalyError(f"detect_anomaly: input {k} of {type(op).__name__} ({shape_dtype(x)}) already "
                                   f"holds NaN — the NaN entered the graph there (a leaf, or a value computed off "
                                   f"the tape), not in this op — {describe_op(op)}")
        raise AnomalyError(f"detect_anomaly: {type(op).__name__} produced {bad} in the forward pass — "
                           f"{describe_op(op)}")


@jax.jit
def _nan_inf(x):
    return jnp.isnan(x).any(), jnp.isinf(x).any()


def nonfinite(x: RawTensor, where: str, inf: bool = False) -> str | None:
    """'NaN' when ``x`` holds one (with ``inf``, also 'Inf' for ±inf), else None. A host sync;
    raises under jax tracing."""
    if not x.dtype.is_float:
        return None
    data = x.data
    if isinstance(data, jax.core.Tracer):
        raise TapeError(f"detect_anomaly: cannot check values in the {where} pass while jax traces them "
                        f"(inside jax.jit or jtape.jit the values do not exist yet); run the step without "
                        f"jit under detect_anomaly() to find the op, or use "
                        f"jax.config.update('jax_debug_nans', True) for jitted code")
    if isinstance(data, jax.Array):
        has_nan, has_inf = (bool(v) for v in _nan_inf(data))
    else:
        arr = np.asarray(data)
        has_nan, has_inf = bool(np.isnan(arr).any()), bool(np.isinf(arr).any())
    return "NaN" if has_nan else "Inf" if has_inf and inf else None


def shape_dtype(x: RawTensor) -> str:
    return f"{tuple(x.shape)} {x.dtype.value}"


def describe_op(op: Any) -> str:
    """``inputs (2,) float32, (2,) float32 -> output (2,) float32; recorded at file:line: code``."""
    ins = ", ".join(shape_dtype(x) for x in op.inputs())
    src = getattr(op, "source", None)
    where = (f"recorded at {src.describe()}" if src is not None else "source line unknown (run the forward pass "
             "under detect_anomaly() or capture_source() to record it)")
    return f"inputs {ins} -> output {shape_dtype(op.output())}; {where}"
