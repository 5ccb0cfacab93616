"""migration: plan and execute moving running instances of a process to another version (admin)."""

from flask import Blueprint

from engine import migration
from engine.migration import Selection

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, json_body, query_args, runtime

bp = Blueprint("migration", __name__, url_prefix="/api/v1/migration")


def _selection(args) -> Selection:
    return Selection(instance_ids=args.get("instance_ids"), business_keys=args.get("business_keys"),
                     limit=args.get("limit", migration.MAX_BATCH))


def _plan_body(plan, source, target) -> dict:
    return {"source_definition_id": source.id, "target_definition_id": target.id, "key": source.key,
            "source_version": source.version, "target_version": target.version, "valid": plan.valid,
            "instances": plan.instances, "mapping": plan.mapping, "elements": list(plan.elements.values()),
            "problems": plan.problems}


@bp.get("/plan")
@roles("admin")
@doc("The plan between two versions of a key, elements mapped by id, with each waitable element's target, "
     "waiting count and problems, over every running instance of the source version (up to the batch limit)",
     query=schemas.MigrationPlanArgs, response=schemas.MigrationPlanSchema)
def get_plan():
    args = query_args(schemas.MigrationPlanArgs())
    found = migration.plan(runtime(), args["source_definition_id"], args["target_definition_id"])
    return answer(schemas.MigrationPlanSchema(), _plan_body(*found))


@bp.post("/plan")
@roles("admin")
@doc("The plan with mapping overrides (renamed elements) over a selection (business keys, instance ids); "
     "`valid: false` with `problems` per element says why executing it would be refused. Changes nothing",
     body=schemas.MigrationSchema, response=schemas.MigrationPlanSchema)
def post_plan():
    args = json_body(schemas.MigrationSchema())
    found = migration.plan(runtime(), args["source_definition_id"], args["target_definition_id"], args["mapping"],
                           _selection(args))
    return answer(schemas.MigrationPlanSchema(), _plan_body(*found))


@bp.post("/execute")
@roles("admin")
@doc("Move the selected running instances to the target version, each in its own change (timer deadlines, "
     "tasks, assignments kept; audited per instance). A refused plan answers 422 naming each element and "
     "changes nothing; an instance failing meanwhile is listed in `failed` and the others are moved",
     body=schemas.MigrationSchema, response=schemas.MigrationOutcomeSchema)
def execute():
    args = json_body(schemas.MigrationSchema())
    outcome = migration.execute(runtime(), args["source_definition_id"], args["target_definition_id"],
                                current().name, args["mapping"], _selection(args))
    return answer(schemas.MigrationOutcomeSchema(), {
        "plan": _plan_body(outcome.plan, outcome.source, outcome.target), "migrated": outcome.migrated,
        "failed": outcome.failed, "remaining": outcome.remaining})
