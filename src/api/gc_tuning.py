"""The garbage collector of a long-running process (``serve``, ``api``, ``worker``), set once it has started.

A full collection walks every object the process holds that the collector tracks, the hundreds of thousands
that start-up made included (modules, classes, pydantic and FastAPI's models, the rules): under B4's load the
policy stopped for 100-200 ms every few seconds, which was its p99 (bench/RESULTS.md, 2026-12-03). Those
objects live as long as the process, so ``gc.freeze()`` moves them out of the collector's sight for good;
and young collections run after 50,000 net allocations instead of 700, so that fewer objects reach the old
generation whose size paces the full collections. Reference cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 100)


def settle() -> None:
    """Freeze what start-up made and raise the young generation's threshold (call once, when started)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
