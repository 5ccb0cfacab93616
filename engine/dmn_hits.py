"""Evaluate a decision table against a task's data, with the hit policies of DMN 1.3 that GridLoop
supports. SpiffWorkflow's `DMNEngine` reads each cell (a value, a comparison, an expression with `?`)
and evaluates it through the workflow's script engine, that is our sandbox, one budget per cell as
for any condition; the whole table gets the wall-clock budget of one script (`MAX_SECONDS`). Which
rules count and what they give is decided here, because the library knows UNIQUE (taking the first
match unchecked) and COLLECT only.

Every output column is set, whatever the policy: None when no rule matched (COLLECT: an empty
list; COUNT: 0)."""

from __future__ import annotations

import json
import time
from typing import Any

from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine

from .dmn import ParsedDecision
from .errors import ProcessError
from .process_errors import original_error
from .sandbox import MAX_SECONDS, SandboxLimitError

_SHOWN = 60  # characters of a value quoted in a message


class DecisionFailed(Exception):
    """The table cannot give an answer for these inputs; the message is for the modeller."""


def evaluate(decision: ParsedDecision, task) -> dict[str, Any]:
    """The outputs of `decision` for `task`'s data, by output name (dotted names not yet nested)."""
    engine = DMNEngine(decision.table)
    deadline = time.monotonic() + MAX_SECONDS
    matched = []
    for rule in decision.table.rules:
        if _matches(engine, rule, task):
            matched.append(rule)
            if decision.hit_policy == "FIRST":
                break
        if time.monotonic() > deadline:
            raise DecisionFailed(f"the table was stopped after {MAX_SECONDS:g} s at rule {rule.row_number} "
                                 "(the budget of one script)")
    policy = decision.hit_policy
    if policy == "COLLECT":
        return _collect(decision, [_outputs(decision, r, task) for r in matched])
    if policy == "UNIQUE" and len(matched) > 1:
        raise DecisionFailed(f"rules {_rows(matched)} all match{_for_inputs(decision, task)}, but a UNIQUE table "
                             "allows only one; make the rules exclusive, or use the hit policy FIRST or PRIORITY")
    if not matched:
        return {name: None for name in decision.outputs}
    if policy == "ANY":
        results = [_outputs(decision, r, task) for r in matched]
        for rule, result in zip(matched[1:], results[1:], strict=True):
            if result != results[0]:
                differ = next(n for n in decision.outputs if result[n] != results[0][n])
                raise DecisionFailed(
                    f"rules {matched[0].row_number} and {rule.row_number} both match{_for_inputs(decision, task)} "
                    f"but give different values for {differ!r} ({_show(results[0][differ])} and "
                    f"{_show(result[differ])}); in an ANY table every matching rule must give the same output")
        return results[0]
    if policy == "PRIORITY":
        ranked = [(_rank(decision, r, result), r.row_number, result)
                  for r in matched for result in [_outputs(decision, r, task)]]
        return min(ranked, key=lambda item: (item[0], item[1]))[2]
    return _outputs(decision, matched[0], task)  # FIRST, or the one rule of a UNIQUE table


def _matches(engine: DMNEngine, rule, task) -> bool:
    """The input expression goes in parenthesised: the library writes `input + cell`, which makes
    `a if c else b` and `>= 2` into `a if c else (b >= 2)`."""
    for entry in rule.inputEntries:
        for cell in entry.lhs:
            if cell is None or not cell.strip():
                continue
            try:
                if not engine.evaluate(f"({entry.input.expression})", cell, task):
                    return False
            except Exception as exc:
                raise _cell_failed(exc, f"rule {rule.row_number}, input {entry.input.label or entry.input.id!r} "
                                        f"({cell.strip()!r})") from exc
    return True


def _outputs(decision: ParsedDecision, rule, task) -> dict[str, Any]:
    script_engine = task.workflow.script_engine
    found = {}
    for name, entry in zip(decision.outputs, rule.outputEntries, strict=True):
        text = (entry.text or "").strip()
        try:
            value = script_engine.evaluate(task, text) if text else None
        except Exception as exc:
            raise _cell_failed(exc, f"rule {rule.row_number}, output {name!r} ({text!r})") from exc
        try:
            found[name] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            raise DecisionFailed(f"rule {rule.row_number}, output {name!r} gives {_show(value)}, which is not "
                                 "a plain value (text, number, true/false, list or map)") from exc
    return found


def _rank(decision: ParsedDecision, rule, result: dict[str, Any]) -> tuple[int, ...]:
    """Lower is higher priority: the place of each output's value in its column's list."""
    ranks = []
    for column, name in zip(decision.table.outputs, decision.outputs, strict=True):
        values = decision.priorities.get(column.id, ())
        if result[name] not in values:
            raise DecisionFailed(f"rule {rule.row_number} gives {_show(result[name])} for {name!r}, which is not "
                                 f"one of the values a PRIORITY table ranks ({', '.join(map(_show, values))})")
        ranks.append(values.index(result[name]))
    return tuple(ranks)


def _collect(decision: ParsedDecision, results: list[dict[str, Any]]) -> dict[str, Any]:
    collected = {name: [r[name] for r in results] for name in decision.outputs}
    if decision.aggregation is None:
        return collected
    return {name: _aggregate(decision.aggregation, name, values) for name, values in collected.items()}


def _aggregate(aggregation: str, name: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if aggregation == "COUNT":
        return len(present)
    if not present:
        return None
    if aggregation == "SUM":
        wrong = next((v for v in present if isinstance(v, bool) or not isinstance(v, int | float)), None)
        if wrong is not None:
            raise DecisionFailed(f"SUM adds numbers, but a matching rule gives {_show(wrong)} for {name!r}")
        return sum(present)
    try:
        return min(present) if aggregation == "MIN" else max(present)
    except TypeError as exc:
        raise DecisionFailed(f"{aggregation} compares values of one kind, but the matching rules give "
                             f"{', '.join(_show(v) for v in present)} for {name!r}") from exc


def _cell_failed(exc: Exception, where: str) -> DecisionFailed:
    original = original_error(exc)
    if isinstance(original, SandboxLimitError):
        return DecisionFailed(f"{where} was stopped: {original}")
    if isinstance(original, NameError):
        name = getattr(original, "name", None) or str(original)
        return DecisionFailed(f"{where} uses '{name}', which this case does not have")
    if isinstance(original, ZeroDivisionError):
        return DecisionFailed(f"{where} divides by zero")
    if isinstance(original, TypeError):
        return DecisionFailed(f"{where} combines values that do not go together (e.g. text and a number)")
    if isinstance(original, KeyError):
        return DecisionFailed(f"{where} looks up {original}, which is not there")
    return DecisionFailed(f"{where} failed: {str(original).strip() or type(original).__name__}")


def _rows(rules: list) -> str:
    rows = [str(r.row_number) for r in rules]
    return f"{', '.join(rows[:-1])} and {rows[-1]}"


def _for_inputs(decision: ParsedDecision, task) -> str:
    """' for Ratio = 2.5, Kind = "smoke"': the inputs as the table saw them (best effort, for people)."""
    shown = []
    for column in decision.table.inputs:
        try:
            value = task.workflow.script_engine.evaluate(task, column.expression)
        except Exception:
            continue
        shown.append(f"{column.label or column.expression} = {_show(value)}")
    return f" for {', '.join(shown)}" if shown else ""


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def failure(decision_key: str, version: int, policy: str, exc: DecisionFailed, element: str) -> ProcessError:
    """The error a business rule task fails with: which decision and version, and why in words."""
    return ProcessError(f"decision '{decision_key}' (version {version}, hit policy {policy}): {exc}",
                        element=element, decision=decision_key, decisionVersion=version)
