"""Parameter errors and checks shared by the core's config types.

Each config type (``MergeConfig``, ``MembershipConfig``, ``BaselineConfig``, ``ClusterConfig``)
is a frozen dataclass that declares every parameter once, with its default, and checks its
ranges in ``__post_init__``.  The sweep file validates straight into these types.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Any scipy sparse matrix or array, of any format (scipy's type stubs cannot express a
#: constructor call on that union, so the core converts with ``sp.csr_array(...)`` itself).
SparseMatrix: TypeAlias = Any


class ParameterError(ValueError):
    """A parameter value is invalid or makes the computation impossible.

    ``field`` names the parameter and ``message`` says what is wrong in plain words without
    repeating it, so a caller can prefix the sweep point and section once (``str()`` is
    ``"field: message"``).
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages without numpy reprs)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def check_choices(config: DataclassInstance) -> None:
    """Check every ``Literal``-annotated field of a dataclass instance against its allowed values."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        allowed = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
        value = getattr(config, f.name)
        if allowed and value not in allowed:
            raise ParameterError(f.name, f"must be one of {', '.join(map(repr, allowed))}, got {plain(value)!r}")


def check_number(
    field: str, value: float | int | None, *, ge: float | None = None, gt: float | None = None, le: float | None = None, finite: bool = True
) -> None:
    """Range check of an optional number; the message states the range and the value."""
    if value is None:
        return
    ok = not (finite and isinstance(value, float) and not math.isfinite(value))
    ok = ok and (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
    if not ok:
        bounds = [f">= {ge}" if ge is not None else "", f"> {gt}" if gt is not None else "", f"<= {le}" if le is not None else ""]
        rule = " and ".join(b for b in bounds if b) or "finite"
        raise ParameterError(field, f"must be a {'finite ' if finite else ''}number {rule}, got {plain(value)}")
