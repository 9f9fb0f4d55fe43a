"""``Jitted``: ``jax.jit`` of one of jtape's programs — a deferred step, a joined or chained step, a
compiled rule — with the XLA options its backend asks for a program like it (``compiler_options``:
JaxBackend on CPU compiles a program that convolves without YNNPACK, see ``jtape.backends.jax_backend``)."""

from __future__ import annotations

from typing import Any

import jax
from jax.core import Tracer


class Jitted:
    """``jax.jit(fn)``, compiled with the XLA options the backend asks for a program like it: at
    the first call (or ``lower``) it is traced, and ``inner.compiler_options(jaxpr)`` — JaxBackend's:
    on CPU, no YNNPACK for a program that convolves — picks how it is jitted. A backend without
    that method gets XLA's defaults. Called inside another trace (a compiled rule within a deferred
    step), it is the plain jit: jax takes compiler options only at the top, where the outer program's
    own apply."""

    __slots__ = ("fn", "inner", "plain", "chosen", "__weakref__")

    def __init__(self, fn: Any, inner: Any):
        self.fn, self.inner = fn, inner
        self.plain = jax.jit(fn)
        self.chosen: Any = None          # None: not chosen yet

    def _choose(self, args: tuple) -> Any:
        wanted = options_for(self.inner, self.plain, *args)
        self.chosen = self.plain if wanted is None else jax.jit(self.fn, compiler_options=wanted)
        return self.chosen

    def __call__(self, *args: Any) -> Any:
        chosen = self.chosen
        if chosen is self.plain:                 # XLA's defaults (most programs): nothing to look at
            return chosen(*args)
        if traced(args):
            return self.plain(*args)
        return (chosen if chosen is not None else self._choose(args))(*args)

    def lower(self, *args: Any) -> Any:
        if traced(args):
            return self.plain.lower(*args)
        return (self.chosen or self._choose(args)).lower(*args)


def options_for(inner: Any, jitted: Any, *args: Any) -> dict | None:
    """The XLA options ``inner`` asks for the program ``jitted(*args)`` (traced to see its jaxpr);
    None — XLA's defaults — from a backend without ``compiler_options``."""
    options = getattr(inner, "compiler_options", None)
    return None if options is None else options(jitted.trace(*args).jaxpr)


def traced(args: Any) -> bool:
    """Is any array in ``args`` a jax tracer (the call is inside another trace)?"""
    return any(isinstance(x, Tracer) for x in jax.tree_util.tree_leaves(args))
