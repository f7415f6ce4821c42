"""ISO 8601 durations of the rule language (``P30D``, ``PT2H``, ``P1DT12H``, ``P1W``).

Only exact units are accepted: weeks, days, hours, minutes and seconds. Months and years have no fixed
length, so ``P1M`` would mean different things on different days; so they are refused.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(text: str) -> timedelta:
    """The ``timedelta`` of an ISO 8601 duration; ``ValueError`` if malformed or in months or years."""
    match = _DURATION.fullmatch(text)
    groups = match.groupdict() if match else {}
    parts = {unit: float(value) for unit, value in groups.items() if value is not None}
    # The regex alone accepts "P" and "P1DT": a duration needs a component, and a "T" needs a time after it.
    if not parts or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration of weeks, days, hours, minutes or seconds")
    return timedelta(**parts)
