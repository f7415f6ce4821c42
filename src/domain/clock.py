"""Where "now" comes from, for the few places that ask: the timer follower and webhook deliveries.

Rules never read the clock: time enters the log only through events (a delay's ``DelayCameDue`` carries the
moment it fired), so a replay sees the same times. The server uses ``SystemClock``; tests use ``FakeClock`` and
advance it instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def seconds_until(self, moment: datetime) -> float:
        """How long to sleep until ``moment`` (0 when it has passed)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())


class FakeClock:
    """A clock that moves only when told to (``advance``, ``set``)."""

    IDLE_SECONDS = 0.05
    """What ``seconds_until`` answers for a future moment: a sleeper re-reads a fake clock soon, since no real
    time span stands for the fake one."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def seconds_until(self, moment: datetime) -> float:
        return 0.0 if moment <= self.now() else self.IDLE_SECONDS
