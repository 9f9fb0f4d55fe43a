"""Op tests driven by the spec table in ``tests/spec.py``."""
