"""Webhook deliveries on the real PostgreSQL, to a receiver on 127.0.0.1: signed, filtered, in order per profile,
retried with backoff (a fake clock stands for the waits), dead letters and manual retry; and the pull feed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from domain.application import Rulestream
from domain.clock import FakeClock
from domain.rulebook import RuleBook
from domain.webhooks import Webhook, WebhookBook, legacy_secret_id, webhook_aggregate_id
from projections.audit.log import AuditLog
from projections.deliveries import Deliveries, deliveries_of
from projections.feed import effects_after
from projections.follower import FollowerRunner
from projections.policy import RulePolicy
from projections.webhook_secrets import WebhookSecrets, copy_legacy_secrets
from tests.receiver import Delivery, Receiver

SECRET = "a-test-secret-of-some-length"


@pytest.fixture
def visit(rulestream: Rulestream) -> str:
    """A custom event type ``visit_<tag>`` (attribute ``n``) and a rule: each visit shows a notification and sets
    a discount (``crm_rule`` adds one that triggers a webhook on the third)."""
    name = f"visit_{uuid.uuid4().hex[:6]}"
    rulestream.create_attribute("Event", "n", "number", event_type=name)
    RuleBook(rulestream).create(
        {"name": f"hello {name}", "trigger": [name],
         "effects": [{"effectType": "showNotification",
                      "props": {"notificationType": "Info", "title": "Hi", "body": "visit"}},
                     {"effectType": "setDiscount", "props": {"name": "d", "value": {"attr": "event.attributes.n"}}}]},
        "test",
    )  # fmt: skip
    return name


def crm_rule(rulestream: Rulestream, visit: str) -> None:
    """The third visit triggers the webhook named ``crm-<visit>`` (registered first: a rule naming a webhook that
    does not exist is refused)."""
    RuleBook(rulestream).create(
        {"name": f"crm {visit}", "trigger": [visit],
         "condition": {"attr": "event.attributes.n", "op": "eq", "value": 3},
         "effects": [{"effectType": "triggerWebhook", "props": {"webhook": f"crm-{visit}", "payload": {"n": 3}}}]},
        "test",
    )  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver.start()
    yield started
    started.stop()


def catch_up(app: Rulestream, deliveries: Deliveries) -> None:
    FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
    FollowerRunner(app, deliveries).run_until_caught_up()


def about(profile: str) -> Callable[[Delivery], bool]:
    return lambda delivery: bool(delivery.body["cause"]["profileId"] == profile)


def visits(app: Rulestream, event_type: str, count: int = 3) -> str:
    profile = f"p-{uuid.uuid4().hex[:10]}"
    for n in range(1, count + 1):
        app.track_event(event_type, {"n": n}, profile, None)
    return profile


def test_receivers_get_the_effects_they_asked_for_signed_and_in_order(
    rulestream: Rulestream, visit: str, receiver: Receiver
) -> None:
    book = WebhookBook(rulestream, WebhookSecrets(rulestream))
    notifications = book.register(receiver.url, ["showNotification"], SECRET, None, "test")
    crm_receiver = Receiver.start()
    try:
        book.register(crm_receiver.url, ["setDiscount"], SECRET, f"crm-{visit}", "test")
        crm_rule(rulestream, visit)
        profile = visits(rulestream, visit)
        deliveries = Deliveries(rulestream, FakeClock(datetime.now(UTC)), sender=False)
        catch_up(rulestream, deliveries)
        deliveries.send_due()

        mine = receiver.wait_for(3, about(profile))
        assert [d.body["effect"]["effectType"] for d in mine] == ["showNotification"] * 3
        assert [d.body["position"] for d in mine] == sorted(d.body["position"] for d in mine)
        assert all(d.signed_by(SECRET) and not d.signed_by("another secret") for d in mine)
        assert all(d.body["webhookId"] == notifications.webhook_id for d in mine)
        crm = [d.body["effect"] for d in crm_receiver.wait_for(4, about(profile))]
        # its setDiscount effects, and the one triggerWebhook that names it
        assert [e["effectType"] for e in crm] == [
            "setDiscount",
            "setDiscount",
            "setDiscount",
            "triggerWebhook",
        ]
        assert crm[0]["props"]["value"] == 1 and crm[3]["props"]["payload"] == {"n": 3}
    finally:
        crm_receiver.stop()


def test_a_failing_receiver_gets_each_effect_once_after_retries_in_order(
    rulestream: Rulestream, visit: str
) -> None:
    flaky = Receiver.start(fail_first=3)
    try:
        book = WebhookBook(rulestream, WebhookSecrets(rulestream))
        webhook = book.register(flaky.url, ["showNotification"], SECRET, None, "test")
        profile = visits(rulestream, visit)
        clock = FakeClock(datetime.now(UTC))
        deliveries = Deliveries(rulestream, clock, sender=False)
        catch_up(rulestream, deliveries)
        for _ in range(4):  # three failures, each retried after its backoff, then the receiver recovers
            deliveries.send_due()
            clock.advance(Deliveries.BACKOFF_CAP)
        received = flaky.wait_for(3)
        assert flaky.refused == 3
        assert [d.body["cause"]["profileId"] for d in received] == [profile] * 3
        assert [d.body["cause"]["position"] for d in received] == sorted(
            d.body["cause"]["position"] for d in received
        )
        history = sorted(deliveries_of(rulestream, webhook.webhook_id, 10), key=lambda d: d["id"])
        assert [d["status"] for d in history] == ["delivered"] * 3
        assert [d["attempts"] for d in history] == [4, 1, 1]
        assert [a["status"] for a in history[0]["history"]] == [503, 503, 503, 204]
    finally:
        flaky.stop()


def test_after_the_last_attempt_a_delivery_is_a_dead_letter_until_retried(
    rulestream: Rulestream, visit: str
) -> None:
    down = Receiver.start(fail_first=1_000)
    try:
        book = WebhookBook(rulestream, WebhookSecrets(rulestream))
        webhook = book.register(down.url, ["showNotification"], SECRET, None, "test")
        visits(rulestream, visit, count=1)
        clock = FakeClock(datetime.now(UTC))
        deliveries = Deliveries(rulestream, clock, sender=False)
        catch_up(rulestream, deliveries)
        for _ in range(Deliveries.MAX_ATTEMPTS + 2):
            deliveries.send_due()
            clock.advance(Deliveries.BACKOFF_CAP)
        (dead,) = deliveries_of(rulestream, webhook.webhook_id, 10)
        assert (dead["status"], dead["attempts"], down.refused) == ("dead", Deliveries.MAX_ATTEMPTS, 10)

        down.fail_first = 0
        book.retry(webhook.webhook_id, dead["id"], "test")
        catch_up(rulestream, deliveries)
        deliveries.send_due()
        (delivered,) = deliveries_of(rulestream, webhook.webhook_id, 10)
        assert delivered["status"] == "delivered" and len(down.received) == 1
        assert len(delivered["history"]) == Deliveries.MAX_ATTEMPTS + 1
    finally:
        down.stop()


def test_the_feed_pages_every_effect_in_log_order_with_its_cause(rulestream: Rulestream, visit: str) -> None:
    WebhookBook(rulestream, WebhookSecrets(rulestream)).register("http://127.0.0.1:9/", None, SECRET, f"crm-{visit}", "t")
    crm_rule(rulestream, visit)
    profile = visits(rulestream, visit)
    FollowerRunner(rulestream, RulePolicy(rulestream)).run_until_caught_up()
    seen, after = [], 0
    while True:
        page = effects_after(rulestream, after, limit=2)
        seen += page.effects
        after = page.after
        if not page.has_more:
            break
    mine = [e for e in seen if e["cause"]["profileId"] == profile]
    assert [e["effectType"] for e in mine] == ["showNotification", "setDiscount"] * 2 + [
        "showNotification", "setDiscount", "triggerWebhook"]  # fmt: skip
    positions = [(e["position"], e["effectIndex"]) for e in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_neither_the_log_nor_the_audit_history_of_a_webhook_holds_its_secret_and_deliveries_still_verify(
    rulestream: Rulestream, visit: str, receiver: Receiver
) -> None:
    secrets = WebhookSecrets(rulestream)
    book = WebhookBook(rulestream, secrets)
    webhook = book.register(receiver.url, ["showNotification"], SECRET, None, "test")
    profile = visits(rulestream, visit, count=1)
    deliveries = Deliveries(rulestream, FakeClock(datetime.now(UTC)), sender=False)
    catch_up(rulestream, deliveries)
    deliveries.send_due()
    (delivered,) = receiver.wait_for(1, about(profile))
    assert delivered.signed_by(SECRET)

    stream = webhook_aggregate_id(webhook.webhook_id)
    stored = rulestream.recorder.select_events(stream)
    assert stored and all(SECRET.encode() not in e.state for e in stored)
    history = AuditLog(rulestream).history(stream).entries
    assert SECRET not in repr(history)
    assert history[0]["data"]["secret_id"] == webhook.secret_id
    assert secrets.secret(webhook.secret_id) == SECRET


def test_removing_a_webhook_destroys_its_secret(rulestream: Rulestream, receiver: Receiver) -> None:
    secrets = WebhookSecrets(rulestream)
    book = WebhookBook(rulestream, secrets)
    webhook = book.register(receiver.url, None, SECRET, None, "test")
    book.remove(webhook.webhook_id, "test")
    assert secrets.secret(webhook.secret_id) is None


def test_a_webhook_registered_with_its_secret_in_the_log_is_shown_without_it_and_still_signs(
    rulestream: Rulestream, visit: str, receiver: Receiver
) -> None:
    """An event of version 1 (before secrets left the log): upcast to the id its secret was copied under."""
    webhook_id = random.randrange(10**6, 2**31)
    modern = Webhook.register(webhook_id, receiver.url, ["showNotification"], "unused", None, "test")
    (event,) = modern.collect_events()
    stored = rulestream.mapper.to_stored_event(event)
    state = orjson.loads(stored.state)
    del state["class_version"], state["secret_id"]
    state["secret"] = SECRET
    old = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, orjson.dumps(state))
    rulestream.recorder.insert_events([old])
    datastore: Any = rulestream.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
        assert copy_legacy_secrets(cursor, rulestream) >= 1  # what creating the table does on an upgrade

    read: Any = rulestream.mapper.to_domain_event(old)
    assert read.secret_id == legacy_secret_id(webhook_id) and not hasattr(read, "secret")
    assert SECRET not in repr(AuditLog(rulestream).history(stored.originator_id).entries)
    profile = visits(rulestream, visit, count=1)
    deliveries = Deliveries(rulestream, FakeClock(datetime.now(UTC)), sender=False)
    catch_up(rulestream, deliveries)
    deliveries.send_due()
    (delivered,) = receiver.wait_for(1, about(profile))
    assert delivered.signed_by(SECRET) and delivered.body["webhookId"] == webhook_id


def test_without_any_target_evaluations_are_not_decoded_and_a_target_registered_in_a_batch_gets_what_follows(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.db import eventsourcing_env
    from api.settings import Settings
    from projections import follower
    from tests.conftest import drop_database, fresh_database

    url = fresh_database("rulestream_no_targets")  # no test's target here
    app = Rulestream(env=eventsourcing_env(Settings(database_url=url)))
    try:
        name = f"visit_{uuid.uuid4().hex[:6]}"
        app.create_attribute("Event", "n", "number", event_type=name)
        RuleBook(app).create(
            {"name": "hello", "trigger": [name],
             "effects": [{"effectType": "showNotification",
                          "props": {"notificationType": "Info", "title": "Hi", "body": "visit"}}]},
            "test",
        )  # fmt: skip
        deliveries = Deliveries(app, FakeClock(datetime.now(UTC)), sender=False)
        decoded: list[str] = []
        real = follower.DecodedEvents.decode

        def counting(self: Any, rows: Any) -> Any:
            decoded.extend(row["topic"] for row in rows)
            return real(self, rows)

        runner = FollowerRunner(app, deliveries)
        runner.run_until_caught_up()  # learns that nobody registered a target
        first = visits(app, name, 2)
        FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
        follower.DecodedEvents.of(app).clear()
        monkeypatch.setattr(follower.DecodedEvents, "decode", counting)
        assert runner.step()
        assert not any(topic.endswith("Evaluation.Evaluated") for topic in decoded)  # nowhere to go
        # A target registered, then more visits: one batch holds the registration and their evaluations.
        WebhookBook(app, WebhookSecrets(app)).register(receiver.url, ["showNotification"], SECRET, None, "t")
        second = visits(app, name, 2)
        FollowerRunner(app, RulePolicy(app)).run_until_caught_up()
        assert runner.step()
        assert any(topic.endswith("Evaluation.Evaluated") for topic in decoded)
        monkeypatch.undo()
        deliveries.send_due()
        assert len(receiver.wait_for(2, about(second))) == 2
        assert not [d for d in receiver.received if about(first)(d)]  # before the target: not delivered
    finally:
        app.close()
        drop_database(url)


def test_while_a_receiver_is_down_the_next_try_is_its_retry_not_the_deliveries_queued_behind_it(
    own_rulestream: Rulestream,
) -> None:
    """The sender sleeps until the next try: the deliveries waiting behind a failing one of their profile are not
    due at their own (past) times; counting them kept the sender from ever sleeping."""
    app = own_rulestream
    visit = f"visit_{uuid.uuid4().hex[:6]}"
    app.create_attribute("Event", "n", "number", event_type=visit)
    RuleBook(app).create({"name": "hi", "trigger": [visit], "effects": [{"effectType": "showNotification", "props": {
        "notificationType": "Info", "title": "Hi", "body": "visit"}}]}, "test")  # fmt: skip
    WebhookBook(app, WebhookSecrets(app)).register("http://127.0.0.1:9/down", None, SECRET, None, "test")
    visits(app, visit, count=3)
    clock = FakeClock(datetime.now(UTC))
    deliveries = Deliveries(app, clock, sender=False)
    catch_up(app, deliveries)
    deliveries.send_due()  # the first fails; the two behind it wait for it
    due = deliveries.next_try()
    assert due is not None and due > clock.now()
