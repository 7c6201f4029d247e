"""Reading loosely typed values out of vendor JSON: objects, numbers and timestamps.

Vendors spell one fact several ways (a number as ``12``, ``12.0`` or ``"12"``; a time with ``Z``
or an offset, with nanoseconds or none) and leave fields out or null. These readers return an
empty value or None for anything that is not one, and the provider decides what that means.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["json_object", "json_objects", "parse_number", "parse_time"]


def json_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def json_objects(value: object) -> list[dict[str, Any]]:
    """The objects of a JSON array (anything else in it skipped); empty if ``value`` is no array."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def parse_number(value: object) -> float | None:
    """A finite number given as an int, a float or a numeric string; None otherwise (booleans too)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 time (``Z`` or an offset; any number of fraction digits, such as
    Google's nanoseconds) as an aware datetime, in UTC when it names no zone; None otherwise."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
