"""The demo city with the env_case model deployed (the `city` fixture, a pytest plugin registered in
tests/conftest.py), shared by the tests of cases, notices, monitoring and ingest."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import definitions
from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient
from workflows.cases import Alarm
from workflows.demo_seed import seed_demo
from workflows.grids import GridIndex, point_inside
from workflows.install import install
from workflows.working_time import CalendarService, seed_from_package

MODEL = Path(__file__).resolve().parents[1] / "bpmn" / "env_case.bpmn"


@pytest.fixture
def city(db, clock):
    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(db, clock.now(), years=[2026])
    seed_demo(db, clock.now() - timedelta(hours=1))
    rt = Runtime(db=db, clock=clock)
    install(rt, calendar=CalendarService(db).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    return rt, GridIndex.load(db, "320700")


def login_for(db, now, username: str, role: str, scope: str) -> str:
    """A login account for a member of staff (the demo's people have none), so that forms may
    name them; returns the username."""
    from api import accounts

    accounts.create_user(db, now, username=username, password="correct horse battery", roles=[role], scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    return username


def inside(db, index) -> tuple[str, float, float]:
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[7]
    return unit, *point_inside(db, unit)


def alarm(clock, external_id="A-1", lon=None, lat=None, source_ref="MN-001", category="air.exceedance"):
    return Alarm(tenant="320700", source="monitoring", external_id=external_id, category=category,
                 occurred_at=clock.now(), source_ref=source_ref, lon=lon, lat=lat, details={"value": 180, "limit": 100})
