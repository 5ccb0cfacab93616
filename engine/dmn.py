"""Decision tables (DMN 1.1 to 1.3): parse and lint a .dmn file before it is deployed. Every decision
of the file is one decision table with its own key (the decision's id); every problem names the
decision, the rule (its row) and the column.

The cells are SpiffWorkflow's DMN dialect, Python rather than FEEL: an input cell is a value (`"urgent"`,
`5`: compared with ==), the rest of a comparison (`>= 2`, `in ("a", "b")`), or an expression with `?`
standing for the input (`1.5 <= ? < 2`); `-` or an empty cell matches anything. Output cells are
expressions. The library's parser reads the table (`DMNParser`); each cell is compiled here exactly as
`DMNEngine.evaluate` will build it, by the sandbox, so a cell the sandbox refuses never deploys."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.parser.DMNParser import DMNParser
from SpiffWorkflow.dmn.specs.model import Decision, DecisionTable

from .parsing import MAX_BPMN_BYTES, SAFE_PARSER, ModelError, Problem
from .sandbox import SandboxError, compile_expression

DMN_NAMESPACES = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",  # DMN 1.1
    "http://www.omg.org/spec/DMN/20180521/MODEL/",  # DMN 1.2
    "https://www.omg.org/spec/DMN/20191111/MODEL/",  # DMN 1.3
)
HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "COLLECT")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
MAX_RULES = 1000
MAX_COLUMNS = 50
_VARIABLE_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
# `?` outside quotes, as DMNEngine.evaluate finds it.
_INPUT_MARK = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")


@dataclass
class ParsedDecision:
    """One decision table, ready to evaluate (dmn_hits.py)."""

    key: str
    name: str | None
    hit_policy: str
    aggregation: str | None
    table: DecisionTable
    outputs: list[str]  # the variable each output column sets (a dotted path sets a key of a map)
    priorities: dict[str, tuple] = field(default_factory=dict)  # output column id → its values, highest first

    @property
    def variables(self) -> set[str]:
        """The process variables the decision sets (the first part of each output's path)."""
        return {o.split(".")[0] for o in self.outputs}


def is_dmn(root_namespace: str | None) -> bool:
    return root_namespace in DMN_NAMESPACES


def parse_decisions(dmn_xml: str | bytes) -> list[ParsedDecision]:
    """Every decision of a DMN file, linted; ModelError lists every problem found."""
    raw = dmn_xml.encode() if isinstance(dmn_xml, str) else dmn_xml
    if len(raw) > MAX_BPMN_BYTES:
        raise ModelError([Problem(None, f"file is larger than {MAX_BPMN_BYTES} bytes")])
    try:
        root = etree.fromstring(raw, parser=SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ModelError([Problem(None, f"not well-formed XML: {exc}")]) from exc
    if root.getroottree().docinfo.doctype:
        raise ModelError([Problem(None, "a DOCTYPE is not allowed in DMN")])
    namespace = etree.QName(root).namespace
    if not is_dmn(namespace) or etree.QName(root).localname != "definitions":
        raise ModelError([Problem(None, f"not a DMN file: the root element must be dmn:definitions in one of "
                                        f"{', '.join(DMN_NAMESPACES)}")])
    nsmap = {"dmn": namespace}
    elements = root.findall("dmn:decision", namespaces=nsmap)
    if not elements:
        raise ModelError([Problem(None, "the file defines no decision")])
    parser = _DecisionParser(root, nsmap)
    decisions, problems, seen = [], [], set()
    for element in elements:
        key = (element.get("id") or "").strip()
        if key in seen:
            problems.append(Problem(key, "two decisions of the file have this id"))
        seen.add(key)
        found = list(_structure(element, key, nsmap))
        if found:
            problems += found
            continue
        try:
            decision = parser.decision_of(element)
        except ValidationException as exc:
            problems.append(Problem(key, str(exc).split("\n")[0]))
            continue
        except (KeyError, IndexError) as exc:
            problems.append(Problem(key, f"the decision table is incomplete ({exc})"))
            continue
        parsed, found = _lint(decision, element, nsmap)
        problems += found
        if parsed is not None:
            decisions.append(parsed)
    if problems:
        raise ModelError(problems)
    return decisions


class _DecisionParser(DMNParser):
    """The library's parser, one decision element at a time (its own `parse` takes the first only)."""

    def __init__(self, root, nsmap: dict[str, str]) -> None:
        super().__init__(None, root, nsmap)

    def decision_of(self, element) -> Decision:
        return self._parse_decision([element])


def _structure(element, key: str, nsmap: dict[str, str]) -> Iterator[Problem]:
    """What the library would misread or fail on with a stack trace: say it in words instead."""
    if not key or len(key) > 200:
        yield Problem(key[:60] or None, "a decision needs an id of 1 to 200 characters (it is the decision's key)")
        return
    if element.find("dmn:informationRequirement", namespaces=nsmap) is not None:
        yield Problem(key, "the decision requires other decisions; GridLoop evaluates one decision table at a "
                           "time: give it its inputs from process variables")
    tables = element.findall("dmn:decisionTable", namespaces=nsmap)
    if len(tables) != 1:
        yield Problem(key, "a decision must be one decision table (literal expressions and other kinds are not "
                           "evaluated)")
        return
    table = tables[0]
    policy = (table.get("hitPolicy") or "UNIQUE").upper()
    if policy not in HIT_POLICIES:
        yield Problem(key, f"hit policy {policy!r} is not supported; use one of {', '.join(HIT_POLICIES)}")
    aggregation = table.get("aggregation")
    if aggregation is not None and (policy != "COLLECT" or aggregation.upper() not in AGGREGATIONS):
        yield Problem(key, f"aggregation {aggregation!r} is not supported; COLLECT takes one of "
                           f"{', '.join(AGGREGATIONS)}")
    inputs = table.findall("dmn:input", namespaces=nsmap)
    outputs = table.findall("dmn:output", namespaces=nsmap)
    rules = table.findall("dmn:rule", namespaces=nsmap)
    if not outputs:
        yield Problem(key, "the decision table has no output column")
    if len(inputs) + len(outputs) > MAX_COLUMNS:
        yield Problem(key, f"more than {MAX_COLUMNS} columns in one decision table")
    if len(rules) > MAX_RULES:
        yield Problem(key, f"more than {MAX_RULES} rules in one decision table")
    for n, rule in enumerate(rules, start=1):
        cells = (len(rule.findall("dmn:inputEntry", namespaces=nsmap)),
                 len(rule.findall("dmn:outputEntry", namespaces=nsmap)))
        if cells != (len(inputs), len(outputs)):
            yield Problem(key, f"rule {n} has {cells[0]} input and {cells[1]} output cells; the table has "
                               f"{len(inputs)} input and {len(outputs)} output columns")
    entries = [c for r in rules for c in r if isinstance(c.tag, str) and c.tag.endswith(("inputEntry", "outputEntry"))]
    for column in (*inputs, *outputs, *rules, *entries):  # annotations and descriptions need none
        if not column.get("id"):
            yield Problem(key, f"every {etree.QName(column).localname} of the table needs an id")
            return


def _lint(decision: Decision, element, nsmap: dict[str, str]) -> tuple[ParsedDecision | None, list[Problem]]:
    key = decision.id
    table = decision.decisionTables[0]
    table.hit_policy = table.hit_policy.upper()
    aggregation = (element.find("dmn:decisionTable", namespaces=nsmap).get("aggregation") or "").upper() or None
    problems: list[Problem] = []

    def problem(message: str) -> None:
        problems.append(Problem(key, message))

    for column in table.inputs:
        label = column.label or column.id
        if not (column.expression or "").strip():
            problem(f"input {label!r} has no expression (the variable or expression it tests)")
        else:
            _compile(problem, f"input {label!r}", column.expression)
    outputs = [o.name or o.label for o in table.outputs]
    for column, name in zip(table.outputs, outputs, strict=True):
        if not name or not _VARIABLE_PATH.fullmatch(name):
            problem(f"output {column.label or column.id!r} needs a name that is a variable (or a dotted path such "
                    f"as 'severity.level'), not {name!r}")
    if len(set(outputs)) < len(outputs):
        problem("two output columns have the same name")
    for name in outputs:
        inside = [o for o in outputs if name and o and o.startswith(name + ".")]
        if inside:
            problem(f"output {name!r} is a variable and {inside[0]!r} a key inside it; use one or the other")
    priorities = _priorities(table, element, nsmap, problem) if table.hit_policy == "PRIORITY" else {}
    syntax = PythonScriptEngine()  # `validate` only: ast.parse, as DMNEngine uses it to read a cell
    for rule in table.rules:
        for entry in rule.inputEntries:
            for cell in entry.lhs:
                if cell is None or not cell.strip() or not (entry.input.expression or "").strip():
                    continue
                where = f"rule {rule.row_number}, input {entry.input.label or entry.input.id!r}"
                for source in _input_expressions(entry.input.expression, cell, syntax):
                    if source is None:
                        problem(f"{where}: {cell!r} is neither a value, a comparison such as '>= 2', nor an "
                                "expression with '?' for the input")
                    else:
                        _compile(problem, where, source)
        for entry in rule.outputEntries:
            where = f"rule {rule.row_number}, output {entry.output.name or entry.output.label!r}"
            if entry.text and entry.text.strip():
                _compile(problem, where, entry.text)
                values = priorities.get(entry.output.id)
                literal = _literal(entry.text)
                if values is not None and literal is not _NOT_LITERAL and literal not in values:
                    problem(f"{where}: {entry.text!r} is not one of the output's values {values!r}")
    if problems:
        return None, problems
    return ParsedDecision(key=key, name=decision.name or None, hit_policy=table.hit_policy, aggregation=aggregation,
                          table=table, outputs=outputs, priorities=priorities), []


def _priorities(table: DecisionTable, element, nsmap: dict[str, str], problem) -> dict[str, tuple]:
    """PRIORITY ranks a rule by its outputs' values, in the order each output column lists them
    (`outputValues`, highest first); every output column must list them."""
    found: dict[str, tuple] = {}
    for column in element.find("dmn:decisionTable", namespaces=nsmap).findall("dmn:output", namespaces=nsmap):
        text = column.findtext("dmn:outputValues/dmn:text", namespaces=nsmap)
        label = column.get("name") or column.get("label") or column.get("id")
        values = _literal(f"({text},)") if text and text.strip() else _NOT_LITERAL
        if values is _NOT_LITERAL or not values:
            problem(f"output {label!r}: a PRIORITY table lists each output's values, highest priority first "
                    "(outputValues, e.g. \"urgent\",\"high\",\"normal\")")
        else:
            found[column.get("id")] = cast(tuple, values)  # `(text,)` evaluates to a tuple
    return found


def _input_expressions(input_expression: str, cell: str, syntax) -> list[str | None]:
    """The expressions DMNEngine.evaluate builds for a cell (None: it cannot read the cell), given the
    input expression parenthesised as dmn_hits does."""
    input_expression = f"({input_expression})"
    marked = _INPUT_MARK.sub("dmninputexpr", cell)
    if "dmninputexpr" in marked:
        return [input_expression, marked]
    try:
        needs_eq = DMNEngine(None).needs_eq(syntax, cell)
    except SyntaxError:
        return [None]
    return [f"({input_expression}) == ({cell})" if needs_eq else input_expression + cell]


def _compile(problem, where: str, source: str) -> None:
    try:
        compile_expression(source)
    except SandboxError as exc:
        problem(f"{where}: {source.strip()!r} refused: {exc.reason}")


_NOT_LITERAL = object()


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL
