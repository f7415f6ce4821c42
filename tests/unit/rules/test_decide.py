from datetime import timedelta
from decimal import Decimal
from typing import Any

from domain.rules.context import InMemoryLimits
from domain.rules.decide import RuleIndex, decide

from .builders import NOW, compiled, context, session

POINTS = [{"effectType": "addLoyaltyPoints", "props": {"name": "p", "value": 10}}]
DISCOUNT = [{"effectType": "setDiscount", "props": {"name": "d", "value": 5}}]


def fired(rules: list[Any], ctx: Any = None) -> list[int]:
    return [f.rule_id for f in decide(rules, ctx or context()).firings]


def run(rule: Any, times: int, step: timedelta = timedelta(hours=1)) -> list[bool]:
    """Decide ``times`` events for one profile, recording what the decision asks to; which ones fired."""
    limits, results = InMemoryLimits(), []
    for n in range(times):
        decision = decide([rule], context(at=NOW + n * step, limits=limits))
        limits.record(decision)
        results.append(bool(decision.firings))
    return results


def test_a_matching_rule_emits_its_effects_with_its_id_and_version() -> None:
    decision = decide([compiled(7, 3, name="r", effects=POINTS)], context())
    (effect,) = decision.effects
    assert (effect.rule_id, effect.rule_version, effect.rule_name, effect.effect_type) == (
        7,
        3,
        "r",
        "addLoyaltyPoints",
    )
    assert effect.props == {"name": "p", "value": Decimal(10)}
    assert decision.firings[0].points == Decimal(10)


def test_a_rule_whose_condition_fails_is_reported_with_the_condition_index() -> None:
    rule = compiled(
        condition={
            "all": [{"attr": "event.type", "op": "exists"}, {"attr": "session.total", "op": "gt", "value": 1}]
        }
    )
    (failure,) = decide([rule], context()).failures
    assert (failure.rule_id, failure.condition_index, failure.effect_index) == (1, 1, None)


def test_a_disabled_rule_does_not_fire() -> None:
    assert fired([compiled(enabled=False, effects=POINTS)]) == []


def test_a_rule_fires_only_within_its_schedule() -> None:
    schedule = {"startTime": "2026-11-22T10:00:00Z", "endTime": "2026-11-22T11:00:00Z"}
    rule = compiled(schedule=schedule)
    assert fired([rule], context(at=NOW)) == [1]
    assert fired([rule], context(at=NOW - timedelta(seconds=1))) == []
    assert fired([rule], context(at=NOW + timedelta(hours=1))) == []


def test_rules_fire_in_priority_order_then_by_id() -> None:
    rules = [compiled(3, priority=1), compiled(2, priority=5), compiled(1, priority=1)]
    assert fired(rules) == [2, 1, 3]


def test_an_exclusive_rule_that_fires_stops_lower_priority_rules() -> None:
    rules = [
        compiled(1, priority=9),
        compiled(2, priority=5, exclusive=True),
        compiled(3, priority=5),
        compiled(4),
    ]
    assert fired(rules) == [1, 2, 3]


def test_an_exclusive_rule_that_does_not_match_stops_nothing() -> None:
    never = {"attr": "event.type", "op": "eq", "value": "other"}
    assert fired([compiled(1, exclusive=True, priority=5, condition=never), compiled(2)]) == [2]


def test_per_profile_limits_the_firings_ever() -> None:
    assert run(compiled(limits={"perProfile": 2}), 4) == [True, True, False, False]


def test_per_profile_per_period_limits_the_firings_in_any_window() -> None:
    rule = compiled(limits={"perProfilePerPeriod": {"count": 2, "period": "PT3H"}})
    assert run(rule, 6) == [True, True, False, True, True, False]


def test_every_nth_fires_on_every_nth_match() -> None:
    decisions = run(compiled(limits={"everyNth": 3}), 7)
    assert decisions == [False, False, True, False, False, True, False]


def test_per_profile_limits_need_a_profile() -> None:
    (failure,) = decide([compiled(limits={"perProfile": 1})], context(profile_id=None)).failures
    assert "profile" in failure.details


def test_a_points_budget_stops_the_rule_before_it_is_exceeded() -> None:
    assert run(compiled(effects=POINTS, limits={"budget": {"points": 25}}), 4) == [True, True, False, False]


def test_a_discount_budget_stops_the_rule_when_reached() -> None:
    assert run(compiled(effects=DISCOUNT, limits={"budget": {"discount": 10}}), 3) == [True, True, False]


def test_a_delayed_rule_is_not_evaluated_but_scheduled() -> None:
    rule = compiled(5, 2, delay={"after": "PT2H", "cancelIf": ["talon_session_closed"]}, effects=POINTS)
    decision = decide([rule], context())
    assert decision.effects == [] and decision.firings == []
    (delayed,) = decision.delayed
    assert (delayed.rule_id, delayed.rule_version, delayed.due_at) == (5, 2, NOW + timedelta(hours=2))
    assert delayed.cancel_if == {"talon_session_closed"}
    assert len(decide([rule], context(), due=True).effects) == 1


def test_deciding_is_deterministic() -> None:
    rules = [compiled(i, priority=i % 3, effects=POINTS) for i in range(10)]
    assert decide(rules, context()) == decide(list(reversed(rules)), context())


def test_the_index_returns_a_types_rules_by_priority_then_id() -> None:
    index = RuleIndex(
        [compiled(1, trigger=["a", "b"]), compiled(2, trigger=["a"], priority=2), compiled(3, trigger=["b"])]
    )
    assert [r.rule_id for r in index.for_event("a")] == [2, 1]
    assert [r.rule_id for r in index.for_event("b")] == [1, 3]
    index.put(compiled(1, 2, trigger=["c"]))
    index.remove(3)
    assert ([r.rule_id for r in index.for_event("b")], index.for_event("c")[0].version) == ([], 2)


def test_one_event_against_a_thousand_rules_takes_well_under_a_millisecond() -> None:
    condition = {
        "all": [
            {"attr": "session.total", "op": "gte", "value": 50},
            {
                "cartItems": {"attr": "category", "op": "eqIgnoreCase", "value": "shoes"},
                "count": {"op": "gte", "value": 1},
            },
            {"attr": "event.attributes.channel", "op": "in", "value": ["web", "app"]},
        ]
    }
    effects = [
        {
            "effectType": "addLoyaltyPoints",
            "props": {"name": "p", "value": {"mul": [{"attr": "session.total"}, 2]}},
        }
    ]
    index = RuleIndex(
        compiled(
            i, trigger=["purchase" if i % 100 == 0 else f"other{i % 7}"], condition=condition, effects=effects
        )
        for i in range(1000)
    )
    from .builders import item

    ctx = context(attributes={"channel": "web"}, session_view=session("80", items=(item(category="Shoes"),)))
    rules = index.for_event("purchase")
    assert len(rules) == 10 and len(decide(rules, ctx).effects) == 10
    # How fast this is belongs to bench/ (bench/rules.py), not to a timed assertion here.
