"""Randomness as state, JAX's way: every random draw in jtape takes a ``jax.random`` key.

A key is a value, not a hidden global: the same key gives the same draw, on any backend and
inside or outside ``jax.jit``. Where the keys come from:

* ``key=k``: that key is used as it is;
* ``seed=n``: ``jax.random.PRNGKey(n)``;
* neither: the next key of a ``Generator`` — by default the **process default generator**
  (``jtape.random.seed(n)`` sets it, so one call makes a whole program reproducible; until
  then it is seeded once from the operating system's entropy).

A ``Generator`` holds one key and hands out fresh ones by splitting it: ``next_key()`` replaces
the held key ``k`` by ``split(k)[0]`` and returns ``split(k)[1]``. Nothing else changes the
held key, so the sequence of draws is a function of the seed and of the order of the draws.

Under ``jtape.jit`` each generator's key is *carried state* (``jtape.autodiff.compiled``): the
key goes into the compiled step as an input, the step splits it exactly as an eager step would,
and the split key comes out and is installed after the call. So a compiled Dropout draws a new
mask every step, and an eager and a compiled run of the same seeded program draw the same masks.

This module is in ``jtape.tensor`` (the bottom layer), so creation functions and ``jtape.nn``
can use it; the public spelling is ``jtape.random``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .dtype import DataType
from .errors import ArgumentError
from .raw import RawTensor
from .shape import Shape


def _check_key(key: Any, where: str) -> Any:
    if isinstance(key, (jax.Array, np.ndarray)):
        if key.dtype == np.uint32 and key.shape == (2,):      # the usual key, checked first (a compiled step sets it)
            return key if isinstance(key, jax.Array) else jnp.asarray(key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
    shape = getattr(key, "shape", None)
    raise ArgumentError(f"{where}: got a key of type {type(key).__name__}" + ("" if shape is None else
                        f" (shape {tuple(shape)}, dtype {key.dtype})") + "; expected a jax.random key "
                        "(jax.random.PRNGKey(n): uint32[2], or a typed jax.random.key(n))")


def _check_seed(seed: Any, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"{where}: got seed={seed!r}; expected a non-negative int")
    return int(seed)


class Generator:
    """A stream of ``jax.random`` keys: ``next_key()`` splits the held key (see the module docstring).

    ``Generator(seed=n)`` or ``Generator(key=k)``; with neither, it is seeded from the OS's
    entropy the first time a key is asked for. Layers that were given their own ``seed=`` or
    ``key=`` for draws made while running (Dropout) hold one; ``jtape.jit`` carries its key.
    """

    def __init__(self, seed: int | None = None, *, key: Any = None):
        if seed is not None and key is not None:
            raise ArgumentError(f"Generator: got seed={seed!r} and a key; expected at most one of them")
        self._lock = threading.RLock()
        self._key = (None if seed is None else jax.random.PRNGKey(_check_seed(seed, "Generator"))) \
            if key is None else _check_key(key, "Generator")

    @property
    def key(self) -> Any:
        """The held key (made from the OS's entropy if none was set yet)."""
        with self._lock:
            if self._key is None:
                self._key = jax.random.PRNGKey(int.from_bytes(os.urandom(4), "little"))
            return self._key

    @key.setter
    def key(self, value: Any) -> None:
        # jtape.jit installs tracers here while tracing, so a traced key is accepted as it is
        value = value if isinstance(value, jax.core.Tracer) else _check_key(value, "Generator.key")
        with self._lock:
            self._key = value

    def seed(self, seed: int) -> None:
        """Start the stream again from ``jax.random.PRNGKey(seed)``."""
        self.key = jax.random.PRNGKey(_check_seed(seed, "Generator.seed"))

    def next_key(self) -> Any:
        """A fresh key; the held key moves on (``held, fresh = split(held)``). Thread-safe: two
        threads never get the same key."""
        with self._lock:
            held, fresh = jax.random.split(self.key)
            self._key = held
        return fresh

    def _data(self) -> tuple[np.ndarray | None, bool]:
        key = self._key
        if key is None:
            return None, False
        typed = bool(jnp.issubdtype(key.dtype, jax.dtypes.prng_key))
        return np.asarray(jax.random.key_data(key) if typed else key), typed

    def __getstate__(self) -> dict:
        data, typed = self._data()
        return {"key": data, "typed": typed}

    def __setstate__(self, state: dict) -> None:
        self._lock = threading.RLock()
        data = state["key"]
        self._key = None if data is None else (jax.random.wrap_key_data(jnp.asarray(data)) if state.get("typed")
                                               else jnp.asarray(data))

    def __repr__(self) -> str:
        data, _ = self._data()
        return f"Generator(key={None if data is None else data.tolist()})"


_default = Generator()


def default_generator() -> Generator:
    """The process default generator: where draws given neither ``seed=`` nor ``key=`` take their key."""
    return _default


def seed(n: int) -> None:
    """Seed the process default generator: every later draw without ``seed=``/``key=`` (layer
    initialisation, Dropout masks, ``tensor.randn``) follows from ``n``."""
    _default.seed(n)


def get_key() -> Any:
    """The process default generator's current key (to save it in a checkpoint)."""
    return _default.key


def set_key(key: Any) -> None:
    """Make ``key`` the process default generator's key (to restore it from a checkpoint)."""
    _default.key = _check_key(key, "set_key")


def key(seed: int | None = None, key: Any = None, *, generator: Generator | None = None) -> Any:
    """The key a draw uses: ``key`` as given, ``jax.random.PRNGKey(seed)``, or else the next key of
    ``generator`` (the process default generator when None). At most one of ``seed`` and ``key``."""
    if seed is not None and key is not None:
        raise ArgumentError(f"random.key: got seed={seed!r} and a key; expected at most one of seed= and key=")
    if key is not None:
        return key if isinstance(key, jax.core.Tracer) else _check_key(key, "random.key")
    if seed is not None:
        return jax.random.PRNGKey(_check_seed(seed, "random.key"))
    return (_default if generator is None else generator).next_key()


def draw_dtype(dtype: DataType) -> Any:
    """The dtype to draw in for a tensor of ``dtype``: float64 when asked for and jax's x64 mode
    is on, else float32 (narrower floats are cast from it)."""
    return np.float64 if dtype is DataType.FLOAT64 and jax.config.jax_enable_x64 else np.float32


def on_backend(values: Any, backend: Any, dtype: DataType) -> RawTensor:
    """A constant RawTensor of ``dtype`` on ``backend`` holding ``values`` (a jax array drawn with
    ``jax.random``). A traced array (inside ``jax.jit``) is kept as it is — only a backend of jax
    arrays can be traced; a concrete one goes through ``backend.from_numpy``."""
    if isinstance(values, jax.core.Tracer):
        raw = RawTensor(values.astype(dtype.numpy), Shape(tuple(values.shape)), dtype, backend.device())
    else:
        raw = backend.from_numpy(values, dtype)
    raw.requires_grad = False
    return raw
