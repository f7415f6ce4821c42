import json
from uuid import UUID

from eventsourcing.application import Application

from domain.rules.aggregate import REGISTRY_ID, Rule, RuleRegistry, rule_aggregate_id
from domain.rules.language import parse_rule

from .builders import rule

DEFINITION = parse_rule(
    rule(effects=[{"effectType": "setDiscount", "props": {"name": "d", "value": 12.5}}], priority=3)
).to_json()


def test_a_rule_is_identified_by_its_integer_id() -> None:
    assert Rule(rule_id=7, definition=DEFINITION, author="ops").id == rule_aggregate_id(7)


def test_revisions_keep_every_version_with_author_and_time() -> None:
    created = Rule(rule_id=1, definition=DEFINITION, author="ops")
    created.revise({**DEFINITION, "priority": 4}, author="marketing")
    first, second = created.versions
    assert (first.version, first.author, second.version, second.author) == (1, "ops", 2, "marketing")
    assert second.definition["priority"] == 4 and first.definition["priority"] == 3
    assert first.recorded_at <= second.recorded_at
    assert created.current is second


def test_disabling_and_enabling_switch_the_rule_and_are_recorded_once() -> None:
    created = Rule(rule_id=1, definition=DEFINITION, author="ops")
    created.disable("ops")
    created.disable("ops")
    assert created.current_definition["enabled"] is False
    created.enable("ops")
    names = [type(e).__name__ for e in created.collect_events()]
    assert names == ["RuleCreated", "RuleDisabled", "RuleEnabled"]
    assert created.enabled


def test_a_revision_that_disables_the_rule_disables_it() -> None:
    created = Rule(rule_id=1, definition=DEFINITION, author="ops")
    created.revise({**DEFINITION, "enabled": False}, "ops")
    assert not created.enabled and not created.current.enabled


def test_stored_definitions_are_plain_json_that_parses_again() -> None:
    app: Application[UUID] = Application()
    created = Rule(rule_id=1, definition=DEFINITION, author="ops")
    app.save(created)
    stored: Rule = app.repository.get(created.id)
    assert json.loads(json.dumps(stored.current.definition)) == DEFINITION
    assert parse_rule(stored.current_definition).to_json() == DEFINITION
    assert stored.versions == created.versions


def test_the_registry_hands_out_increasing_ids() -> None:
    registry = RuleRegistry()
    assert (registry.id, registry.allocate(), registry.allocate(), registry.rule_ids) == (
        REGISTRY_ID,
        1,
        2,
        [1, 2],
    )
