"""Values a client sends that parse but cannot be right: times from a wrong clock or beyond what UTC
can hold, path ids beyond a row id, and success statuses the OpenAPI document must declare."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from werkzeug.routing import IntegerConverter

from api.fields import FUTURE_TOLERANCE
from tests.api import test_cases_api as cases_tests
from tests.api import test_open311 as open311_tests

demo = cases_tests.demo
OVERFLOW = "0001-01-01T00:00:00+14:00"  # parses, but is before year 1 in UTC
BEYOND = "9999-12-31T23:59:59-10:00"  # parses, but is after year 9999 in UTC


def fields_of(r) -> dict:
    body = r.get_json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "fields", "details"}, body
    return body["error"].get("fields") or {}


def alarm(clock, at: str, external_id: str = "A-1", **over) -> dict:
    return {"tenant": "320700", "source": "monitoring", "externalId": external_id, "category": "air.exceedance",
            "occurredAt": at, **over}


# -- times -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("at, says", [
    (OVERFLOW, "out of range"),
    (BEYOND, "out of range"),
    ("1999-12-31T23:00:00+00:00", "before the year 2000"),
    ("9999-01-01T00:00:00+08:00", "in the future"),
])
def test_an_alarm_time_out_of_bounds_is_422_naming_occurred_at(users, clock, at, says):
    r = users["system"].post("/api/v1/alarms", json=alarm(clock, at))
    assert r.status_code == 422, r.get_json()
    assert says in fields_of(r)["occurredAt"][0]


def test_an_alarm_from_a_clock_running_ahead_is_refused_beyond_the_tolerance(users, clock, demo):
    lon, lat = demo
    ahead = (clock.now() + FUTURE_TOLERANCE + timedelta(minutes=1)).isoformat()
    r = users["system"].post("/api/v1/alarms", json=alarm(clock, ahead, lon=lon, lat=lat))
    assert r.status_code == 422 and "11 minutes ahead" in fields_of(r)["occurredAt"][0]
    within = (clock.now() + FUTURE_TOLERANCE - timedelta(seconds=1)).isoformat()
    r = users["system"].post("/api/v1/alarms", json=alarm(clock, within, lon=lon, lat=lat))
    assert r.status_code == 201, r.get_json()
    seen = users["sup"].get("/api/v1/cases?tenant=320700").get_json()["items"]
    assert [c["id"] for c in seen] == [r.get_json()["id"]]


@pytest.mark.parametrize("at", [OVERFLOW, "9999-06-01T00:00:00+00:00"])
def test_a_warning_observed_out_of_bounds_is_422_naming_observed_at(users, at):
    r = users["system"].post("/api/v1/warnings", json={
        "tenant": "320700", "level": 2, "grid": "320706001", "station": "S-1", "pollutant": "PM2.5", "value": 180,
        "limit": 75, "observedAt": at})
    assert r.status_code == 422 and "observedAt" in fields_of(r), r.get_json()


@pytest.mark.parametrize("at", [OVERFLOW, "2099-01-01T00:00:00+08:00"])
def test_readings_out_of_bounds_are_422_naming_data_time(users, at):
    r = users["system"].post("/api/v1/readings", json={
        "mn": "MN-1", "cn": "2011", "dataTime": at, "readings": [{"pollutant": "a34004", "kind": "rtd", "value": 1}]})
    assert r.status_code == 422 and "dataTime" in fields_of(r), r.get_json()


@pytest.mark.parametrize("at", [OVERFLOW, "2099-01-01T00:00:00+08:00"])
def test_a_petition_received_out_of_bounds_is_422_naming_received_at(users, at):
    r = users["system"].post("/api/v1/petitions", json={
        "petitionId": "P-1", "tenant": "320700", "petitioner": {"name": "张三"}, "content": "噪声", "receivedAt": at})
    assert r.status_code == 422 and "receivedAt" in fields_of(r), r.get_json()


@pytest.mark.parametrize("path, name", [
    ("/api/v1/process-instance?startedAfter={}", "startedAfter"),
    ("/api/v1/process-instance?startedBefore={}", "startedBefore"),
    ("/api/v1/task?dueBefore={}", "dueBefore"),
    ("/api/v1/readings?from={}", "from"),
])
def test_a_query_time_beyond_utc_is_422_naming_the_parameter(users, path, name):
    r = users["admin"].get(path.format(OVERFLOW.replace("+", "%2B")))
    assert r.status_code == 422 and name in fields_of(r), r.get_json()
    far = users["admin"].get(path.format("9000-01-01T00:00:00%2B08:00"))  # a far filter bound is fine
    assert far.status_code == 200, far.get_json()


# -- path ids --------------------------------------------------------------------------------------

INT_ROUTES = [
    ("get", "/api/v1/process-definition/{}", "admin"),
    ("get", "/api/v1/process-definition/{}/xml", "admin"),
    ("post", "/api/v1/process-definition/{}/start", "sup"),
    ("post", "/api/v1/incident/{}/retry", "admin"),
    ("delete", "/api/v1/warning-policies/{}", "admin"),
]


@pytest.mark.parametrize("method, path, caller", INT_ROUTES)
@pytest.mark.parametrize("ident", [2**63, 2**64 + 1, 10**30, 0, 2**63 - 1, 2**31])
def test_an_integer_path_id_beyond_a_row_id_is_404(users, method, path, caller, ident):
    c = users[caller]
    r = getattr(c.client, method)(path.format(ident), headers=c.headers, **({"json": {}} if method == "post" else {}))
    assert r.status_code == 404, (r.status_code, r.get_json())
    assert set(r.get_json()["error"]) >= {"code", "message"}


def test_every_integer_path_parameter_is_a_bounded_row_id(app):
    from api.http import RowIdConverter

    converters = [(r.rule, c) for r in app.url_map.iter_rules() for c in r._converters.values()
                  if isinstance(c, IntegerConverter)]
    assert len(converters) >= len(INT_ROUTES)
    for rule, converter in converters:
        assert isinstance(converter, RowIdConverter) and converter.min >= 1 and converter.max <= 2**63 - 1, rule


# -- declared statuses -----------------------------------------------------------------------------

def test_a_buffered_message_is_202_and_the_document_declares_it(users, client):
    r = users["system"].post("/api/v1/message", json={"messageName": "feedback", "messageId": "m-1",
                                                      "correlationValue": "C-nobody-waits"})
    assert r.status_code == 202 and r.get_json()["status"] == "buffered"
    responses = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/message"]["post"]["responses"]
    assert {"200", "202"} <= set(responses)
    assert responses["202"]["content"] == responses["200"]["content"]


# -- Open311 query dates ---------------------------------------------------------------------------

world = open311_tests.world
city = open311_tests.city


@pytest.mark.parametrize("query", [f"start_date={OVERFLOW.replace('+', '%2B')}", f"end_date={BEYOND}",
                                   "start_date=9999-12-31T00:00:00Z", "end_date=0001-01-02T00:00:00Z"])
def test_open311_query_dates_beyond_utc_or_the_window_are_400_in_its_format(city, query):
    _rt, client, _key = city
    r = client.get(f"/open311/v2/requests.json?{query}")
    assert r.status_code == 400, r.get_data(as_text=True)
    (error,) = r.get_json()
    assert error["code"] == 400 and "must lie between 1970 and 9000" in error["description"]


def test_the_status_check_catches_an_answer_the_document_leaves_out():
    from flask import Flask

    from api.http import doc
    from tests.api.statuses import recorded_successes, undeclared

    app = Flask("probe")

    @app.post("/thing")
    @doc("answers 201 but declares 200")
    def thing():
        return "", 201

    with recorded_successes() as seen:
        assert app.test_client().post("/thing").status_code == 201
    assert undeclared(seen) == ["POST /thing answered 201"]
    thing.openapi = dataclasses.replace(thing.openapi, also={201: "created"})  # declared: the check passes
    assert undeclared(seen) == []


def test_the_document_gives_integer_path_ids_their_bounds(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    (param,) = paths["/api/v1/incident/{incident_id}/retry"]["post"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    (param,) = paths["/api/v1/warning-policies/{policy_id}"]["delete"]["parameters"]
    assert param["schema"]["maximum"] == 2**31 - 1
    (param,) = paths["/api/v1/task/{task_id}/complete"]["post"]["parameters"]
    assert param["schema"] == {"type": "string"}
