"""process-instance: start, get, list, cancel, suspend, activate, variables, history."""

from flask import Blueprint, jsonify

from engine import calls, instances, suspension
from engine.batch_start import StartItem, start_many
from engine.errors import EngineError, NotAllowed, NotFound
from engine.instances import InstanceQuery
from engine.visibility import grid_visible, instance_visible

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, dumped, json_body, optional_json_body, page, query_args, runtime
from ..idempotency import idempotent

bp = Blueprint("process_instance", __name__, url_prefix="/api/v1")
STARTERS = ("admin", "supervisor", "system")
READERS = ("admin", "supervisor", "leader")


def _start_scope(args) -> str | None:
    """An instance is scoped to a grid: by default the starter's own; never outside it."""
    p = current()
    scope = args.get("scope", p.scope)
    if not p.viewer.sees_all and not grid_visible(p.viewer, scope):
        raise NotAllowed("an instance can only be started inside your own grid")
    return scope


def _visible(instance_id: str):
    row = instances.get(runtime(), instance_id)
    if not instance_visible(current().viewer, row):
        raise NotFound(f"process instance {instance_id} does not exist")
    return row


REPEATED = {200: "the business key is taken: the existing instance (created: false)"}


def _started(result):
    result.instance.created = result.created
    return answer(schemas.StartedSchema(), result.instance, 201 if result.created else 200)


@bp.post("/process-definition/key/<key>/start")
@roles(*STARTERS)
@idempotent
@doc("Start the latest version of a process; a repeated business key returns the existing instance",
     body=schemas.StartSchema, response=schemas.StartedSchema, status=201, also=REPEATED)
def start_by_key(key: str):
    args = json_body(schemas.StartSchema())
    return _started(instances.start(runtime(), actor=current().name, key=key, scope=_start_scope(args),
                                    business_key=args.get("business_key"), variables=args["variables"],
                                    viewer=current().viewer))


@bp.post("/process-definition/<int:definition_id>/start")
@roles(*STARTERS)
@idempotent
@doc("Start exactly this definition version", body=schemas.StartSchema, response=schemas.StartedSchema,
     status=201, also=REPEATED)
def start_by_id(definition_id: int):
    args = json_body(schemas.StartSchema())
    return _started(instances.start(runtime(), actor=current().name, definition_id=definition_id,
                                    scope=_start_scope(args), business_key=args.get("business_key"),
                                    variables=args["variables"], viewer=current().viewer))


@bp.post("/process-definition/key/<key>/start-batch")
@roles(*STARTERS)
@idempotent
@doc("Start many instances of the latest version in one transaction: all of them, or none when any item is "
     "refused (errors name the item: instances.3.variables...)", body=schemas.StartBatchSchema,
     response=schemas.StartedBatchSchema, status=201)
def start_batch_by_key(key: str):
    args = json_body(schemas.StartBatchSchema())
    items = [StartItem(item["variables"], item.get("business_key")) for item in args["instances"]]
    try:
        started = start_many(runtime(), actor=current().name, key=key, items=items, scope=_start_scope(args),
                             viewer=current().viewer)
    except EngineError as exc:
        if exc.fields and all(name.isdigit() for name in exc.fields):  # items by position, as in the body
            exc.fields = {"instances": exc.fields}
        raise
    return answer(schemas.StartedBatchSchema(), {"instances": started}, 201)


@bp.get("/process-instance")
@roles(*READERS)
@doc("List instances with filters and paging", query=schemas.InstanceListArgs,
     response=schemas.page_of(schemas.InstanceSchema, "InstancePage"))
def list_instances():
    args = query_args(schemas.InstanceListArgs())
    rows, total = instances.query(runtime(), InstanceQuery(**args, viewer=current().viewer))
    return page(schemas.InstanceSchema(), rows, total, args["offset"], args["limit"])


@bp.get("/process-instance/<instance_id>")
@roles(*READERS)
@doc("One instance, with the instances its call activities called and their open incidents",
     response=schemas.InstanceDetailSchema)
def get_instance(instance_id: str):
    body = schemas.InstanceDetailSchema().dump(_visible(instance_id))
    child_schema = schemas.ChildInstanceSchema()
    body["children"] = [dumped(child_schema, child, {"incidents": incidents})
                        for child, incidents in calls.children(runtime(), instance_id)]
    return jsonify(body)


@bp.get("/process-instance/<instance_id>/variables")
@roles(*READERS)
@doc("The instance's current variables")
def get_variables(instance_id: str):
    _visible(instance_id)
    return jsonify(instances.variables(runtime(), instance_id))


@bp.get("/process-instance/<instance_id>/history")
@roles(*READERS)
@doc("Everything that happened to the instance, from the audit trail", response=schemas.AuditEventSchema,
     many=True)
def get_history(instance_id: str):
    _visible(instance_id)
    return answer(schemas.AuditEventSchema(many=True), instances.history(runtime(), instance_id))


@bp.post("/process-instance/<instance_id>/cancel")
@roles("admin")
@doc("Cancel a running instance", body=schemas.CancelSchema, response=schemas.InstanceSchema)
def cancel(instance_id: str):
    args = optional_json_body(schemas.CancelSchema())
    return answer(schemas.InstanceSchema(), instances.cancel(runtime(), instance_id, current().name,
                                                             args.get("reason")))


@bp.post("/process-instance/<instance_id>/suspend")
@roles("admin")
@doc("Suspend a running instance: it completes no task (409), fires no timer (its deadline is kept) and takes "
     "messages into the buffer only, until activated. Audited with the reason",
     body=schemas.InstanceActionSchema, response=schemas.InstanceSchema)
def suspend(instance_id: str):
    args = json_body(schemas.InstanceActionSchema())
    return answer(schemas.InstanceSchema(), suspension.suspend(runtime(), instance_id, current().name, args["reason"]))


@bp.post("/process-instance/<instance_id>/activate")
@roles("admin")
@doc("Activate a suspended instance: messages buffered for it are delivered and timers that fell due fire now. "
     "Audited with the reason", body=schemas.InstanceActionSchema, response=schemas.InstanceSchema)
def activate(instance_id: str):
    args = json_body(schemas.InstanceActionSchema())
    return answer(schemas.InstanceSchema(), suspension.activate(runtime(), instance_id, current().name, args["reason"]))
