"""task: query, get, claim, unclaim, delegate, complete — each scoped to what the caller may see:
an inspector sees the tasks offered to their role in their grid and those assigned to them."""

from flask import Blueprint, jsonify
from marshmallow import ValidationError

from engine import instances, tasks
from engine.errors import NotAllowed, NotFound
from engine.form_schema import json_schema
from engine.models import HumanTask
from engine.tasks import TaskQuery
from engine.visibility import task_visible
from workflows import patrol_rounds
from workflows.evidence import missing_evidence
from workflows.references import assignable

from .. import schemas
from ..auth import Principal, current, roles
from ..http import answer, doc, json_body, optional_json_body, page, query_args, runtime
from ..idempotency import idempotent

bp = Blueprint("task", __name__, url_prefix="/api/v1/task")
WORKERS = ("admin", "supervisor", "inspector")
READERS = (*WORKERS, "leader")


def can_work_on(p: Principal, ht: HumanTask) -> bool:
    """Complete or claim for oneself: the assignee, an admin, or a holder of the offered role in scope."""
    if p.has("admin") or ht.assignee == p.name:
        return True
    return task_visible(p.viewer, ht) and ht.candidate_role in p.roles


def can_reassign(p: Principal, ht: HumanTask) -> bool:
    """Hand a task to someone else: an admin, or a supervisor whose grid the task is in."""
    return p.has("admin") or (p.has("supervisor") and task_visible(p.viewer, ht))


def _check_target(ht: HumanTask, username: str) -> None:
    """A task may only be handed to an active user who could work on it themselves (the same rule as
    a form's user reference: dispatch and escalation)."""
    with runtime().db.read() as conn:
        problem = assignable(conn, username, ht.candidate_role, ht.candidate_scope)
    if problem:
        raise ValidationError({"userId": [problem]})


def _visible_task(task_id: str, *, to_work: bool = False) -> HumanTask:
    """404 rather than 403 for tasks outside the caller's scope: their existence is not disclosed."""
    ht = tasks.get(runtime(), task_id)
    p = current()
    if not task_visible(p.viewer, ht):
        raise NotFound(f"task {task_id} does not exist")
    if to_work and not can_work_on(p, ht):
        raise NotAllowed(f"task is offered to role {ht.candidate_role!r}")
    return ht


@bp.get("")
@roles(*READERS)
@doc("Query tasks (only those the caller may see)", query=schemas.TaskListArgs,
     response=schemas.page_of(schemas.TaskSchema, "TaskPage"))
def list_tasks():
    args = query_args(schemas.TaskListArgs())
    p = current()
    q = TaskQuery(status=args["status"], assignee=args.get("assignee"), unassigned=args["unassigned"],
                  candidate_roles=[args["candidate_role"]] if "candidate_role" in args else None,
                  instance_id=args.get("instance_id"), process_key=args.get("process_key"),
                  element_id=args.get("element_id"), due_before=args.get("due_before"), sort=args["sort"],
                  offset=args["offset"], limit=args["limit"])
    q.viewer = p.viewer
    rows, total = tasks.query(runtime(), q)
    return page(schemas.TaskSchema(), rows, total, args["offset"], args["limit"])


@bp.get("/<task_id>")
@roles(*READERS)
@doc("One task", response=schemas.TaskSchema)
def get_task(task_id: str):
    return answer(schemas.TaskSchema(), _visible_task(task_id))


@bp.get("/<task_id>/variables")
@roles(*READERS)
@doc("The variables of the task's process instance")
def get_task_variables(task_id: str):
    ht = _visible_task(task_id)
    return jsonify(instances.variables(runtime(), ht.instance_id))


@bp.post("/<task_id>/claim")
@roles(*WORKERS)
@idempotent
@doc("Claim an unassigned task (a supervisor or admin may claim it for someone else with userId)",
     body=schemas.ClaimSchema, response=schemas.TaskSchema)
def claim(task_id: str):
    args = optional_json_body(schemas.ClaimSchema())
    p = current()
    for_user = args.get("user_id")
    if for_user and for_user != p.name:
        ht = _visible_task(task_id)
        if not can_reassign(p, ht):
            raise NotAllowed("only a supervisor of the task's grid or an admin may assign it to someone else")
        _check_target(ht, for_user)
    else:
        _visible_task(task_id, to_work=True)
    return answer(schemas.TaskSchema(), tasks.claim(runtime(), task_id, p.name, for_user))


@bp.post("/<task_id>/unclaim")
@roles(*WORKERS)
@idempotent
@doc("Give an assigned task back", response=schemas.TaskSchema)
def unclaim(task_id: str):
    ht = _visible_task(task_id)
    p = current()
    return answer(schemas.TaskSchema(), tasks.unclaim(runtime(), task_id, p.name, force=can_reassign(p, ht)))


@bp.post("/<task_id>/delegate")
@roles(*WORKERS)
@idempotent
@doc("Delegate the task to another user", body=schemas.DelegateSchema, response=schemas.TaskSchema)
def delegate(task_id: str):
    args = json_body(schemas.DelegateSchema())
    ht = _visible_task(task_id)
    p = current()
    if not (can_work_on(p, ht) or can_reassign(p, ht)):
        raise NotAllowed(f"task is offered to role {ht.candidate_role!r}")
    _check_target(ht, args["user_id"])
    return answer(schemas.TaskSchema(), tasks.delegate(runtime(), task_id, p.name, args["user_id"],
                                                       force=can_reassign(p, ht)))


@bp.post("/<task_id>/complete")
@roles(*WORKERS)
@idempotent
@doc("Complete the task with variables; the loser of two concurrent completions gets 409",
     body=schemas.CompleteSchema, response=schemas.TaskSchema)
def complete(task_id: str):
    args = optional_json_body(schemas.CompleteSchema())
    ht = _visible_task(task_id, to_work=True)
    if args["variables"].get("handle_result") == "done":
        missing = missing_evidence(runtime().db, task_id, ht.element_id)
        if missing:
            raise ValidationError({"evidence": [f"the task needs {' and '.join(missing)} first"]})
    if ht.element_id == patrol_rounds.VISIT_TASK:
        lacking = patrol_rounds.missing_for_visit(runtime(), ht.instance_id, args["variables"])
        if lacking:
            raise ValidationError({"evidence": [f"the visit needs {' and '.join(lacking)} first"]})
    p = current()
    return answer(schemas.TaskSchema(), tasks.complete(runtime(), task_id, p.name, args["variables"],
                                                       force=p.has("admin"), viewer=p.viewer))


@bp.get("/<task_id>/form")
@roles(*READERS)
@doc("The task's form as JSON Schema 2020-12 with UI hints (labels in zh-CN and en, widgets, rules), and the "
     "values the process holds for its fields; 404 when the model declares no form for the task")
def get_form(task_id: str):
    ht = _visible_task(task_id)
    form = tasks.form(runtime(), ht)
    if form is None:
        raise NotFound(f"the model declares no form for task {ht.element_id}")
    held = instances.variables(runtime(), ht.instance_id)
    return jsonify({"taskId": ht.id, "element": ht.element_id, "name": ht.name, "schema": json_schema(form),
                    "values": {name: held[name] for name in form.names if name in held}})
