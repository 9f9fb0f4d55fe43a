"""Spec rows of the second round's reductions and shape ops (see ``spec.py`` for the fields)."""

from __future__ import annotations

SPECS: tuple = ()
