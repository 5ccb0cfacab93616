"""Checks of a model's forms and of the names its expressions use.

Every process with forms gets the form checks (reference kinds known, rules over known names,
gateway conditions that compare an enum field with a value it can never have). A process that
declares a start form is *typed*: its variables are exactly what its forms, scripts and operations
define, so the deploy also refuses an expression naming anything else (with the nearest known
name), a user task without a form, and an exclusive gateway with a default flow (in a typed process
every outcome is a named condition; a default turns a typo into a decision)."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins import ScriptTaskMixin
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.specs.MultiChoice import MultiChoice

from .form_rules import RuleError, parse_rule
from .forms import FieldType, Form
from .references import ReferenceKind
from .sandbox import DEFAULT_HELPERS, sandbox_builtin_names
from .spiff_specs import ServiceTask as OperationTask

KnownReference = Callable[[str], ReferenceKind | None]
# User-task properties that are expressions over the process variables (formKey is a plain name).
PROPERTY_EXPRESSIONS = ("priority", "dueDate", "followUpDate", "candidateScope", "assignee")
TIMER = "timer expression"
MESSAGE_CORRELATION = "message correlation"


@dataclass(frozen=True)
class Expression:
    element: str
    what: str
    source: str
    mode: str  # eval | exec


def element_of(ts) -> str:
    return getattr(ts, "bpmn_id", None) or ts.name


def expressions(ts) -> Iterator[Expression]:
    """Every piece of Python in a task spec, with what it is (for messages)."""
    element = element_of(ts)

    def expr(what: str, source: object, mode: str = "eval") -> Iterator[Expression]:
        if isinstance(source, str) and source.strip():
            yield Expression(element, what, source, mode)

    if isinstance(ts, OperationTask):
        for name, param in ts.operation_params.items():
            yield from expr(f"parameter '{name}'", param.get("value"))
    if isinstance(ts, ScriptTaskMixin):
        yield from expr("script", ts.script, "exec")
    properties = (getattr(ts, "extensions", None) or {}).get("properties", {})
    for name in PROPERTY_EXPRESSIONS:
        yield from expr(f"property {name}", properties.get(name))
    for attr in ("prescript", "postscript"):
        yield from expr(attr, getattr(ts, attr, None), "exec")
    for target, source in conditions(ts):
        yield from expr(f"condition to '{target}'", source)
    definition = getattr(ts, "event_definition", None)
    for inner in getattr(definition, "event_definitions", [definition] if definition is not None else []):
        for prop in getattr(inner, "correlation_properties", None) or []:
            yield from expr(MESSAGE_CORRELATION, prop.retrieval_expression)  # read from the message's payload
        for prop in getattr(inner, "process_correlations", None) or []:
            yield from expr("correlation", prop.retrieval_expression)
        what = TIMER if isinstance(inner, TimerEventDefinition) else "payload"
        yield from expr(what, getattr(inner, "expression", None))
    for attr in ("cardinality", "data_input", "condition"):
        yield from expr(attr, getattr(ts, attr, None))


def conditions(ts) -> Iterator[tuple[str, str | None]]:
    """(target, condition source) of each conditional outgoing flow of a gateway."""
    if isinstance(ts, MultiChoice):
        for condition, target in ts.cond_task_specs:
            yield target, condition.args[0] if condition is not None and getattr(condition, "args", None) else None


def defined_names(ts) -> set[str]:
    """The variables a task spec sets (apart from forms)."""
    names: set[str] = set()
    if isinstance(ts, OperationTask) and ts.result_variable:
        names.add(ts.result_variable)
    if isinstance(ts, ScriptTaskMixin) and ts.script:
        names |= _assigned(ts.script)
    for attr in ("prescript", "postscript"):
        if getattr(ts, attr, None):
            names |= _assigned(getattr(ts, attr))
    properties = (getattr(ts, "extensions", None) or {}).get("properties", {})
    names |= {n.strip() for n in (properties.get("outputs") or "").split(",") if n.strip()}
    definition = getattr(ts, "event_definition", None)
    for inner in getattr(definition, "event_definitions", [definition] if definition is not None else []):
        for attr in ("message_var", "variable"):  # a message's, an error's, a signal's or an escalation's
            if isinstance(getattr(inner, attr, None), str):
                names.add(getattr(inner, attr))
    for attr in ("input_item", "output_item", "data_output"):
        item = getattr(ts, attr, None)
        name = getattr(item, "bpmn_id", None) or (item if isinstance(item, str) else None)
        if name:
            names.add(name)
    return names


def _assigned(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _loaded(e: Expression) -> set[str]:
    """Free names an expression reads (names a script assigns before reading them are its own)."""
    try:
        tree = ast.parse(e.source.strip(), mode=e.mode)
    except SyntaxError:
        return set()  # the compile check reports it
    # names the expression binds itself: assignments, comprehension targets, walrus, function
    # arguments and names, `except ... as` names
    local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in (*n.posonlyargs, *n.args, *n.kwonlyargs, *filter(None, (n.vararg, n.kwarg)))}
    local |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ExceptHandler)) and n.name}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - local


def _read_before_set(source: str) -> set[str]:
    """Names a script reads (or updates with +=) before it first assigns them, in source order. An
    assignment sets its targets at the end of its statement (`x = x + 1` reads x first)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    first_set: dict[str, tuple[int, int, int]] = {}
    first_read: dict[str, tuple[int, int, int]] = {}

    def note(table: dict[str, tuple[int, int, int]], name: str, where: tuple[int, int, int]) -> None:
        table[name] = min(table.get(name, where), where)

    assigned = set()  # Name nodes set by an assignment statement: they count at its end
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            end = (node.end_lineno or node.lineno, node.end_col_offset or 0, 1)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        note(first_set, name.id, end)
                        assigned.add(id(name))
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            note(first_read, node.target.id, (node.lineno, node.col_offset, 0))
        elif isinstance(node, ast.FunctionDef):
            note(first_set, node.name, (node.lineno, node.col_offset, 1))
        elif isinstance(node, ast.Name) and id(node) not in assigned:
            where = (node.lineno, node.col_offset, 1)
            note(first_set if isinstance(node.ctx, ast.Store) else first_read, node.id, where)
    bound = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)
             if isinstance(n, ast.Name)}  # comprehension variables are their own scope
    bound |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
              for a in (*n.posonlyargs, *n.args, *n.kwonlyargs, *filter(None, (n.vararg, n.kwarg)))}
    return {name for name, at in first_read.items()
            if name not in bound and (name not in first_set or at < first_set[name])}


@dataclass(frozen=True)
class Finding:
    element: str | None
    message: str


def lint_forms(processes: list, forms: Mapping[str, Form], start_form: Form | None,
               known_reference: KnownReference) -> Iterator[Finding]:
    """The checks of module docstring; `processes` are the parsed specs (the process and its
    subprocesses), `forms` the forms by element id."""
    all_forms = [*forms.values(), *([start_form] if start_form else [])]
    for form in all_forms:
        yield from _reference_fields(form, known_reference)
    specs = [ts for p in processes for ts in p.task_specs.values()]
    set_elsewhere = set().union(*(defined_names(ts) for ts in specs)) if specs else set()
    enums = {f.name: f for form in all_forms for f in form.fields
             if f.type in (FieldType.ENUM, FieldType.BOOLEAN) and f.name not in set_elsewhere}
    for ts in specs:
        yield from _conditions_against_enums(ts, enums)
    if start_form is None:
        return
    base = set(DEFAULT_HELPERS) | sandbox_builtin_names() | {"True", "False", "None"}
    for form in all_forms:
        base |= form.names
    for process in processes:
        base |= set(getattr(process, "data_objects", None) or {})
    own = {element_of(ts): defined_names(ts) for ts in specs}
    known = base.union(*own.values())
    for ts in specs:
        element = element_of(ts)
        if getattr(ts, "manual", False) and element not in forms:
            yield Finding(element, "this process declares a start form, so every user task needs a "
                                   "<gridloop:form> (an empty one if it takes nothing)")
        if isinstance(ts, ExclusiveGateway) and ts.default_task_spec is not None:
            yield Finding(element, "exclusive gateways of a process with forms have no default flow: give every "
                                   "outgoing flow a condition, so that an unexpected value stops instead of "
                                   f"taking '{ts.default_task_spec}'")
        for e in expressions(ts):
            if e.what == MESSAGE_CORRELATION:
                continue  # evaluated against the incoming message, not the process's variables
            for name in sorted(_loaded(e) - known):
                yield Finding(element, f"{e.what} uses {name!r}, which no form, script or operation of this "
                                       f"process defines{_nearest(name, known)}")
            if e.mode == "exec":  # `total = total + 1` where only this script sets `total`
                elsewhere = base.union(*(names for el, names in own.items() if el != element))
                for name in sorted(_read_before_set(e.source) - elsewhere):
                    yield Finding(element, f"{e.what} reads {name!r} before setting it, and nothing else of "
                                           f"this process sets it{_nearest(name, elsewhere)}")
    for form in all_forms:
        for f in form.fields:
            rule_names = set().union(*(rule.names for _kind, rule in f.rules()))
            arg_names = _variable_args(f, known_reference)
            for name in sorted((rule_names | arg_names) - known):
                yield Finding(form.element_id, f"field {f.name!r} uses {name!r}, which this process does not "
                                               f"define{_nearest(name, known)}")


def _nearest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _variable_args(f, known_reference: KnownReference) -> set[str]:
    kind = known_reference(f.ref) if f.ref else None
    if kind is None:
        return set()
    return {v for k, v in f.ref_args.items() if k in kind.variables}


def _reference_fields(form: Form, known_reference: KnownReference) -> Iterator[Finding]:
    for f in form.fields:
        if f.type is not FieldType.REFERENCE:
            continue
        kind = known_reference(f.ref or "")
        if kind is None:
            yield Finding(form.element_id, f"field {f.name!r}: unknown reference kind {f.ref!r}")
            continue
        allowed = kind.variables | kind.literals
        for arg in sorted(set(f.ref_args) - allowed):
            yield Finding(form.element_id, f"field {f.name!r}: a {kind.name} reference has no attribute {arg!r}"
                                           f" (it takes: {', '.join(sorted(allowed)) or 'none'})")
        for arg in sorted(kind.required - set(f.ref_args)):
            yield Finding(form.element_id, f"field {f.name!r}: a {kind.name} reference needs the attribute {arg!r}")


def _conditions_against_enums(ts, enums: Mapping) -> Iterator[Finding]:
    for target, source in conditions(ts):
        if not source:
            continue
        try:
            rule = parse_rule(source)
        except RuleError:
            continue  # richer Python: not a plain comparison, nothing to check here
        for name, literals in rule.comparisons():
            f = enums.get(name)
            if f is None:
                continue
            allowed = f.values if f.type is FieldType.ENUM else [True, False]
            for literal in literals:
                if literal not in allowed or isinstance(literal, bool) != (f.type is FieldType.BOOLEAN):
                    shown = ", ".join(repr(v) for v in allowed)
                    yield Finding(element_of(ts), f"the condition to '{target}' compares {name} with {literal!r}, "
                                                  f"which its form never allows ({shown})")
