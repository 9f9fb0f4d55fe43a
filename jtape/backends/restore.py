"""How backends pickle: as what they are (kind and device), unpickled onto an *equal* backend.

``pickle`` never copies a backend's internals (compiled kernels, a JAX device handle, a tape):
``KernelBackend.__reduce__`` stores its ``spec()`` — ``("jax", "gpu", 0)``, ``("numpy",)`` — and
``restore`` turns a spec back into a backend of this process: the default backend's own (inner)
backend when its spec is equal, else one backend per spec, made on first use and shared by
everything unpickled afterwards. A JaxBackend's device is found by platform and id; where that
device does not exist, the first device of that platform; where the platform does not exist
(pickled on a GPU, loaded on a CPU-only machine), JAX's default device, with a warning.

``copy.deepcopy`` of a backend is the backend itself: it is a service, not state.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from ..tensor.defaults import default_backend
from ..tensor.interop import plain_backend

_lock = threading.Lock()
_RESTORED: dict[tuple, Any] = {}


def spec_of(backend: Any) -> tuple | None:
    """A plain backend's spec, or None for one that has none (a user's own backend)."""
    spec = getattr(backend, "spec", None)
    return spec() if callable(spec) else None


def restore(spec: tuple) -> Any:
    """The backend of this process equal to the pickled ``spec`` (see the module docstring)."""
    default = plain_backend(default_backend())
    if spec_of(default) == spec:
        return default
    with _lock:
        found = _RESTORED.get(spec)
        if found is None:
            found = _RESTORED[spec] = _make(spec)
        return found


def _make(spec: tuple) -> Any:
    from .jax_backend import JaxBackend
    from .numpy_backend import NumpyBackend

    if spec == ("numpy",):
        return NumpyBackend()
    if spec[0] != "jax" or len(spec) != 3:
        raise ValueError(f"unpickling a backend: got spec {spec!r}; expected ('numpy',) or ('jax', platform, id)")
    import jax

    _, platform, device_id = spec
    try:
        devices = jax.local_devices(backend=platform)
    except RuntimeError:
        warnings.warn(f"unpickling a JaxBackend of platform {platform!r}, which this process does not have; using "
                      f"JAX's default device {jax.local_devices()[0]}", stacklevel=3)
        return JaxBackend()
    same = [d for d in devices if d.id == device_id]
    return JaxBackend((same or devices)[0])
