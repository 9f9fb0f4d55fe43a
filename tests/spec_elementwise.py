"""Spec rows of the second round's elementwise maths, activations and the Python operators' ops (see ``spec.py`` for the fields)."""

from __future__ import annotations

SPECS: tuple = ()
