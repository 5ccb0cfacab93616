"""deployment: deploy several model files at once (multipart `file` parts, or one zip), all or nothing;
list and read what each deploy carried and which versions it stands for."""

from flask import Blueprint, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from engine import bundles
from engine.bundles import BundleFile

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, page, query_args, runtime

bp = Blueprint("deployment", __name__, url_prefix="/api/v1/deployment")
READERS = ("admin", "supervisor", "leader")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")


@bp.post("")
@roles("admin")
@doc("Deploy a bundle: several BPMN and DMN files as multipart parts named 'file' (and an optional 'name' field), or "
     "one zip (body application/zip, or a single 'file' part ending .zip; ?name= names it). Every executable "
     "process and every decision of every file gets its own key and version; one refused file refuses them all (400, "
     "details.problems [{file, element, problem}]); the same bytes keep their version",
     query=schemas.DeploymentArgs, response=schemas.DeployedBundleSchema, status=201,
     content_type="multipart/form-data", also={200: "nothing new: every process was deployed before"})
def deploy():
    name, files = _files()
    bundle = bundles.deploy_bundle(runtime(), files, current().name, name)
    warnings = [w.in_file(p.file).as_dict() for p in bundle.processes if p.created for w in p.model.warnings]
    created = any(p.created for p in bundle.processes) or any(d.created for d in bundle.decisions)
    return answer(schemas.DeployedBundleSchema(), bundle.deployment, 201 if created else 200,
                  extra={"warnings": warnings})


def _files() -> tuple[str | None, list[BundleFile]]:
    name = query_args(schemas.DeploymentArgs()).get("name")
    if request.mimetype == "multipart/form-data":
        if request.form.get("name"):
            name = schemas.DeploymentArgs().load({"name": request.form["name"]})["name"]
        uploads = request.files.getlist("file")
        if not uploads:
            raise BadRequest("multipart deployment needs one or more 'file' parts")
        files = [BundleFile(u.filename or f"file{n + 1}", u.read()) for n, u in enumerate(uploads)]
        if len(files) == 1 and (files[0].name.lower().endswith(".zip") or files[0].content[:4] == b"PK\x03\x04"):
            return name, bundles.files_from_zip(files[0].name, files[0].content)
        return name, files
    if request.mimetype in ZIP_TYPES:
        raw = request.get_data()
        if not raw:
            raise BadRequest("the zip body is empty")
        return name, bundles.files_from_zip("bundle.zip", raw)
    raise UnsupportedMediaType("send the files as multipart/form-data ('file' parts) or one application/zip")


@bp.get("")
@roles(*READERS)
@doc("Deployments, newest first", query=schemas.PageArgs,
     response=schemas.page_of(schemas.DeploymentSchema, "DeploymentPage"))
def list_deployments():
    args = query_args(schemas.PageArgs())
    rows, total = bundles.list_deployments(runtime(), args["offset"], args["limit"])
    return page(schemas.DeploymentSchema(), rows, total, args["offset"], args["limit"])


@bp.get("/<int:deployment_id>")
@roles(*READERS)
@doc("One deployment: its files and the version of each process it stands for", response=schemas.DeploymentSchema)
def get_deployment(deployment_id: int):
    return answer(schemas.DeploymentSchema(), bundles.get(runtime(), deployment_id))
