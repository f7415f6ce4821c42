"""The nodes of the rule language (RULES.md): numbers, durations, arithmetic and conditions, in pydantic.

Nodes are recognised by their key (``{"all": ...}``, ``{"attr": ...}``, ``{"add": ...}``), so every union here
is discriminated by a callable that looks at the keys. Its tags start with ``#`` so that ``parse_rule`` can
strip them from pydantic's error locations and report plain JSON pointers into the rule. Every model forbids
unknown keys, so a typo is refused instead of being silently ignored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    PlainSerializer,
    StrictInt,
    Tag,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .durations import parse_duration

TAG_MARK = "#"


def _to_decimal(value: Any) -> Decimal:
    # str(float) is the shortest text that reads back as the same float, i.e. the number the JSON said.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("expected a number")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("expected a finite number")
    return number


def _decimal_to_json(value: Decimal) -> int | float:
    # Written back as a JSON number (never a string) so that a stored definition parses again unchanged.
    return int(value) if value == value.to_integral_value() else float(value)


Num = Annotated[Decimal, BeforeValidator(_to_decimal), PlainSerializer(_decimal_to_json, when_used="json")]
"""A money or points amount: a JSON number parsed exactly as ``Decimal``."""


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
"""An ISO 8601 duration, kept as written; ``durations.parse_duration`` gives its ``timedelta``."""

Op = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "notIn", "contains",
    "startsWith", "endsWith", "eqIgnoreCase", "exists", "notExists",
]  # fmt: skip


class Node(BaseModel):
    """Base of every node: immutable, camelCase keys, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)
    key: ClassVar[str] = ""


def _keyed(keys: tuple[str, ...], number_tag: str | None = None) -> Any:
    """A discriminator recognising a node by the first of ``keys`` it has (or a bare number)."""

    def tag_of(value: Any) -> str | None:
        if isinstance(value, dict):
            return next((TAG_MARK + key for key in keys if key in value), None)
        if isinstance(value, Node):  # already parsed, e.g. a definition built in code
            return TAG_MARK + value.key if value.key in keys else None
        if number_tag and not isinstance(value, bool) and isinstance(value, int | float | Decimal):
            return number_tag
        return None

    expected = ("a number or " if number_tag else "") + "an object with one of the keys " + ", ".join(keys)
    return Discriminator(
        tag_of, custom_error_type="unknown_node", custom_error_message=f"expected {expected}"
    )


# --- arithmetic ---


class AttrRef(Node):
    """``{"attr": PATH}``: the numeric value of an attribute."""

    key: ClassVar[str] = "attr"
    attr: str


class Add(Node):
    key: ClassVar[str] = "add"
    add: list[NumExpr] = Field(min_length=2)


class Sub(Node):
    key: ClassVar[str] = "sub"
    sub: list[NumExpr] = Field(min_length=2)


class Mul(Node):
    key: ClassVar[str] = "mul"
    mul: list[NumExpr] = Field(min_length=2)


class Div(Node):
    key: ClassVar[str] = "div"
    div: list[NumExpr] = Field(min_length=2)


class Min(Node):
    key: ClassVar[str] = "min"
    min: list[NumExpr] = Field(min_length=1)


class Max(Node):
    key: ClassVar[str] = "max"
    max: list[NumExpr] = Field(min_length=1)


class Round(Node):
    """``{"round": [a, places]}``: half-up rounding to ``places`` decimals."""

    key: ClassVar[str] = "round"
    round: tuple[NumExpr, Annotated[StrictInt, Field(ge=0, le=18)]]


class PercentOf(Node):
    """``{"percentOf": PATH, "percent": p}``: p percent of a numeric attribute."""

    key: ClassVar[str] = "percentOf"
    percent_of: str
    percent: NumExpr


NumExpr = Annotated[
    Annotated[Num, Tag("#number")]
    | Annotated[AttrRef, Tag("#attr")]
    | Annotated[Add, Tag("#add")]
    | Annotated[Sub, Tag("#sub")]
    | Annotated[Mul, Tag("#mul")]
    | Annotated[Div, Tag("#div")]
    | Annotated[Min, Tag("#min")]
    | Annotated[Max, Tag("#max")]
    | Annotated[Round, Tag("#round")]
    | Annotated[PercentOf, Tag("#percentOf")],
    _keyed(("attr", "add", "sub", "mul", "div", "min", "max", "round", "percentOf"), number_tag="#number"),
]
"""A numeric value: a number or an arithmetic node."""

# --- conditions ---


class All(Node):
    """``{"all": [...]}``: every child holds."""

    key: ClassVar[str] = "all"
    all: list[Condition] = Field(min_length=1)


class Any_(Node):
    """``{"any": [...]}``: at least one child holds."""

    key: ClassVar[str] = "any"
    any: list[Condition] = Field(min_length=1)


class Not(Node):
    """``{"not": node}``."""

    key: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")


class Compare(Node):
    """``{"attr": PATH, "op": OP, "value": V}``: an attribute compared with a constant."""

    key: ClassVar[str] = "attr"
    attr: str
    op: Op
    value: JsonValue = None


class Measure(Node):
    """``{"op": OP, "value": n}``: how a count or sum compares."""

    op: Op
    value: JsonValue = None


class SumOf(Measure):
    """``{"of": "price"|"quantity", "op": OP, "value": n}``."""

    of: Literal["price", "quantity"]


class CartItems(Node):
    """``{"cartItems": ITEM_CONDITION, "count"|"sum": ...}``: over the session's cart items that match."""

    key: ClassVar[str] = "cartItems"
    cart_items: Condition
    count: Measure | None = None
    sum: SumOf | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> CartItems:
        if (self.count is None) == (self.sum is None):
            raise ValueError("a cartItems condition needs exactly one of count or sum")
        return self


class HistoryQuery(Node):
    """Which of the profile's recorded events to measure and how: ``count``, ``sum:<a>``, ``distinct:<a>``."""

    type: str
    within: Duration | None = None
    where: Condition | None = None
    measure: Annotated[str, Field(pattern=r"^(count|sum:.+|distinct:.+)$")]


class History(Node):
    """``{"history": QUERY, "op": OP, "value": V}``."""

    key: ClassVar[str] = "history"
    history: HistoryQuery
    op: Op
    value: JsonValue = None


Condition = Annotated[
    Annotated[All, Tag("#all")]
    | Annotated[Any_, Tag("#any")]
    | Annotated[Not, Tag("#not")]
    | Annotated[Compare, Tag("#attr")]
    | Annotated[CartItems, Tag("#cartItems")]
    | Annotated[History, Tag("#history")],
    _keyed(("all", "any", "not", "attr", "cartItems", "history")),
]
"""A condition node."""

for _model in (Add, Sub, Mul, Div, Min, Max, Round, PercentOf, All, Any_, Not, CartItems, HistoryQuery):
    _model.model_rebuild()
