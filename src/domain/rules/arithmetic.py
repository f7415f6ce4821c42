"""Arithmetic nodes compiled into closures computing ``Decimal``s.

Every operation goes through an explicit ``decimal.Context``, so results do not depend on the thread's current
context: the same rule and inputs give the same numbers on every machine and in every replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from functools import reduce

from .context import EvaluationContext
from .getters import rule_getter
from .nodes import Add, AttrRef, Div, Max, Min, Mul, NumExpr, PercentOf, Round, Sub
from .operators import as_number
from .paths import resolve

Number = Callable[[EvaluationContext], Decimal]
ARITHMETIC = Context(prec=28, rounding=ROUND_HALF_EVEN)
ROUNDING = Context(prec=28, rounding=ROUND_HALF_UP)
_HUNDRED = Decimal(100)


class EvaluationFailed(Exception):
    """A value could not be computed (absent attribute, division by zero): the rule yields no effect."""


def compile_number(expr: NumExpr) -> Number:
    """A closure computing ``expr``; it raises ``EvaluationFailed`` (or ``ArithmeticError``), nothing else."""
    if isinstance(expr, Decimal):
        return lambda ctx: expr
    if isinstance(expr, AttrRef):
        return _attribute(expr.attr)
    if isinstance(expr, Add | Sub | Mul | Div):
        return _fold(expr.key, [compile_number(e) for e in getattr(expr, expr.key)])
    if isinstance(expr, Min | Max):
        pick = min if isinstance(expr, Min) else max
        operands = [compile_number(e) for e in getattr(expr, expr.key)]
        return lambda ctx: pick(o(ctx) for o in operands)
    if isinstance(expr, Round):
        value, exponent = compile_number(expr.round[0]), Decimal(1).scaleb(-expr.round[1])
        return lambda ctx: ROUNDING.quantize(value(ctx), exponent)
    if isinstance(expr, PercentOf):
        base, percent = _attribute(expr.percent_of), compile_number(expr.percent)
        return lambda ctx: ARITHMETIC.divide(ARITHMETIC.multiply(base(ctx), percent(ctx)), _HUNDRED)
    raise TypeError(f"not an arithmetic node: {expr!r}")


def _attribute(path: str) -> Number:
    get = rule_getter(resolve(path))

    def read(ctx: EvaluationContext) -> Decimal:
        number = as_number(get(ctx))
        if number is None:
            raise EvaluationFailed(f"{path} is absent or not a number")
        return number

    return read


def _fold(op: str, operands: Sequence[Number]) -> Number:
    step: Callable[[Decimal, Decimal], Decimal] = {
        "add": ARITHMETIC.add,
        "sub": ARITHMETIC.subtract,
        "mul": ARITHMETIC.multiply,
        "div": _divide,
    }[op]
    return lambda ctx: reduce(step, (o(ctx) for o in operands))


def _divide(a: Decimal, b: Decimal) -> Decimal:
    if b.is_zero():
        raise EvaluationFailed("division by zero")
    return ARITHMETIC.divide(a, b)
