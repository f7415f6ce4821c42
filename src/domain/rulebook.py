"""Rule management: create, revise, enable and disable rules — each an event-sourced aggregate with versions.

Saving a rule parses it and type-checks it against the attribute catalog; a rule that does not check is refused
with JSON pointers into it and records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from domain.application import Rulestream
from domain.errors import NotFound, Problem, RuleInvalid
from domain.rules.aggregate import REGISTRY_ID, Rule, RuleRegistry, rule_aggregate_id
from domain.rules.effects import TriggerWebhook
from domain.rules.language import RuleDefinition, parse_rule
from domain.rules.typecheck import check_rule
from domain.webhooks import WebhookBook


class RuleBook:
    """The rule commands and queries of the application."""

    def __init__(self, app: Rulestream) -> None:
        self.app = app

    def check(self, definition: Mapping[str, Any]) -> RuleDefinition:
        """Parse and type-check a definition against the current catalog (``RuleInvalid`` if it does not fit)."""
        parsed = parse_rule(dict(definition))
        check_rule(parsed, self.app.catalog())
        return parsed

    def checked_to_save(self, definition: Mapping[str, Any]) -> RuleDefinition:
        """``check``, and the webhooks its ``triggerWebhook`` effects name exist (a simulation needs none)."""
        parsed = self.check(definition)
        named = [(i, e.props.webhook) for i, e in enumerate(parsed.effects) if isinstance(e, TriggerWebhook)]
        if named:
            known = {key for w in WebhookBook(self.app).all() for key in (w.name, str(w.webhook_id)) if key}
            problems = [
                Problem("Unknown webhook", f"no webhook is named '{webhook}' or has that id (POST /v1/webhooks)",
                        f"/effects/{i}/props/webhook")
                for i, webhook in named if webhook not in known
            ]  # fmt: skip
            if problems:
                raise RuleInvalid("The rule names a webhook that is not registered", problems)
        return parsed

    def create(self, definition: Mapping[str, Any], author: str) -> Rule:
        parsed = self.checked_to_save(definition)

        def attempt() -> Rule:
            registry = self._registry() or RuleRegistry()
            rule_id = registry.allocate()
            rule = Rule(rule_id=rule_id, definition=parsed.to_json(), author=author)
            self.app.save(registry, rule)
            return rule

        return self.app._retrying(attempt)  # noqa: SLF001 - the application's own retry policy

    def revise(self, rule_id: int, definition: Mapping[str, Any], author: str) -> Rule:
        parsed = self.checked_to_save(definition)

        def attempt() -> Rule:
            rule = self.get(rule_id)
            revised = parsed.to_json()
            if "enabled" not in definition:  # editing a rule leaves its switch as it is
                revised["enabled"] = rule.enabled
            rule.revise(revised, author)
            self.app.save(rule)
            return rule

        return self.app._retrying(attempt)  # noqa: SLF001

    def switch(self, rule_id: int, *, enabled: bool, author: str) -> Rule:
        def attempt() -> Rule:
            rule = self.get(rule_id)
            if enabled:
                rule.enable(author)
            else:
                rule.disable(author)
            self.app.save(rule)
            return rule

        return self.app._retrying(attempt)  # noqa: SLF001

    def get(self, rule_id: int) -> Rule:
        try:
            rule: Rule = self.app.repository.get(rule_aggregate_id(rule_id))
        except AggregateNotFoundError:
            raise NotFound(f"no rule {rule_id}") from None
        return rule

    def all(self) -> list[Rule]:
        registry = self._registry()
        return [self.get(rule_id) for rule_id in (registry.rule_ids if registry else [])]

    def _registry(self) -> RuleRegistry | None:
        try:
            registry: RuleRegistry = self.app.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            return None
        return registry
