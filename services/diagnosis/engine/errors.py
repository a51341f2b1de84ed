"""The engine's one error type: an input it cannot work with, said in plain words."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (missing column, non-numeric value, duplicate leaf, empty series...)."""
