"""process-definition: deploy, list, versions, XML."""

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from engine import definitions

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, query_args, runtime

bp = Blueprint("process_definition", __name__, url_prefix="/api/v1/process-definition")
READERS = ("admin", "supervisor", "leader")


@bp.post("")
@roles("admin")
@doc("Deploy a BPMN model (raw XML body or multipart field 'file'); same bytes, same version",
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
    definition.created = created
    return answer(schemas.DeployedSchema(), definition, 201 if created else 200)


@bp.get("")
@roles(*READERS)
@doc("List definitions (all versions, or only the latest of each key)", query=schemas.DefinitionListArgs,
     response=schemas.DefinitionSchema, many=True)
def list_definitions():
    args = query_args(schemas.DefinitionListArgs())
    rows = definitions.list_definitions(runtime(), args.get("key"), latest_only=args["latest"])
    return answer(schemas.DefinitionSchema(many=True), rows)


@bp.get("/<int:definition_id>")
@roles(*READERS)
@doc("One definition", response=schemas.DefinitionSchema)
def get_definition(definition_id: int):
    return answer(schemas.DefinitionSchema(), definitions.get(runtime(), definition_id))


@bp.get("/key/<key>")
@roles(*READERS)
@doc("The latest version of a key", response=schemas.DefinitionSchema)
def get_latest(key: str):
    return answer(schemas.DefinitionSchema(), definitions.latest(runtime(), key))


@bp.get("/<int:definition_id>/xml")
@roles(*READERS)
@doc("The BPMN XML of a definition", content_type="application/xml")
def get_xml(definition_id: int):
    d = definitions.get(runtime(), definition_id)
    return Response(d.bpmn_xml, mimetype="application/xml")
