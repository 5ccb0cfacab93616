"""Tables as files: a figures endpoint answers JSON, or CSV or XLSX when asked with `?format=csv|xlsx`
or an Accept header naming text/csv or the XLSX type (the parameter wins).

One header row, in Chinese by default or English with `lang=en` (a second header row would break
every program that reads the file back). CSV is streamed row by row, UTF-8 with a byte-order mark
so that Excel reads the Chinese right; XLSX is written by openpyxl in write-only mode. A text cell
that a spreadsheet would take for a formula (=, +, -, @) is written with a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response, request, stream_with_context
from marshmallow import fields, validate

from .schemas import Strict

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
FORMATS = ("json", "csv", "xlsx")
LANGS = ("zh", "en")


class ExportArgs(Strict):
    """The query fields of any endpoint that can answer a file."""

    format = fields.String(validate=validate.OneOf(FORMATS),
                           metadata={"description": "json (default), csv or xlsx; or ask by the Accept header"})
    lang = fields.String(load_default="zh", validate=validate.OneOf(LANGS),
                         metadata={"description": "the language of a file's header row: zh (default) or en"})


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str


def wanted(args: dict[str, Any]) -> str:
    """json, csv or xlsx: the `format` parameter, else a type the Accept header names itself."""
    if args.get("format"):
        return args["format"]
    named = {mt for mt, _ in request.accept_mimetypes}
    if CSV in named:
        return "csv"
    if XLSX in named:
        return "xlsx"
    return "json"


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _csv_lines(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(header)
    yield "\ufeff" + buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        out.writerow(["" if v is None else _cell(v) for v in row])
        yield buf.getvalue()


def _xlsx(sheet: str, header: list[str], rows: Iterable[list[Any]]) -> bytes:
    from openpyxl import Workbook  # imported when a file is asked for, not at start

    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    ws.append(header)
    for row in rows:
        ws.append([_cell(v) for v in row])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def file_response(fmt: str, lang: str, name: str, columns: list[Column], rows: Iterable[list[Any]]) -> Response:
    """`rows` (one value per column) as a CSV or XLSX download called `name`.csv|xlsx (ASCII)."""
    header = [c.zh if lang == "zh" else c.en for c in columns]
    filename = f"{name}.{fmt}"
    if fmt == "csv":
        resp = Response(stream_with_context(_csv_lines(header, rows)), content_type=f"{CSV}; charset=utf-8")
    else:
        resp = Response(_xlsx(name, header, rows), mimetype=XLSX)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
