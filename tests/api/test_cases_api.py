"""Alarm intake and case reads over HTTP, scoped to the caller's grids."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from sqlalchemy import select

from engine import definitions
from workflows.demo_seed import seed_demo
from workflows.grids import Grid
from workflows.working_time import seed_from_package

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "env_case.bpmn"


@pytest.fixture
def demo(rt, clock):
    from integrations.enforcement import EnforcementClient
    from workflows.install import install
    from workflows.working_time import CalendarService

    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(rt.db, clock.now(), years=[2026])
    seed_demo(rt.db, clock.now() - timedelta(hours=1))
    install(rt, calendar=CalendarService(rt.db).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    with rt.db.session() as s:
        geometry = s.scalar(select(Grid.geometry).where(Grid.code.like("320706%"), Grid.level == "unit")
                            .order_by(Grid.code).limit(1))
    p = shapely.from_geojson(geometry).representative_point()
    return p.x, p.y


def alarm(clock, lon, lat, **over):
    body = {"tenant": "320700", "source": "monitoring", "externalId": "A-1", "sourceRef": "MN-001",
            "category": "air.exceedance", "occurredAt": clock.now().isoformat(), "lon": lon, "lat": lat,
            "details": {"value": 180, "limit": 100}}
    return {**body, **over}


def bad_fields(r) -> set[str]:
    error = r.get_json()["error"]
    return set(error.get("fields") or error.get("details", {}).get("fields", []))


def test_a_system_files_an_alarm_and_the_district_supervisor_sees_the_case(users, clock, demo):
    lon, lat = demo
    r = users["system"].post("/api/v1/alarms", json=alarm(clock, lon, lat))
    assert r.status_code == 201, r.get_json()
    case = r.get_json()
    assert case["grid"].startswith("320706") and case["outcome"] == "filed"
    again = users["system"].post("/api/v1/alarms", json=alarm(clock, lon, lat))
    assert again.status_code == 200 and again.get_json()["outcome"] == "repeat"
    seen = users["sup"].get("/api/v1/cases?tenant=320700").get_json()  # sup's scope is 3207
    assert [c["id"] for c in seen["items"]] == [case["id"]]
    detail = users["sup"].get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["timeline"][0]["action"] == "instance.started"
    assert detail["openTasks"][0]["taskDefinitionKey"] == "review"
    assert users["insp_other"].get(f"/api/v1/cases/{case['id']}").status_code == 404
    assert users["insp_other"].get("/api/v1/cases?tenant=320700").get_json()["total"] == 0


@pytest.mark.parametrize("over,field", [
    ({"source": "rumour"}, "source"), ({"category": "no.such"}, "category"),
    ({"occurredAt": "yesterday"}, "occurredAt"), ({"lon": 500}, "lon"), ({"tenant": "1"}, "tenant"),
])
def test_bad_alarms_are_422_with_the_field(users, clock, demo, over, field):
    lon, lat = demo
    r = users["system"].post("/api/v1/alarms", json={**alarm(clock, lon, lat), **over})
    assert r.status_code == 422 and field in bad_fields(r), r.get_json()
    assert users["admin"].get("/api/v1/cases?tenant=320700").get_json()["total"] == 0


def test_inspectors_cannot_file_alarms(users, clock, demo):
    assert users["insp"].post("/api/v1/alarms", json=alarm(clock, *demo)).status_code == 403
