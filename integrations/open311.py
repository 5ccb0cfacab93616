"""Open311 GeoReport v2 on the wire (https://wiki.open311.org/GeoReport_v2): the fields of a posted
service request, and services, requests and errors as JSON or XML. Translation only: what a
report does (routing, duplicates) is decided in workflows/reports.py."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
MAX_DESCRIPTION = 2000  # what a case keeps
_EMAIL = re.compile(r"^[^@\s]{1,100}@[^@\s]{1,150}\.[^@\s]{1,30}\Z")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,28}\Z")
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,50}\Z")


class Open311Error(Exception):
    """An error answered as `[{code, description}]` (the code is the HTTP status, as in the spec)."""

    def __init__(self, status: int, description: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.headers = status, description, dict(headers or {})


@dataclass(frozen=True)
class Submission:
    """The fields of `POST requests` (form-encoded or multipart)."""

    service_code: str
    lat: float | None
    lon: float | None
    address: str | None
    description: str | None
    media_url: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    device_id: str | None
    account_id: str | None

    @property
    def reporter(self) -> dict[str, str]:
        name = " ".join(n for n in (self.first_name, self.last_name) if n)
        return {k: v for k, v in (("name", name), ("phone", self.phone), ("email", self.email)) if v}


def parse_submission(form: Mapping[str, str]) -> Submission:
    """The request's fields, checked for shape; Open311Error(400) names the first bad one."""
    for key, value in form.items():
        if "\x00" in key or "\x00" in value:
            raise Open311Error(400, "NUL characters are not allowed")
    text = {k: (form.get(k) or "").strip() or None for k in (
        "service_code", "lat", "long", "address_string", "address_id", "description", "media_url", "email",
        "phone", "first_name", "last_name", "device_id", "account_id")}
    code = text["service_code"]
    if code is None:
        raise Open311Error(400, "service_code is required")
    if not _CODE.match(code):
        raise Open311Error(400, "service_code is not a known service code")
    if (text["lat"] is None) != (text["long"] is None):
        raise Open311Error(400, "give both lat and long, or neither")
    lat = _coordinate(text["lat"], "lat", 90.0)
    lon = _coordinate(text["long"], "long", 180.0)
    if lat is None and text["address_string"] is None:
        raise Open311Error(400, "a location is required: lat and long, or address_string"
                                + (" (address_id is not supported here)" if text["address_id"] else ""))
    _bounded(text, {"address_string": 300, "description": MAX_DESCRIPTION, "media_url": 500, "email": 200,
                    "first_name": 50, "last_name": 50, "device_id": 100, "account_id": 100})
    if text["media_url"] and not re.match(r"^https?://[^\s]+\Z", text["media_url"]):
        raise Open311Error(400, "media_url must be an http or https URL")
    if text["email"] and not _EMAIL.match(text["email"]):
        raise Open311Error(400, "email is not an e-mail address")
    if text["phone"] and not _PHONE.match(text["phone"]):
        raise Open311Error(400, "phone is not a telephone number")
    return Submission(service_code=code, lat=lat, lon=lon, address=text["address_string"],
                      description=text["description"], media_url=text["media_url"], email=text["email"],
                      phone=text["phone"], first_name=text["first_name"], last_name=text["last_name"],
                      device_id=text["device_id"], account_id=text["account_id"])


def _coordinate(value: str | None, name: str, bound: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a decimal number (WGS84)") from None
    if not math.isfinite(number) or abs(number) > bound:
        raise Open311Error(400, f"{name} must be between -{bound:g} and {bound:g}")
    return number


def _bounded(text: Mapping[str, str | None], limits: Mapping[str, int]) -> None:
    for name, limit in limits.items():
        value = text[name]
        if value is not None and len(value) > limit:
            raise Open311Error(400, f"{name} is longer than {limit} characters")


def parse_datetime(value: str | None, name: str) -> datetime | None:
    """A w3c/ISO 8601 date-time with an offset (`Z` or `+08:00`)."""
    if not value:
        return None
    try:
        # an unencoded "+" of the offset arrives as a space
        parsed = datetime.fromisoformat(re.sub(r"(T[\d:.]+) (\d{2}:?\d{2})$", r"\1+\2", value.replace("Z", "+00:00")))
    except ValueError:
        raise Open311Error(400, f"{name} must be an ISO 8601 date-time with an offset") from None
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{name} must include a time-zone offset (Z or ±hh:mm)")
    return parsed


def comma_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


# -- what goes out ----------------------------------------------------------------------------------

def service(code: str, name: str) -> dict[str, Any]:
    """A category as an Open311 service (no extra attributes: metadata false)."""
    return {"service_code": code, "service_name": name, "description": name, "metadata": False,
            "type": "realtime", "keywords": "", "group": ""}


def service_definition(code: str) -> dict[str, Any]:
    return {"service_code": code, "attributes": []}


def created(request_id: str, notice: str, account_id: str | None) -> dict[str, Any]:
    return {"service_request_id": request_id, "service_notice": notice, "account_id": account_id}


def notice(outcome: str) -> str:
    """The service_notice of a posted request, by what the intake made of it."""
    if outcome == "occurrence":
        return "已收到。附近已有同类问题在处理，您的报告已合并 Received: the same problem nearby is being handled; " \
               "your report has joined it."
    return "已收到，将转交所在网格处理 Received: it goes to the grid responsible for the place."


OUTCOME_NOTES = {
    "closed": "已办结 The problem has been handled and the result verified.",
    "invalid": "经核实不予立案 Not taken on after review.",
    "merged": "已并入其他案件 Merged into another case.",
    "cancelled": "已撤销 Withdrawn.",
}
JOINED_NOTE = "同一问题附近已有报告，合并处理 The same problem was already reported nearby; handled together."


def status_notes(state) -> str:
    """The public status in words: the outcome once closed, the current stage while open."""
    if state.status == "closed":
        note = OUTCOME_NOTES.get(state.outcome or "", "已办结 Closed.")
    elif state.stages:
        note = "处理中 In progress: " + ", ".join(state.stages)
    else:
        note = "处理中 In progress."
    return f"{note} {JOINED_NOTE}" if state.joined else note


def service_request(state, media_url: str | None) -> dict[str, Any]:
    """A report's state (workflows.reports.ReportState) as an Open311 service request."""
    return {"service_request_id": state.request_id, "status": state.status, "status_notes": status_notes(state),
            "service_name": state.category_name, "service_code": state.category, "description": state.description,
            "agency_responsible": state.agency, "service_notice": "", "requested_datetime": _time(state.requested_at),
            "updated_datetime": _time(state.updated_at), "expected_datetime": _time(state.expected_at),
            "address": state.address or state.agency, "address_id": None, "zipcode": None, "lat": state.lat,
            "long": state.lon, "media_url": media_url}


def error_list(status: int, description: str) -> list[dict[str, Any]]:
    return [{"code": status, "description": description}]


def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


# XML: the root of each answer, and the element of each item in a list.
ROOTS = {"services": "service", "service_requests": "request", "errors": "error"}
_ITEMS = {"attributes": "attribute", "values": "value"}


def render(fmt: str, root: str, payload: Any) -> tuple[bytes, str]:
    """The body and content type of `payload` (a list for `services`, `service_requests`, `errors`;
    a mapping otherwise) in `fmt`."""
    if fmt == "json":
        return json.dumps(payload, ensure_ascii=False).encode(), FORMATS["json"]
    element = ET.Element(root)
    if isinstance(payload, list):
        for item in payload:
            _fill(ET.SubElement(element, ROOTS[root]), item)
    else:
        _fill(element, payload)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8"), FORMATS["xml"]


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, _ITEMS.get(element.tag, "item")), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
