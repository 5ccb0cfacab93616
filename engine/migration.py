"""Moving running instances to another version of their process (an administrator's action).

`plan` maps the elements of the source version to the target's and looks at the instances a
selection picks (a definition, business keys or instance ids; a bounded batch): it is refused, with
reasons per element, if any of them waits where moving is unsafe (engine/migration_plan.py).
`execute` then moves each instance in its own locked change: the same tasks (ids, data, timer
deadlines to the second, `next_wakeup_at`), human-task rows with their assignments and claims,
subscriptions, and one audit event on the instance's chain with the versions and the mapping. A
refused plan changes nothing; an instance that fails while the batch runs is reported, and the
others go on."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, select, update

from . import audit
from .change import LOCK_BY_ID
from .db import Prepared
from .errors import Conflict, EngineError, InvalidInput, NotFound
from .migration_plan import Plan, active_specs, build, instance_problems, needs_workflow, spec_target
from .models import HumanTask, ProcessDefinition, ProcessInstance
from .parsing import ParsedModel
from .retarget import retarget
from .runtime import Runtime
from .timers import timer_deadlines

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_MESSAGES = 20  # per element in a refusal: the first ones, and how many more
PI = cast(Table, ProcessInstance.__table__)
PD = cast(Table, ProcessDefinition.__table__)
HT = cast(Table, HumanTask.__table__)
_MOVE = Prepared(update(PI).where(PI.c.id == bindparam("row_id")).values(
    definition_id=bindparam("definition_id"), state=bindparam("state"), revision=bindparam("revision"),
    updated_at=bindparam("updated_at"), audit_head=bindparam("audit_head")))
_OPEN_TASKS = Prepared(select(HT.c.id, HT.c.element_id, HT.c.name, HT.c.candidate_role, HT.c.form_key)
                       .where(HT.c.instance_id == bindparam("instance_id"), HT.c.status == "open"))
_RELABEL_TASK = Prepared(update(HT).where(HT.c.id == bindparam("task_id")).values(
    element_id=bindparam("element_id"), name=bindparam("name"), candidate_role=bindparam("candidate_role"),
    form_key=bindparam("form_key")))
_CHILD_ELEMENT = Prepared(update(PI).where(PI.c.parent_instance_id == bindparam("parent_id"),
                                           PI.c.parent_element_id == bindparam("before"))
                          .values(parent_element_id=bindparam("after")))


@dataclass(frozen=True)
class Selection:
    """Which running instances of the source version: all of them, or those with these business
    keys, or exactly these ids; at most `limit` per call (oldest first)."""

    instance_ids: Sequence[str] | None = None
    business_keys: Sequence[str] | None = None
    limit: int = MAX_BATCH


@dataclass
class Version:
    id: int
    key: str
    version: int
    suspended: bool


@dataclass
class Outcome:
    plan: Plan
    source: Version
    target: Version
    migrated: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # {instance_id, message, problems}
    remaining: int = 0  # running instances of the selection still on the source version


@dataclass
class _Prepared:
    plan: Plan
    source: Version
    target: Version
    source_model: ParsedModel
    target_model: ParsedModel
    batch: list[str]


def plan(rt: Runtime, source_id: int, target_id: int, overrides: Mapping[str, str] | None = None,
         selection: Selection | None = None) -> tuple[Plan, Version, Version]:
    """The plan and its verdict for the instances `selection` picks (default: every running instance
    of the source version, up to the batch limit)."""
    p = _prepare(rt, source_id, target_id, overrides, selection or Selection())
    return p.plan, p.source, p.target


def execute(rt: Runtime, source_id: int, target_id: int, actor: str, overrides: Mapping[str, str] | None = None,
            selection: Selection | None = None) -> Outcome:
    """Validate, then move each instance of the batch in its own change. A refused plan raises
    InvalidInput naming every element (and instance) at fault, with nothing changed."""
    selection = selection or Selection()
    p = _prepare(rt, source_id, target_id, overrides, selection)
    if not p.plan.valid:
        raise InvalidInput("the migration plan is refused: nothing was changed", fields=p.plan.problems,
                           sourceDefinitionId=source_id, targetDefinitionId=target_id)
    outcome = Outcome(plan=p.plan, source=p.source, target=p.target)
    names = {n: spec_target(n, p.source_model, p.target_model, p.plan.mapping) for n in p.source_model.spec.task_specs}
    for instance_id in p.batch:
        try:
            migrate_one(rt, p, instance_id, names, actor, overrides or {})
        except EngineError as exc:
            outcome.failed.append({"instance_id": instance_id, "message": exc.message, "problems": exc.fields})
        except Exception as exc:  # one instance's trouble (a lock timeout, a broken state) stops no other
            log.exception("instance migration failed", extra={"instance_id": instance_id})
            outcome.failed.append({"instance_id": instance_id, "message": f"{type(exc).__name__}: {exc}"})
        else:
            outcome.migrated.append(instance_id)
    with rt.db.read() as conn:
        outcome.remaining = conn.execute(_selected(source_id, selection, count=True)).scalar_one()
    return outcome


def _prepare(rt: Runtime, source_id: int, target_id: int, overrides: Mapping[str, str] | None,
             selection: Selection) -> _Prepared:
    if not 1 <= selection.limit <= MAX_BATCH:
        raise InvalidInput(f"a batch takes 1 to {MAX_BATCH} instances", fields=["limit"])
    with rt.db.read() as conn:
        source = _version(conn, source_id, "sourceDefinitionId")
        target = _version(conn, target_id, "targetDefinitionId")
        if source.key != target.key:
            raise InvalidInput(f"both versions must be of one process ('{source.key}' and '{target.key}')",
                               fields=["targetDefinitionId"])
        if source.id == target.id:
            raise InvalidInput("the target is the source version itself", fields=["targetDefinitionId"])
        source_model = rt.specs.get(rt.db, source.id, session=conn)
        target_model = rt.specs.get(rt.db, target.id, session=conn)
        the_plan = build(source_model, target_model, source.id, target.id, overrides)
        if target.suspended:
            the_plan.refuse("targetDefinitionId", f"version {target.version} of '{target.key}' is suspended; "
                                                  "activate it first")
        rows = conn.execute(_selected(source.id, selection)).all()
    _check_selection(the_plan, source, selection, [r.id for r in rows])
    for row in rows:
        _look_at(rt, the_plan, source_model, target_model, row.id, row.state)
    return _Prepared(the_plan, source, target, source_model, target_model, [r.id for r in rows])


def _version(conn: Connection, definition_id: int, name: str) -> Version:
    row = conn.execute(select(PD.c.id, PD.c.key, PD.c.version, PD.c.suspended)
                       .where(PD.c.id == definition_id)).first()
    if row is None:
        raise NotFound(f"process definition {definition_id} does not exist", fields=[name])
    return Version(row.id, row.key, row.version, bool(row.suspended))


def _selected(source_id: int, selection: Selection, *, count: bool = False):
    where = [PI.c.definition_id == source_id, PI.c.status == "running"]
    if selection.instance_ids is not None:
        where.append(PI.c.id.in_(list(selection.instance_ids)))
    if selection.business_keys is not None:
        where.append(PI.c.business_key.in_(list(selection.business_keys)))
    if count:
        return select(func.count()).select_from(PI).where(*where)
    return (select(PI.c.id, PI.c.state).where(*where).order_by(PI.c.started_at, PI.c.id).limit(selection.limit))


def _check_selection(the_plan: Plan, source: Version, selection: Selection, found: list[str]) -> None:
    """Ids asked for by name must all be running instances of the source version."""
    if selection.instance_ids is not None and len(selection.instance_ids) <= selection.limit:
        missing = sorted(set(selection.instance_ids) - set(found))
        for instance_id in missing[:MAX_MESSAGES]:
            the_plan.refuse("processInstanceIds", f"{instance_id} is not a running instance of version "
                                                  f"{source.version} of '{source.key}'")


def _look_at(rt: Runtime, the_plan: Plan, source: ParsedModel, target: ParsedModel, instance_id: str,
             state: str) -> None:
    """Count where one instance waits, and refuse the plan for what is unsafe there."""
    the_plan.instances += 1
    active = active_specs(json.loads(state))
    for name in active:
        element = getattr(source.spec.task_specs.get(name), "bpmn_id", None)
        if element in the_plan.elements:
            the_plan.elements[element].waiting += 1
    workflow = rt.serializer.loads(state, source.spec, source.subprocess_specs) \
        if needs_workflow(the_plan, source, active) else None
    for element, problem in instance_problems(the_plan, source, target, active, workflow):
        messages = the_plan.problems.setdefault(element, [])
        if problem in messages:
            continue
        if workflow is not None and problem.startswith("the value"):
            problem = f"instance {instance_id}: {problem}"
        if len(messages) < MAX_MESSAGES:
            messages.append(problem)


def migrate_one(rt: Runtime, p: _Prepared, instance_id: str, names: Mapping[str, str | None], actor: str,
                overrides: Mapping[str, str]) -> None:
    """One instance, under its lock, in one transaction: checked again (it may have moved on since
    the plan looked), re-targeted, written; its timer deadlines must come out exactly as they were."""
    with rt.db.begin() as conn:
        found = rt.db.rows(conn, LOCK_BY_ID, {"lock_id": instance_id})
        if not found:
            raise NotFound(f"process instance {instance_id} does not exist")
        row = found[0]
        if row["status"] != "running" or row["definition_id"] != p.source.id:
            raise Conflict(f"the instance is no longer a running instance of version {p.source.version}")
        active = active_specs(json.loads(row["state"]))
        workflow = rt.serializer.loads(row["state"], p.source_model.spec, p.source_model.subprocess_specs)
        problems = instance_problems(p.plan, p.source_model, p.target_model, active, workflow)
        if problems:
            fields: dict[str, list[str]] = {}
            for element, problem in problems:
                fields.setdefault(element, []).append(problem)
            raise InvalidInput("the instance now waits where moving it is unsafe", fields=fields)
        deadlines = sorted(timer_deadlines(workflow))
        waiting = {name: names.get(name) for name in active}
        retarget(workflow, p.target_model.spec, p.target_model.subprocess_specs, names)
        state = rt.serializer.dumps(workflow)
        moved = rt.serializer.loads(state, p.target_model.spec, p.target_model.subprocess_specs)
        if sorted(timer_deadlines(moved)) != deadlines:
            raise InvalidInput("a timer deadline would change; the instance was not moved")
        now = rt.clock.now()
        _relabel(rt, conn, p, instance_id, moved)
        mapping = {_element(p.source_model, n): _element(p.target_model, t) for n, t in waiting.items()}
        draft = audit.AuditDraft(action="instance.migrated", actor=actor, at=now, instance_id=instance_id, details={
            "before": {"definitionId": p.source.id, "version": p.source.version},
            "after": {"definitionId": p.target.id, "version": p.target.version},
            "mapping": {k: v for k, v in mapping.items() if k}, "overrides": dict(overrides)})
        _rename_calls(rt, conn, instance_id, mapping, p.source_model)
        rows, head = audit.chain_rows(rt.audit_keys, instance_id, row["audit_head"] or audit.GENESIS, [draft])
        rt.db.run(conn, _MOVE, {"row_id": instance_id, "definition_id": p.target.id, "state": state,
                                "revision": (row["revision"] or 0) + 1, "updated_at": now, "audit_head": head})
        rt.db.run(conn, audit.INSERT, rows)


def _element(model: ParsedModel, name: str | None) -> str | None:
    spec = model.spec.task_specs.get(name or "")
    return getattr(spec, "bpmn_id", None) or name


def _relabel(rt: Runtime, conn: Connection, p: _Prepared, instance_id: str, moved) -> None:
    """Open human tasks follow their element (id, name, lane, form key); who holds them stays."""
    from .spiff_specs import find_task

    for ht in rt.db.rows(conn, _OPEN_TASKS, {"instance_id": instance_id}):
        task = find_task(moved, ht["id"])
        if task is None:
            continue
        spec = task.task_spec
        props = (getattr(spec, "extensions", None) or {}).get("properties", {})
        after = {"element_id": spec.bpmn_id or spec.name, "name": spec.bpmn_name,
                 "candidate_role": spec.lane or ht["candidate_role"], "form_key": props.get("formKey", ht["form_key"])}
        if any(after[k] != ht[k] for k in after):
            rt.db.run(conn, _RELABEL_TASK, {"task_id": ht["id"], **after})


def _rename_calls(rt: Runtime, conn: Connection, instance_id: str, mapping: Mapping[str | None, str | None],
                  source: ParsedModel) -> None:
    """Children of a waiting call activity that was renamed name their caller's new element."""
    for before, after in mapping.items():
        if after and before != after and type(source.spec.task_specs.get(before)).__name__ == "CallActivity":
            rt.db.run(conn, _CHILD_ELEMENT, {"parent_id": instance_id, "before": before, "after": after})
