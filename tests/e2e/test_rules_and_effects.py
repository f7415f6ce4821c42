"""Rules, the policy and effects in responses, end to end: HTTP for rules, the official SDK for the rest."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import talon_one

from tests.builders import declare
from tests.conftest import INTEGRATION_KEY, MANAGEMENT_KEY, Server


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_rule(server: Server, rule: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/rules", json=rule, headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


SUITE = "rules-and-effects"
"""Sessions of these tests carry ``suite`` = SUITE and the rules here ask for it, so that these rules do not fire
on the sessions of other tests sharing the server."""


def close(integration: talon_one.IntegrationApi, sid: str, pid: str, items: list[talon_one.CartItem], state: str):  # type: ignore[no-untyped-def]
    return integration.update_customer_session_v2(
        sid,
        talon_one.IntegrationRequest(
            customer_session=talon_one.NewCustomerSessionV2(
                profile_id=pid, state=state, cart_items=items, attributes={"suite": SUITE}
            ),
            response_content=["customerSession", "customerProfile", "loyalty", "ruleFailureReasons"],
        ),
    )


@pytest.fixture(scope="module")
def big_spender_rules(server: Server, management: talon_one.ManagementApi) -> dict[str, int]:
    tag = uuid.uuid4().hex[:6]
    declare(management, "CustomerSession", "suite", "string")
    ours = {"attr": "session.attributes.suite", "op": "eq", "value": SUITE}
    points = create_rule(
        server,
        {
            "name": f"big spenders earn double {tag}",
            "trigger": ["talon_session_closed"],
            "condition": {"all": [
                {"attr": "session.total", "op": "gte", "value": 50},
                ours,
            ]},
            "effects": [{"effectType": "addLoyaltyPoints",
                         "props": {"name": "double", "value": {"mul": [{"attr": "session.total"}, 2]}}}],
        },
    )
    discount = create_rule(
        server,
        {
            "name": f"ten off big carts {tag}",
            "trigger": ["talon_session_created", "talon_session_updated", "talon_session_closed"],
            "condition": {"all": [{"attr": "session.total", "op": "gte", "value": 50}, ours]},
            "effects": [{"effectType": "setDiscount", "props": {"name": "ten-off", "value": 10}}],
        },
    )
    return {"points": points["id"], "discount": discount["id"]}


def effect_types(response: Any) -> list[str]:
    return sorted(e.effect_type for e in response.effects)


def test_closing_a_big_session_earns_points_and_a_discount_and_revoking_rolls_back(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="shoe", price=30, quantity=2)]
    opened = close(integration, sid, pid, items, "open")
    assert effect_types(opened) == ["setDiscount"]
    closed = close(integration, sid, pid, items, "closed")
    assert effect_types(closed) == ["addLoyaltyPoints", "setDiscount"]
    points = next(e for e in closed.effects if e.effect_type == "addLoyaltyPoints")
    assert points.props["value"] == 120
    assert points.campaign_id == big_spender_rules["points"] and points.ruleset_id == 1
    assert closed.loyalty.programs["1"].ledger.current_balance == 120
    balances = integration.get_loyalty_balances(1, pid)
    assert balances.balance.active_points == 120

    revoked = close(integration, sid, pid, items, "cancelled")
    assert effect_types(revoked) == ["rollbackAddedLoyaltyPoints", "rollbackDiscount"]
    assert integration.get_loyalty_balances(1, pid).balance.active_points == 0


def test_a_partial_return_rolls_back_pro_rata(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="a", price=25, quantity=2), talon_one.CartItem(sku="b", price=50, quantity=1)]
    closed = close(integration, sid, pid, items, "closed")
    assert closed.loyalty.programs["1"].ledger.current_balance == 200
    returned = integration.return_cart_items(
        sid,
        talon_one.ReturnIntegrationRequest(
            var_return=talon_one.NewReturn(returned_cart_items=[talon_one.ReturnedCartItem(position=0, quantity=1)])
        ),
    )
    rollback = {e.effect_type: e.props["value"] for e in returned.effects}
    assert rollback == {"rollbackAddedLoyaltyPoints": 50, "rollbackDiscount": 2.5}
    assert integration.get_loyalty_balances(1, pid).balance.active_points == 150


def test_small_sessions_report_why_the_rule_did_not_fire(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    closed = close(integration, new_id("s"), new_id("p"), [talon_one.CartItem(sku="a", price=5, quantity=1)], "closed")
    assert closed.effects == []
    failed = {r.campaign_id: r for r in closed.rule_failure_reasons}
    assert failed[big_spender_rules["points"]].condition_index == 0


def test_a_dry_run_answers_the_effects_and_records_nothing(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="a", price=100, quantity=1)]
    dry = integration.update_customer_session_v2(
        sid,
        talon_one.IntegrationRequest(
            customer_session=talon_one.NewCustomerSessionV2(
                profile_id=pid, state="closed", cart_items=items, attributes={"suite": SUITE}
            ),
            response_content=["loyalty"],
        ),
        dry=True,
    )
    assert "addLoyaltyPoints" in effect_types(dry)
    assert dry.loyalty.programs["1"].ledger.current_balance == 200  # as if it had happened
    assert integration.get_loyalty_balances(1, pid).balance.active_points == 0


def test_an_invalid_rule_is_refused_with_a_pointer(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/rules",
        json={"name": "x", "trigger": ["talon_session_closed"],
              "condition": {"all": [{"attr": "session.total", "op": "gte", "value": 1},
                                    {"attr": "session.total", "op": "startsWith", "value": "a"}]},
              "effects": []},
        headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"},
    )
    assert response.status_code == 400
    pointers = [e["source"].get("pointer") for e in response.json()["errors"]]
    assert "/condition/all/1/op" in pointers


def test_rule_versions_are_kept(server: Server) -> None:
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    rule = {"name": "v", "trigger": ["talon_session_closed"], "effects": [], "enabled": False}
    created = create_rule(server, rule)
    revised = httpx.put(f"{server.url}/v1/rules/{created['id']}", json={**rule, "name": "v2"}, headers=headers)
    assert revised.json()["version"] == 2
    versions = httpx.get(f"{server.url}/v1/rules/{created['id']}/versions", headers=headers).json()["data"]
    assert [v["definition"]["name"] for v in versions] == ["v", "v2"]


def test_a_rule_on_a_custom_event_credits_points_in_the_track_event_response(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    purchase = f"purchase_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "amount", "number", event_type=purchase)
    rule = create_rule(
        server,
        {"name": f"a point per euro {purchase}", "trigger": [purchase],
         "condition": {"attr": "event.attributes.amount", "op": "gt", "value": 0},
         "effects": [{"effectType": "addLoyaltyPoints",
                      "props": {"name": "euros", "value": {"attr": "event.attributes.amount"}}}],
         "limits": {"perProfilePerPeriod": {"count": 2, "period": "P1D"}}},
    )  # fmt: skip
    pid = new_id("p")

    def track(amount: float) -> Any:
        return integration.track_event_v2(
            talon_one.IntegrationEventV2Request(
                profile_id=pid, type=purchase, attributes={"amount": amount}, response_content=["loyalty"]
            )
        )

    first = track(12.5)
    assert [(e.effect_type, e.props["value"], e.campaign_id) for e in first.effects] == [
        ("addLoyaltyPoints", 12.5, rule["id"])
    ]
    assert first.loyalty.programs["1"].ledger.current_balance == 12.5
    assert len(track(1).effects) == 1
    assert track(1).effects == []  # a third firing within a day is over the limit
    assert integration.get_loyalty_balances(1, pid).balance.active_points == 13.5


def test_every_nth_fires_on_exactly_every_nth_match(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    visit = f"visit_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "page", "string", event_type=visit)
    create_rule(
        server,
        {"name": f"third visit {visit}", "trigger": [visit], "limits": {"everyNth": 3},
         "effects": [{"effectType": "showNotification",
                      "props": {"notificationType": "Info", "title": "Hi", "body": "3rd visit"}}]},
    )  # fmt: skip
    pid = new_id("p")
    fired = [
        bool(integration.track_event_v2(
            talon_one.IntegrationEventV2Request(profile_id=pid, type=visit, attributes={"page": "/"})
        ).effects)
        for _ in range(7)
    ]  # fmt: skip
    assert fired == [False, False, True, False, False, True, False]


def test_simulation_replays_candidate_rules_over_history_and_records_nothing(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    signup = f"signup_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "plan", "string", event_type=signup)
    profiles = [new_id("p") for _ in range(3)]
    for pid, plan in zip(profiles, ("gold", "gold", "basic"), strict=True):
        integration.track_event_v2(
            talon_one.IntegrationEventV2Request(profile_id=pid, type=signup, attributes={"plan": plan})
        )
    candidate = {"name": "gold bonus", "trigger": [signup],
                 "condition": {"attr": "event.attributes.plan", "op": "eq", "value": "gold"},
                 "effects": [{"effectType": "addLoyaltyPoints", "props": {"name": "bonus", "value": 50}}]}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/rules/simulate", json={"rules": [candidate]}, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    report = response.json()
    [rule] = report["rules"]
    assert (rule["firings"], rule["effects"], rule["points"]) == (2, {"addLoyaltyPoints": 2}, 100)
    assert len(report["sample"]) == 2
    # Nothing recorded: the candidate is no rule, and nobody got the points.
    assert all(r["name"] != "gold bonus" for r in httpx.get(f"{server.url}/v1/rules", headers=headers).json()["data"])
    assert [integration.get_loyalty_balances(1, pid).balance.active_points for pid in profiles] == [0, 0, 0]

    refused = httpx.post(f"{server.url}/v1/rules/simulate",
                         json={"rules": [{**candidate, "trigger": ["no_such_type"]}]}, headers=headers)  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["source"]["pointer"].startswith("/rules/0/trigger")


def test_effects_of_a_rule_that_no_longer_holds_leave_the_session(
    server: Server, integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    """Talon.One answers each update with the effects in force: a cart that shrinks below a rule's threshold
    loses that rule's discount and pending points, which its close then neither credits nor rolls back."""
    pending = create_rule(server, {
        "name": f"pending points {uuid.uuid4().hex[:6]}", "trigger": ["talon_session_created", "talon_session_updated"],
        "condition": {"all": [{"attr": "session.total", "op": "gte", "value": 100},
                              {"attr": "session.attributes.suite", "op": "eq", "value": SUITE}]},
        "effects": [{"effectType": "addLoyaltyPoints", "props": {"name": "big-cart", "value": 100}}],
    })  # fmt: skip
    sid, pid = new_id("s"), new_id("p")
    big = close(integration, sid, pid, [talon_one.CartItem(sku="tv", price=200, quantity=1)], "open")
    assert effect_types(big) == ["addLoyaltyPoints", "setDiscount"]
    small = [talon_one.CartItem(sku="tv", price=20, quantity=1)]
    shrunk = close(integration, sid, pid, small, "open")
    assert effect_types(shrunk) == []
    assert {f.campaign_id for f in shrunk.rule_failure_reasons} >= {pending["id"], big_spender_rules["discount"]}
    assert integration.get_customer_session(sid).effects == []
    closed = close(integration, sid, pid, small, "closed")
    assert effect_types(closed) == []
    assert integration.get_loyalty_balances(1, pid).balance.active_points == 0
    assert effect_types(close(integration, sid, pid, small, "cancelled")) == []


def test_a_session_created_closed_answers_each_rule_once(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    sid, pid = new_id("s"), new_id("p")
    closed = close(integration, sid, pid, [talon_one.CartItem(sku="shoe", price=60, quantity=1)], "closed")
    assert effect_types(closed) == ["addLoyaltyPoints", "setDiscount"]
    assert closed.loyalty.programs["1"].ledger.current_balance == 120


def test_revising_a_disabled_rule_without_enabled_leaves_it_disabled(server: Server) -> None:
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    rule = {"name": "quiet", "trigger": ["talon_session_closed"], "effects": []}
    created = create_rule(server, {**rule, "enabled": False})
    revised = httpx.put(f"{server.url}/v1/rules/{created['id']}", json={**rule, "name": "quiet v2"}, headers=headers)
    assert revised.status_code == 200 and revised.json()["enabled"] is False
    enabled = httpx.put(f"{server.url}/v1/rules/{created['id']}", json={**rule, "enabled": True}, headers=headers)
    assert enabled.json()["enabled"] is True
    httpx.post(f"{server.url}/v1/rules/{created['id']}/disable", headers=headers)


def test_response_content_brings_triggered_campaigns_returns_and_empty_coupons(
    integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="shoe", price=30, quantity=2), talon_one.CartItem(sku="sock", price=5, quantity=4)]
    wanted = ["customerSession", "triggeredCampaigns", "coupons", "awardedGiveaways", "previousReturns"]
    closed = integration.update_customer_session_v2(sid, talon_one.IntegrationRequest(
        customer_session=talon_one.NewCustomerSessionV2(profile_id=pid, state="closed", cart_items=items,
                                                        attributes={"suite": SUITE}),
        response_content=wanted))  # fmt: skip
    campaigns = {c.id: c for c in closed.triggered_campaigns}
    assert set(campaigns) == {big_spender_rules["points"], big_spender_rules["discount"]}
    assert campaigns[big_spender_rules["points"]].features == ["loyalty"]
    points = campaigns[big_spender_rules["points"]]
    assert points.active_ruleset_id == 1 and points.state == "enabled"
    assert closed.coupons == [] and closed.awarded_giveaways == [] and closed.previous_returns == []

    request = talon_one.ReturnIntegrationRequest.from_dict(
        {"return": {"returnedCartItems": [{"position": 1, "quantity": 1}]}, "responseContent": ["previousReturns"]})
    first = integration.return_cart_items(sid, request)
    assert first.var_return.returned_cart_items[0].position == 1 and first.var_return.session_integration_id == sid
    assert first.previous_returns == []
    second = integration.return_cart_items(sid, request)
    assert [r.event_id for r in second.previous_returns] == [first.var_return.event_id]
    assert second.var_return.event_id > first.var_return.event_id


def test_the_ledger_pages_without_skipping_entries_of_one_evaluation(
    server: Server, integration: talon_one.IntegrationApi, big_spender_rules: dict[str, int]
) -> None:
    """A close that credits two rules books two entries at one log position: a page never splits them."""
    create_rule(server, {
        "name": f"pending on open {uuid.uuid4().hex[:6]}", "trigger": ["talon_session_created"],
        "condition": {"all": [{"attr": "session.total", "op": "gte", "value": 100},
                              {"attr": "session.attributes.suite", "op": "eq", "value": SUITE}]},
        "effects": [{"effectType": "addLoyaltyPoints", "props": {"name": "opened", "value": 1}}],
    })  # fmt: skip
    sid, pid = new_id("s"), f"ledger/{new_id('p')}"  # a "/" in the id: every path of the profile takes it
    items = [talon_one.CartItem(sku="tv", price=120, quantity=1)]
    close(integration, sid, pid, items, "open")
    close(integration, sid, pid, items, "closed")
    headers = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    url = f"{server.url}/v1/applications/1/customers/{pid.replace('/', '%2F')}/ledger"
    whole = httpx.get(url, headers=headers).json()
    assert len(whole["data"]) >= 2 and len({e["position"] for e in whole["data"]}) == 1  # (other tests' rules too)
    first = httpx.get(url, params={"pageSize": 1}, headers=headers).json()
    assert first["data"] == whole["data"] and first["hasMore"] is False
    assert first["next"] == whole["data"][-1]["position"]
    assert integration.get_loyalty_balances(1, pid).balance.active_points == whole["balance"]
    assert whole["balance"] == sum(e["amount"] for e in whole["data"]) >= 241
    integration.delete_customer_data(pid)


def test_reads_right_after_a_write_that_did_not_wait_for_its_effects_see_them(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    """``silent=yes`` and the Gameball ingest answer without waiting for the rule policy; a read after them still
    sees the points their rules credited (it waits for the policy, as reads wait for the read models)."""
    visit = f"visit_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "page", "string", event_type=visit)
    create_rule(server, {"name": f"five a visit {visit}", "trigger": [visit],
                         "effects": [{"effectType": "addLoyaltyPoints", "props": {"name": "v", "value": 5}}]})  # fmt: skip
    manage = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
    for round_ in range(3):
        pid = new_id("p")
        silent = httpx.post(f"{server.url}/v2/events", params={"silent": "yes"}, headers={
            "Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}, json={"profileId": pid, "type": visit,
                                                                   "attributes": {"page": "a"}})  # fmt: skip
        assert silent.status_code == 204
        assert integration.get_loyalty_balances(1, pid).balance.active_points == 5, round_
        gameball = httpx.post(f"{server.url}/api/v4.0/integrations/events", headers={"apikey": INTEGRATION_KEY},
                              json={"customerId": pid, "events": {visit: {"page": "b"}}})  # fmt: skip
        assert gameball.status_code == 200
        customer = httpx.get(f"{server.url}/v1/applications/1/customers/{pid}", headers=manage).json()
        assert customer["loyalty"]["balance"] == 10, (round_, customer)


def test_a_negative_balance_is_owed_and_the_current_one_is_zero(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    redeem = f"redeem_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "pts", "number", event_type=redeem)
    create_rule(server, {"name": f"redeem {redeem}", "trigger": [redeem], "effects": [
        {"effectType": "deductLoyaltyPoints", "props": {"name": "r", "value": {"attr": "event.attributes.pts"}}}]})
    answer = integration.track_event_v2(talon_one.IntegrationEventV2Request(
        profile_id=new_id("p"), type=redeem, attributes={"pts": 3}, response_content=["loyalty"]))  # fmt: skip
    ledger = answer.loyalty.programs["1"].ledger
    assert (ledger.current_balance, ledger.negative_balance, ledger.tentative_current_balance) == (0, 3, 0)


def test_a_dry_run_tries_out_the_campaigns_it_names_even_disabled_ones(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    """Talon.One's evaluableCampaignIds: with dry=true, only these campaigns are evaluated, even disabled ones."""
    trial = f"trial_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "n", "number", event_type=trial)
    draft = create_rule(server, {"name": f"draft {trial}", "trigger": [trial], "enabled": False, "effects": [
        {"effectType": "addLoyaltyPoints", "props": {"name": "d", "value": 7}}]})
    live = create_rule(server, {"name": f"live {trial}", "trigger": [trial], "effects": [
        {"effectType": "addLoyaltyPoints", "props": {"name": "l", "value": 1}}]})

    def track(ids: list[int] | None, dry: bool) -> list[int]:
        request = talon_one.IntegrationEventV2Request(profile_id=new_id("p"), type=trial, attributes={"n": 1},
                                                      evaluable_campaign_ids=ids)  # fmt: skip
        return sorted(e.campaign_id for e in integration.track_event_v2(request, dry=dry).effects)

    assert track([draft["id"]], dry=True) == [draft["id"]]
    assert track([draft["id"], live["id"]], dry=True) == sorted([draft["id"], live["id"]])
    assert track(None, dry=True) == [live["id"]]
    assert track([draft["id"]], dry=False) == [live["id"]]  # a recorded command runs the live rules


def test_rules_react_to_an_event_of_no_customer(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi
) -> None:
    """An event naming neither a profile nor a session is evaluated like any other (RULES.md: every recorded
    event); what needs a customer (points) is a failure reason."""
    kiosk = f"kiosk_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "n", "number", event_type=kiosk)
    create_rule(server, {"name": f"hello kiosk {kiosk}", "trigger": [kiosk], "effects": [
        {"effectType": "showNotification", "props": {"notificationType": "Info", "title": "Hi", "body": "kiosk"}}]})
    points = create_rule(server, {"name": f"kiosk points {kiosk}", "trigger": [kiosk], "effects": [
        {"effectType": "addLoyaltyPoints", "props": {"name": "k", "value": 1}}]})
    answer = integration.track_event_v2(talon_one.IntegrationEventV2Request(
        type=kiosk, attributes={"n": 1}, response_content=["ruleFailureReasons"]))  # fmt: skip
    assert [e.effect_type for e in answer.effects] == ["showNotification"]
    assert [f.campaign_id for f in answer.rule_failure_reasons] == [points["id"]]


def test_a_customers_earned_and_spent_points_count_rollbacks_against_what_they_undo(
    server: Server, integration: talon_one.IntegrationApi, management: talon_one.ManagementApi,
    big_spender_rules: dict[str, int],
) -> None:
    redeem = f"redeem_{uuid.uuid4().hex[:6]}"
    declare(management, "Event", "pts", "number", event_type=redeem)
    create_rule(server, {"name": f"spend {redeem}", "trigger": [redeem], "effects": [
        {"effectType": "deductLoyaltyPoints", "props": {"name": "r", "value": {"attr": "event.attributes.pts"}}}]})
    sid, pid = new_id("s"), new_id("p")
    items = [talon_one.CartItem(sku="shoe", price=30, quantity=2)]
    close(integration, sid, pid, items, "closed")  # earns 120
    integration.track_event_v2(talon_one.IntegrationEventV2Request(profile_id=pid, type=redeem, attributes={"pts": 20}))
    close(integration, sid, pid, items, "cancelled")  # the 120 are rolled back: not spending
    customer = httpx.get(f"{server.url}/v1/applications/1/customers/{pid}",
                         headers={"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}).json()  # fmt: skip
    assert (customer["loyalty"]["earned"], customer["loyalty"]["spent"], customer["loyalty"]["balance"]) == (0, 20, -20)
    balance = integration.get_loyalty_balances(1, pid).balance
    assert (balance.active_points, balance.spent_points, balance.negative_points) == (0, 20, 20)
