"""Spec rows of the second round's indexing ops and einsum (see ``spec.py`` for the fields)."""

from __future__ import annotations

SPECS: tuple = ()
