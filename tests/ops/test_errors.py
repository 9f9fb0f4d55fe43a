"""Bad input: every error input of the spec table raises a jtape error (a ValueError/TypeError
subclass) naming the op and what it got, with the same message on every backend, before any
kernel runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from spec import SPECS, Err, OpSpec, np_dtype

from jtape import autodiff
from jtape.tensor import errors

from .support import BACKEND_NAMES, new_backend

ERROR_CASES = [pytest.param(spec, err, id=f"{spec.name}-{err.id}") for spec in SPECS for err in spec.errors]


def _tripwire(op, *args, **kwargs):
    raise AssertionError(f"the kernel of {op.name} ran although the arguments were invalid")


def armed(backend):
    """The backend with its kernel runner (``execute``, which every op ends in) replaced by a
    tripwire: validation must fail first."""
    backend.execute = _tripwire
    return backend


def _error_tensors(backend, spec: OpSpec, err: Err) -> list:
    dtypes = err.dtypes or [(spec.in_dtypes[i] if i < len(spec.in_dtypes) and spec.in_dtypes[i] else "float32")
                            for i in range(len(err.shapes))]
    return [backend.from_numpy(np.zeros(shape, np_dtype(dt))) for shape, dt in zip(err.shapes, dtypes)]


def _raise(spec: OpSpec, err: Err, where: str) -> str:
    """Run the bad call on ``where`` (a backend name, or 'autodiff' over NumpyBackend); return the message."""
    inner = new_backend("numpy" if where == "autodiff" else where)
    tensors = _error_tensors(inner, spec, err)
    backend = autodiff.new(armed(inner)) if where == "autodiff" else armed(inner)
    with pytest.raises(errors.JtapeError, match=re.escape(err.match)) as info:
        spec.run(backend, tensors, err.kwargs)
    e = info.value
    assert type(e) is getattr(errors, err.error), f"{where}: raised {type(e).__name__}, expected {err.error}: {e}"
    assert isinstance(e, (ValueError, TypeError))
    assert err.match in str(e), f"{where}: message {str(e)!r} does not contain {err.match!r}"
    if where == "autodiff":
        assert backend.tape().num_ops() == 0, "a failed op was recorded"
    return str(e)


@pytest.mark.parametrize("spec, err", ERROR_CASES)
def test_bad_input_raises_a_clear_error_before_any_kernel(spec: OpSpec, err: Err) -> None:
    messages = {where: _raise(spec, err, where) for where in BACKEND_NAMES + ("autodiff",)}
    assert len(set(messages.values())) == 1, f"the backends disagree: {messages}"


def test_error_messages_show_shapes_as_plain_tuples() -> None:
    for spec in SPECS:
        for err in spec.errors:
            backend = new_backend("numpy")
            with pytest.raises(errors.JtapeError, match=re.escape(err.match)) as info:
                spec.run(backend, _error_tensors(backend, spec, err), err.kwargs)
            assert "Shape((" not in str(info.value), str(info.value)


def test_every_op_has_error_inputs() -> None:
    assert [s.name for s in SPECS if not s.errors] == []


_NO_X64 = """
import numpy as np, jax
from jtape.backends import JaxBackend
from jtape.backends.numpy_backend import NumpyBackend
from jtape.tensor import DTypeError
assert not jax.config.jax_enable_x64
b = JaxBackend("cpu")
x = b.from_numpy(np.zeros(3, np.float32))
attempts = {
    "from_numpy": lambda: b.from_numpy(np.zeros(3), "float64"),
    "from_numpy_default": lambda: b.from_numpy(np.zeros(3)),
    "full": lambda: b.full((2,), 0, "float64"),
    "cast": lambda: b.cast(x, "float64"),
    "int64": lambda: b.from_numpy(np.zeros(3, np.int64)),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(name, "NO ERROR")
    except DTypeError as e:
        print(name, "DTypeError", e)
print("numpy", NumpyBackend().from_numpy(np.zeros(3), "float64").dtype.value)
"""


def test_64_bit_dtypes_on_jax_backend_need_x64() -> None:
    """tests/conftest.py turns x64 on, so this runs in a fresh interpreter with it off."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run([sys.executable, "-c", _NO_X64], check=False, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    for name in ("from_numpy", "from_numpy_default", "full", "cast"):
        assert lines[name].startswith("DTypeError JaxBackend: float64 needs JAX's 64-bit mode"), (name, lines[name])
    assert lines["int64"].startswith("DTypeError JaxBackend: int64 needs JAX's 64-bit mode"), lines["int64"]
    assert lines["numpy"] == "float64", "NumpyBackend holds float64 without JAX's x64"


def test_tripwire_catches_a_kernel_run() -> None:
    """The check above is only meaningful if an armed backend really fails when a kernel runs."""
    backend = new_backend("numpy")
    x = backend.from_numpy(np.zeros((2, 3), np.float32))
    with pytest.raises(AssertionError, match="the kernel of add ran"):
        armed(backend).add(x, x)
