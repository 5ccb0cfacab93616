"""decision-definition: deploy DMN decision tables, list their versions, read one with its XML."""

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from engine import decisions

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, dumped, query_args, runtime

bp = Blueprint("decision_definition", __name__, url_prefix="/api/v1/decision-definition")
READERS = ("admin", "supervisor", "leader")


@bp.post("")
@roles("admin")
@doc("Deploy a DMN file (raw XML body or multipart field 'file'): every decision in it gets its key (the "
     "decision's id) and a new version; the same bytes keep their version. Business rule tasks evaluate the "
     "newest version of their decision when they run", response=schemas.DecisionsDeployedSchema, status=201,
     content_type="application/xml", also={200: "the same bytes as deployed before: those versions, unchanged"})
def deploy():
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("multipart upload needs a 'file' field")
        xml = upload.read()
    elif request.mimetype in ("application/xml", "text/xml", "application/dmn+xml"):
        xml = request.get_data()
    else:
        raise UnsupportedMediaType("send DMN as application/xml or multipart/form-data")
    if not xml:
        raise BadRequest("the DMN body is empty")
    stored = decisions.deploy(runtime(), xml, current().name)
    one = schemas.DeployedDecisionSchema()
    body = {"decisions": [dumped(one, d, {"created": created}) for d, created in stored]}
    return jsonify(body), 201 if any(c for _d, c in stored) else 200


@bp.get("")
@roles(*READERS)
@doc("List decision definitions (all versions, or only the newest of each key)", query=schemas.DecisionListArgs,
     response=schemas.DecisionDefinitionSchema, many=True)
def list_decisions():
    args = query_args(schemas.DecisionListArgs())
    rows = decisions.list_definitions(runtime(), args.get("key"), latest_only=args["latest"])
    return answer(schemas.DecisionDefinitionSchema(many=True), rows)


@bp.get("/<int:definition_id>")
@roles(*READERS)
@doc("One decision definition with the DMN XML of the file it came in", response=schemas.DecisionDefinitionXmlSchema)
def get_decision(definition_id: int):
    return answer(schemas.DecisionDefinitionXmlSchema(), decisions.get(runtime(), definition_id))
