"""Spec rows of the second round's convolution and pooling (see ``spec.py`` for the fields)."""

from __future__ import annotations

SPECS: tuple = ()
