"""The small condition language of form fields ("required when", "shown when").

A rule compares form fields or process variables with literals: `review_result == 'invalid'`,
`handle_result in ('extension', 'return')`, `verified == False and rework_reason`, `not urgent`.
Being this small it is evaluated without the sandbox, cannot fail at run time, and translates
into JSON Schema's if/then so that a client can apply the same rule as the server."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Literal = str | int | float | bool | None


class RuleError(ValueError):
    """The rule uses something outside the language; the message says what."""


@dataclass(frozen=True)
class Rule:
    source: str
    tree: ast.expr

    @property
    def names(self) -> frozenset[str]:
        return frozenset(n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name))

    def holds(self, values: Mapping[str, Any]) -> bool:
        return bool(_eval(self.tree, values))

    def comparisons(self) -> list[tuple[str, list[Literal]]]:
        """Every (name, literals compared with it), for checking literals against a field's enum."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Compare):
                name, literals = _name_and_literals(node)
                found.append((name, literals))
        return found

    def json_schema(self) -> dict[str, Any] | None:
        """The rule as a JSON Schema that an object of values satisfies when the rule holds; None
        when it reads something other than the form's own fields (the client cannot know it)."""
        return _schema(self.tree)


def parse_rule(source: str) -> Rule:
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise RuleError(f"not a valid condition: {exc.msg}") from None
    _check(tree)
    return Rule(source=source.strip(), tree=tree)


_COMPARE = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _check(node: ast.expr) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand)
    elif isinstance(node, ast.Name):
        pass
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1 or not isinstance(node.ops[0], _COMPARE):
            raise RuleError("compare one name with ==, !=, in or not in")
        _name_and_literals(node)
    else:
        raise RuleError("use only names, literals, ==, !=, in, not in, and, or, not")


def _name_and_literals(node: ast.Compare) -> tuple[str, list[Literal]]:
    left, right = node.left, node.comparators[0]
    if isinstance(right, ast.Name) and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
        left, right = right, left
    if not isinstance(left, ast.Name):
        raise RuleError("a comparison needs a variable name on one side")
    if isinstance(node.ops[0], (ast.In, ast.NotIn)):
        if not isinstance(right, (ast.Tuple, ast.List, ast.Set)):
            raise RuleError("`in` takes a list of literals")
        return left.id, [_literal(e) for e in right.elts]
    return left.id, [_literal(right)]


def _literal(node: ast.expr) -> Literal:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    raise RuleError("compare with literal values only ('text', 1, True, None)")


def _eval(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, values)
    if isinstance(node, ast.Name):
        return values.get(node.id)
    assert isinstance(node, ast.Compare)
    name, literals = _name_and_literals(node)
    value, op = values.get(name), node.ops[0]
    if isinstance(op, ast.Eq):
        return _same(value, literals[0])
    if isinstance(op, ast.NotEq):
        return not _same(value, literals[0])
    inside = any(_same(value, lit) for lit in literals)
    return inside if isinstance(op, ast.In) else not inside


def _same(value: Any, literal: Literal) -> bool:
    """Equality that keeps True apart from 1 (JSON keeps them apart too)."""
    return (type(value) is type(literal) and value == literal) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        and isinstance(literal, (int, float)) and not isinstance(literal, bool) and value == literal)


def _schema(node: ast.expr) -> dict[str, Any] | None:
    if isinstance(node, ast.BoolOp):
        parts = [_schema(v) for v in node.values]
        if any(p is None for p in parts):
            return None
        return {"allOf" if isinstance(node.op, ast.And) else "anyOf": parts}
    if isinstance(node, ast.UnaryOp):
        inner = _schema(node.operand)
        return None if inner is None else {"not": inner}
    if isinstance(node, ast.Name):
        return {"properties": {node.id: {"not": {"enum": [False, None, "", 0]}}}, "required": [node.id]}
    assert isinstance(node, ast.Compare)
    name, literals = _name_and_literals(node)
    op = node.ops[0]
    inside = {"properties": {name: {"enum": literals}}, "required": [name]}
    return inside if isinstance(op, (ast.Eq, ast.In)) else {"not": inside}
