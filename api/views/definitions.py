"""process-definition: deploy, list, versions, XML, and the lifecycle (make latest, suspend, activate)."""

from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import BadRequest

from engine import definition_stats, definitions
from engine.errors import NotFound
from engine.form_schema import json_schema

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, json_body, query_args, runtime

bp = Blueprint("process_definition", __name__, url_prefix="/api/v1/process-definition")
READERS = ("admin", "supervisor", "leader")


@bp.post("")
@roles("admin")
@doc("Deploy a BPMN model (raw XML body or multipart field 'file'); it becomes the latest. Same bytes, same "
     "version, unchanged: an older version's bytes answer that version with a notice (roll back with make-latest)",
     response=schemas.DeployedSchema, status=201, content_type="application/xml",
     also={200: "the same bytes as a deployed version: that version, unchanged"})
def deploy():
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("multipart upload needs a 'file' field")
        xml = upload.read()
    elif request.mimetype in ("application/xml", "text/xml", "application/bpmn+xml"):
        xml = request.get_data()
    else:
        from werkzeug.exceptions import UnsupportedMediaType

        raise UnsupportedMediaType("send BPMN as application/xml or multipart/form-data")
    if not xml:
        raise BadRequest("the BPMN body is empty")
    definition, created = definitions.deploy(runtime(), xml, current().name)
    extra: dict[str, Any] = {"created": created,
                             "warnings": [w.as_dict() for w in definitions.warnings(runtime(), definition)]}
    if not definition.is_latest:  # the bytes of an older version: deploying again does not roll back
        extra["notice"] = (f"these bytes are version {definition.version}, which is not the latest of "
                           f"'{definition.key}'; to start new cases on it, POST "
                           f"/api/v1/process-definition/{definition.id}/make-latest with a reason")
    return answer(schemas.DeployedSchema(), definition, 201 if created else 200, extra=extra)


@bp.get("")
@roles(*READERS)
@doc("List definitions (all versions, or only the latest of each key)", query=schemas.DefinitionListArgs,
     response=schemas.DefinitionSchema, many=True)
def list_definitions():
    args = query_args(schemas.DefinitionListArgs())
    rows = definitions.list_definitions(runtime(), args.get("key"), latest_only=args["latest"])
    return answer(schemas.DefinitionSchema(many=True), rows)


class StatisticsArgs(schemas.Strict):
    key = fields.String(validate=schemas.IDENT)


class VersionStatisticsSchema(Schema):
    definition_id = fields.Integer(data_key="definitionId")
    key = fields.String()
    version = fields.Integer()
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())  # by status: running, completed, cancelled
    suspended = fields.Integer()  # running instances suspended by an administrator
    open_tasks = fields.Integer(data_key="openTasks")
    open_incidents = fields.Integer(data_key="openIncidents")


class ElementHeatSchema(Schema):
    element_id = fields.String(data_key="elementId")
    entered = fields.Integer()
    completed = fields.Integer()
    waiting = fields.Integer()
    mean_seconds = fields.Float(data_key="meanSeconds", allow_none=True)  # of completed user tasks
    p90_seconds = fields.Float(data_key="p90Seconds", allow_none=True)
    incidents = fields.Integer()
    open_incidents = fields.Integer(data_key="openIncidents")


class HeatmapSchema(Schema):
    definition_id = fields.Integer(data_key="definitionId")
    instances = fields.Integer()
    elements = fields.List(fields.Nested(ElementHeatSchema))


@bp.get("/statistics")
@roles(*READERS)
@doc("Instances per version (of one key, or of all), counted by status, with suspended instances, open tasks "
     "and open incidents; only the instances the caller's scope sees", query=StatisticsArgs,
     response=VersionStatisticsSchema, many=True)
def list_statistics():
    args = query_args(StatisticsArgs())
    rows = definition_stats.statistics(runtime(), current().viewer, key=args.get("key"))
    return answer(VersionStatisticsSchema(many=True), rows)


@bp.get("/<int:definition_id>/statistics")
@roles(*READERS)
@doc("Instances of one version counted by status (see /statistics)", response=VersionStatisticsSchema)
def get_statistics(definition_id: int):
    (row,) = definition_stats.statistics(runtime(), current().viewer, definition_id=definition_id)
    return answer(VersionStatisticsSchema(), row)


@bp.get("/<int:definition_id>/heatmap")
@roles(*READERS)
@doc("Per element of one version: how often instances reached it, how long its user tasks took (mean and p90 "
     "seconds, from task creation to completion), how many wait there now, and its incidents", response=HeatmapSchema)
def get_heatmap(definition_id: int):
    instances, heat = definition_stats.heatmap(runtime(), current().viewer, definition_id)
    elements = sorted(heat.values(), key=lambda h: h.element_id)
    return answer(HeatmapSchema(), {"definition_id": definition_id, "instances": instances, "elements": elements})


@bp.get("/<int:definition_id>")
@roles(*READERS)
@doc("One definition", response=schemas.DefinitionSchema)
def get_definition(definition_id: int):
    return answer(schemas.DefinitionSchema(), definitions.get(runtime(), definition_id))


@bp.get("/key/<key>")
@roles(*READERS)
@doc("The version new cases of a key start on (the newest, unless an administrator made another the latest)",
     response=schemas.DefinitionSchema)
def get_latest(key: str):
    return answer(schemas.DefinitionSchema(), definitions.latest(runtime(), key))


@bp.get("/<int:definition_id>/xml")
@roles(*READERS)
@doc("The BPMN XML of a definition", content_type="application/xml")
def get_xml(definition_id: int):
    d = definitions.get(runtime(), definition_id)
    return Response(d.bpmn_xml, mimetype="application/xml")


@bp.post("/<int:definition_id>/make-latest")
@roles("admin")
@doc("Start new cases of the key on this version again (roll back); running cases keep theirs. Audited",
     body=schemas.DefinitionActionSchema, response=schemas.DefinitionSchema)
def make_latest(definition_id: int):
    args = json_body(schemas.DefinitionActionSchema())
    return answer(schemas.DefinitionSchema(),
                  definitions.make_latest(runtime(), definition_id, current().name, args["reason"]))


@bp.post("/<int:definition_id>/suspend")
@roles("admin")
@doc("No new cases on this version (starts answer 409); running cases go on. Audited",
     body=schemas.DefinitionActionSchema, response=schemas.DefinitionSchema)
def suspend(definition_id: int):
    args = json_body(schemas.DefinitionActionSchema())
    return answer(schemas.DefinitionSchema(),
                  definitions.suspend(runtime(), definition_id, current().name, args["reason"]))


@bp.post("/<int:definition_id>/activate")
@roles("admin")
@doc("Let a suspended version take new cases again. Audited",
     body=schemas.DefinitionActionSchema, response=schemas.DefinitionSchema)
def activate(definition_id: int):
    args = json_body(schemas.DefinitionActionSchema())
    return answer(schemas.DefinitionSchema(),
                  definitions.activate(runtime(), definition_id, current().name, args["reason"]))


@bp.get("/<int:definition_id>/form")
@roles("admin", "supervisor", "system")
@doc("The start form of a definition version as JSON Schema 2020-12 with UI hints (the variables a start "
     "takes); 404 when the model declares none")
def get_start_form(definition_id: int):
    return _start_form(definitions.get(runtime(), definition_id))


@bp.get("/key/<key>/form")
@roles("admin", "supervisor", "system")
@doc("The start form of the latest version of a key")
def get_latest_start_form(key: str):
    return _start_form(definitions.latest(runtime(), key))


def _start_form(d):
    form = runtime().specs.get(runtime().db, d.id).start_form
    if form is None:
        raise NotFound(f"{d.key} version {d.version} declares no start form")
    return jsonify({"definitionId": d.id, "key": d.key, "version": d.version, "schema": json_schema(form)})
