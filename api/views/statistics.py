"""statistics (查询统计): the cases filed in a period counted by category, source, grid (drilling down
with `parent`), inspector, stage or time bucket, as JSON, CSV or XLSX (workflows/statistics.py)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import ValidationError, fields, validate, validates_schema

from engine.errors import NotAllowed
from workflows import statistics
from workflows.cases import SOURCES
from workflows.tenants import works_in

from ..auth import current, roles
from ..export_tables import statistics_table
from ..exports import ExportArgs, file_response, wanted
from ..http import doc, query_args, runtime
from .grids import TENANT

bp = Blueprint("statistics", __name__, url_prefix="/api/v1/statistics")
CODE = validate.Length(min=1, max=40)


class StatisticsArgs(ExportArgs):
    tenant = fields.String(required=True, validate=TENANT)
    from_ = fields.Date(data_key="from", required=True,
                        metadata={"description": "the first day (China time) of the filing period"})
    to = fields.Date(required=True, metadata={"description": "the last day, included"})
    by = fields.String(required=True, validate=validate.OneOf(statistics.DIMENSIONS),
                       metadata={"description": "the grouping: " + ", ".join(statistics.DIMENSIONS)})
    parent = fields.String(validate=CODE, metadata={"description": "by=grid: the rows are this grid's children "
                                                                   "(default: the top grids the caller sees)"})
    category = fields.String(validate=validate.Length(min=1, max=50))
    source = fields.String(validate=validate.OneOf(SOURCES))
    grid = fields.String(validate=CODE, metadata={"description": "only cases in this grid's subtree"})
    inspector = fields.String(validate=validate.Length(min=1, max=200))

    @validates_schema
    def _ordered(self, data, **_):
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError("must not be before from", field_name="to")


@bp.get("/cases")
@roles("admin", "leader", "supervisor", "inspector")
@doc("Cases filed in a period counted and rated by one grouping, with a total (admins and leaders: the "
     "tenant; supervisors: their subtree; inspectors: the cases they handle); `format=csv|xlsx` for a file",
     query=StatisticsArgs)
def case_statistics():
    args = query_args(StatisticsArgs())
    viewer = current().viewer
    if not works_in(viewer, args["tenant"]):
        raise NotAllowed(f"you do not work in tenant {args['tenant']}", fields=["tenant"])
    q = statistics.Query(args["tenant"], args["from_"], args["to"], args["by"], parent=args.get("parent"),
                         category=args.get("category"), source=args.get("source"), grid=args.get("grid"),
                         inspector=args.get("inspector"))
    rt = runtime()
    body = statistics.statistics(rt.db, q, viewer, rt.clock.now())
    fmt = wanted(args)
    if fmt == "json":
        return jsonify(body)
    name = f"statistics-{q.tenant}-{q.by}-{q.first.isoformat()}-{q.last.isoformat()}"
    if q.parent:
        name += f"-{q.parent}"
    return file_response(fmt, args["lang"], name, *statistics_table(body, args["lang"]))
