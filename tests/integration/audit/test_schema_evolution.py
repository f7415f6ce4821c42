"""Events carry the version of their class; an event stored by an older class is upcast when read."""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing import utils

from domain.application import Rulestream
from projections.audit.log import AuditLog

MODULE = "rulestream_evolving_domain"

V1 = """
from domain.base import Stream

class Coupon(Stream):
    class Issued(Stream.Created):
        code: str

    def __init__(self, code):
        self.code = code
"""

V2 = """
from decimal import Decimal
from domain.base import Stream

class Coupon(Stream):
    class Issued(Stream.Created):
        class_version = 2
        code: str
        value: Decimal

        @staticmethod
        def upcast_v1_v2(state):
            state["value"] = Decimal("0")

    def __init__(self, code, value):
        self.code = code
        self.value = value
"""


def load(source: str) -> types.ModuleType:
    """Install ``source`` as the module ``MODULE``, as a new release of the code would."""
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module
    exec(compile(source, MODULE, "exec"), module.__dict__)  # noqa: S102 - the test's own constants
    utils._topic_cache.clear()  # the library caches resolved classes by topic
    return module


@pytest.fixture
def evolving() -> Iterator[None]:
    yield
    sys.modules.pop(MODULE, None)
    utils._topic_cache.clear()


def test_an_event_recorded_by_version_1_of_its_class_is_read_as_version_2(
    app: Rulestream, evolving: None
) -> None:
    v1: Any = load(V1)
    coupon = v1.Coupon._create(v1.Coupon.Issued, id=uuid.uuid4(), code="WELCOME")
    app.save(coupon)
    (stored,) = app.recorder.select_events(coupon.id)
    assert b"class_version" not in stored.state and b"value" not in stored.state

    v2: Any = load(V2)
    read = app.repository.get(coupon.id, version=1)

    assert isinstance(read, v2.Coupon) and (read.code, read.value) == ("WELCOME", 0)
    (entry,) = AuditLog(app).history(coupon.id).entries
    assert entry["data"]["value"] == 0  # the history shows the event as the current class reads it
    v2_coupon = v2.Coupon._create(v2.Coupon.Issued, id=uuid.uuid4(), code="NEW", value=5)
    app.save(v2_coupon)
    (stored_v2,) = app.recorder.select_events(v2_coupon.id)
    assert b'"class_version":2' in stored_v2.state.replace(b" ", b"")
