"""From a data logger's TCP connection to a case in the loop: HJ 212 packets over a real socket →
the listener → readings stored with the threshold rules in the same transaction → the alarm job →
an env_case instance waiting for review. An exceedance opens a case, a fault flag opens a device
case, and repeated exceedances of the open case are its occurrences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine import instances, outbox
from engine.queues import ManualJobQueue
from integrations.hj212 import Flag, encode, format_qn
from tests.city import inside
from tests.integrations.test_ingest_server import Peer, serve
from workflows.cases import Case
from workflows.readings import intake_for
from workflows.sources import MonitoringSource, PollutantLimit

MN, PW = "32070300000000000000A001", "123456"
T0 = datetime(2026, 9, 29, 0, 0, tzinfo=UTC)


@pytest.fixture
def logger_site(city, db, clock):
    rt, index = city
    _unit, lon, lat = inside(db, index)
    with db.transaction() as s:
        s.add(MonitoringSource(mn=MN, tenant="320700", kind="outlet", name="某化工 2#排口", enterprise="某化工",
                               lon=lon, lat=lat, password=PW, created_at=clock.now()))
        s.flush()
        s.add(PollutantLimit(mn=MN, pollutant="w01018", data_kind="hourly", limit_value=Decimal("50"), unit="mg/L"))
    return rt


def hourly(hour: int, cod: str, flag: str = "N") -> bytes:
    at = T0 + timedelta(hours=hour)
    return encode(st="32", cn="2061", pw=PW, mn=MN, qn=format_qn(at + timedelta(minutes=5)), flag=Flag(ack=True),
                  cp={"DataTime": at, "w01018-Avg": cod, "w01018-Flag": flag, "w00000-Avg": "12.5",
                      "w00000-Flag": "N"})


def send_all(rt, packets: list[bytes]) -> None:
    """One logger connection sends the packets one by one, each after the previous one's 9014 ack."""

    async def scenario(server):
        peer = await Peer.connect(server)
        try:
            for packet in packets:
                await peer.send(packet)
                assert (await peer.answer()).cn == "9014"
        finally:
            peer.close()

    serve(intake_for(rt.db, rt.clock), scenario)
    jobs = ManualJobQueue(rt)
    while outbox.relay(rt, jobs):
        jobs.run_all()


def cases(db) -> list[Case]:
    with db.session() as s:
        return list(s.scalars(select(Case).where(Case.source_ref.like(f"{MN}%")).order_by(Case.source_ref)))


def test_an_exceedance_sent_over_tcp_opens_a_case_in_review(logger_site, db):
    send_all(logger_site, [hourly(0, "32.1"), hourly(1, "78.4")])
    (case,) = cases(db)
    assert (case.category, case.source_ref, case.details["value"]) == ("water.exceedance", f"{MN}:w01018:exceedance",
                                                                       "78.4")
    (review,) = instances.open_tasks(logger_site, case.instance_id)
    assert review.element_id == "review" and review.candidate_scope == case.grid_code


def test_a_fault_flag_opens_a_device_case_and_repeated_exceedances_merge(logger_site, db):
    send_all(logger_site, [hourly(0, "60", "N"), hourly(1, "58"), hourly(2, "20"),  # one episode, then clear
                           hourly(3, "0", "D"), hourly(4, "0", "D"),  # the analyser fails: one device case
                           hourly(5, "75"), hourly(6, "30")])  # a second exceedance episode
    device, exceedance = cases(db)
    assert (device.category, device.source, device.occurrences) == ("device.fault", "device", 1)
    assert (exceedance.category, exceedance.occurrences, exceedance.status) == ("water.exceedance", 2, "open")
