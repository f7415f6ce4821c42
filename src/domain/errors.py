"""Domain errors: one hierarchy, mapped to HTTP once in ``api.errors``.

    DomainError
     ├── InvalidInput            400 — a value the client sent is wrong (carries JSON pointers)
     │    ├── InvalidTransition  400 — the session state machine refuses the move
     │    ├── UnknownEventType   400 — an event type the catalog does not define
     │    ├── AttributeInvalid   400 — an attribute undeclared or of the wrong type
     │    └── RuleInvalid        400 — a rule that does not type-check
     ├── NotFound                404
     ├── Conflict                409 — a state conflict (not mere concurrency: that is retried)
     └── Unauthorized / Forbidden  401 / 403

Each error carries a human message and a list of ``Problem``s; a problem may name the offending field with a
JSON pointer (RFC 6901) into the request body, which the API layer prefixes where needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: a title, details, and where (a JSON pointer), if anywhere."""

    title: str
    details: str = ""
    pointer: str | None = None
    parameter: str | None = None


def escape_pointer_token(token: str | int) -> str:
    """Escape one reference token of a JSON pointer (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """Build a JSON pointer from tokens: ``pointer("attributes", "url") == "/attributes/url"``."""
    return "".join("/" + escape_pointer_token(t) for t in tokens)


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems if problems is not None else [Problem(title=message)]

    def prefixed(self, prefix: str) -> DomainError:
        """The same error with every pointer prefixed (e.g. ``/customerSession``)."""
        self.problems = [
            Problem(p.title, p.details, prefix + p.pointer if p.pointer is not None else None, p.parameter)
            for p in self.problems
        ]
        return self


class InvalidInput(DomainError):
    """The client sent something the domain refuses."""

    @classmethod
    def at(cls, ptr: str, message: str, title: str = "Invalid value") -> Self:
        return cls(message, [Problem(title=title, details=message, pointer=ptr)])


class InvalidTransition(InvalidInput):
    """A session state change the state machine does not allow."""


class UnknownEventType(InvalidInput):
    """An event type the attribute catalog does not define (or a reserved one)."""


class AttributeInvalid(InvalidInput):
    """An attribute that is undeclared, or whose value does not fit its declared type."""


class RuleInvalid(InvalidInput):
    """A rule that does not parse or does not type-check against the catalog."""


class NotFound(DomainError):
    """The thing asked for does not exist."""


class Conflict(DomainError):
    """A state conflict the client must resolve (e.g. an idempotency key reused with another body)."""


class Unauthorized(DomainError):
    """No credentials, or credentials that are not known."""


class Forbidden(DomainError):
    """Credentials of a role that may not do this."""
