"""The readings store and intake, on PostgreSQL and SQLite: bulk insert, a repeat stored once,
`last_seen_at` moved forward only, hooks in the storing transaction, the device check, HJ 212 packets
to rows, retention."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from integrations.hj212 import Flag, encode, parse
from workflows import readings
from workflows.readings import ReadingRow, ReadingsIntake, StoredReading, purge_older_than, store_readings
from workflows.sources import MonitoringSource

MN, MN2 = "010000A8900016F000169DC0", "Y80110010000010"
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def add_source(db, clock, mn=MN, password="123456", active=True):
    with db.transaction() as s:
        s.add(MonitoringSource(mn=mn, tenant="320700", kind="outlet", name=f"source {mn}", password=password,
                               active=active, created_at=clock.now()))


def row(mn=MN, pollutant="a21026", kind="Rtd", value="12.5", at=T0, received=T0, flag="N", cn="2011"):
    return ReadingRow(mn=mn, pollutant=pollutant, cn=cn, kind=kind, value=Decimal(value), flag=flag, data_time=at,
                      received_at=received)


def stored(db) -> list[StoredReading]:
    with db.session() as s:
        return list(s.scalars(select(StoredReading).order_by(StoredReading.data_time, StoredReading.pollutant,
                                                             StoredReading.kind)))


def test_bulk_insert_keeps_every_field(db):
    rows = [row(pollutant=f"a{21000 + i}", value=f"{i}.25", at=T0 + timedelta(minutes=i)) for i in range(2500)]
    rows.append(row(pollutant="w01018", kind="Avg", value="49.20", flag=None, cn="2061"))
    with db.transaction() as s:
        assert store_readings(s, rows) == 2501
    got = stored(db)
    assert len(got) == 2501
    w = next(r for r in got if r.pollutant == "w01018")
    assert (w.mn, w.cn, w.kind, w.flag, w.data_time, w.received_at) == (MN, "2061", "Avg", None, T0, T0)
    assert w.value == Decimal("49.20")
    assert got[-1].value == Decimal("2499.25") and got[-1].data_time == T0 + timedelta(minutes=2499)


def test_a_repeated_reading_is_stored_once(db):
    with db.transaction() as s:
        store_readings(s, [row(), row(pollutant="a21002")])
    with db.transaction() as s:  # the packet again (its ack was lost), with one new reading
        store_readings(s, [row(value="99"), row(pollutant="a21002"), row(pollutant="a21002", kind="ZsRtd")])
    got = stored(db)
    assert [(r.pollutant, r.kind, r.value) for r in got] == [
        ("a21002", "Rtd", Decimal("12.5")), ("a21002", "ZsRtd", Decimal("12.5")), ("a21026", "Rtd", Decimal("12.5"))]


def test_fields_that_need_escaping_and_values_of_any_type_are_stored_as_given(db):
    # PostgreSQL stores through COPY text it writes itself: tabs, newlines, backslashes and a "\\N" must
    # come back verbatim, times in another zone as the same instant, tiny and negative decimals exact;
    # a float (REST) takes psycopg's own adaptation, and a repeat within one batch is stored once
    china = timezone(timedelta(hours=8))
    odd = ["MN\twith\ttabs", "MN\\back\\slash", "MN\nnew\rline", "\\N"]
    rows = [row(mn=mn, pollutant="a21026", value=v, at=T0 + timedelta(minutes=i), flag=None if i % 2 else "N")
            for i, (mn, v) in enumerate(zip(odd, ["-0.0000001", "1234.25", "0", "-5"], strict=True))]
    rows.append(row(at=datetime(2026, 3, 1, 8, 0, 30, 250000, tzinfo=china), value="7.0", kind="ZsRtd"))
    rows.append(rows[-1])
    with db.transaction() as s:
        store_readings(s, rows)
    with db.transaction() as s:
        store_readings(s, [ReadingRow(mn=MN, pollutant="a21002", cn="2011", kind="Rtd", value=1.5, flag="N",
                                      data_time=T0, received_at=T0)])
    got = {(r.mn, r.kind, r.pollutant): r for r in stored(db)}
    assert len(got) == 6
    for i, (mn, value) in enumerate(zip(odd, ["-1E-7", "1234.25", "0", "-5"], strict=True)):
        r = got[(mn, "Rtd", "a21026")]
        assert (r.value, r.flag, r.data_time) == (Decimal(value), None if i % 2 else "N", T0 + timedelta(minutes=i))
    z = got[(MN, "ZsRtd", "a21026")]
    assert (z.value, z.data_time) == (Decimal("7.0"), datetime(2026, 3, 1, 0, 0, 30, 250000, tzinfo=UTC))
    assert got[(MN, "Rtd", "a21002")].value == Decimal("1.5")


def test_rows_that_do_not_fit_are_refused_before_the_database(db):
    with pytest.raises(ValueError), db.transaction() as s:
        store_readings(s, [row(), row(pollutant="x" * 41)])
    assert stored(db) == []


def test_accept_moves_last_seen_forward_only(db, clock):
    add_source(db, clock)
    add_source(db, clock, mn=MN2)
    intake = ReadingsIntake(db, clock)
    clock.set(T0 + timedelta(hours=1))
    intake.accept([row(received=T0 + timedelta(hours=1)), row(mn=MN2, received=T0 + timedelta(hours=2))])
    intake.accept([row(pollutant="a21002", received=T0)])  # received earlier (a batch that waited)
    with db.session() as s:
        assert s.get(MonitoringSource, MN).last_seen_at == T0 + timedelta(hours=1)
        assert s.get(MonitoringSource, MN2).last_seen_at == T0 + timedelta(hours=2)


def test_accept_fills_times_of_mappings(db, clock):
    add_source(db, clock)
    intake = ReadingsIntake(db, clock)
    assert intake.accept([{"mn": MN, "pollutant": "a21026", "cn": "2011", "kind": "Rtd", "value": Decimal("1")}]) == 1
    (r,) = stored(db)
    assert r.data_time == clock.now() and r.received_at == clock.now() and r.flag is None


def test_hooks_run_in_the_storing_transaction(db, clock):
    add_source(db, clock)
    seen = []

    def count_in_transaction(s, rows):
        seen.append((s.scalar(select(func.count()).select_from(StoredReading)), [r.pollutant for r in rows]))

    intake = ReadingsIntake(db, clock, hooks=[count_in_transaction])
    intake.accept([row(), row(pollutant="a21002")])
    assert seen == [(2, ["a21026", "a21002"])]


def test_a_failing_hook_rolls_the_batch_back(db, clock):
    add_source(db, clock)

    def broken(s, rows):
        raise RuntimeError("rules failed")

    intake = ReadingsIntake(db, clock, hooks=[broken])
    with pytest.raises(RuntimeError):
        intake.accept([row()])
    assert stored(db) == []
    with db.session() as s:
        assert s.get(MonitoringSource, MN).last_seen_at is None


def test_device_check(db, clock):
    add_source(db, clock)
    add_source(db, clock, mn=MN2, active=False)
    intake = ReadingsIntake(db, clock)
    assert intake.verdict(MN, "123456") == readings.ACCEPTED
    assert intake.verdict(MN, "654321") == readings.BAD_PASSWORD
    assert intake.verdict("NO-SUCH-MN", "123456") == readings.UNKNOWN_MN
    assert intake.verdict(MN2, "123456") == readings.INACTIVE


def test_packets_become_rows(db, clock):
    add_source(db, clock)
    data_time = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    frame = encode(st="32", cn="2061", pw="123456", mn=MN, qn="20260301160000123", flag=Flag(ack=True),
                   cp={"DataTime": data_time, "w01018-Avg": Decimal("49.20"), "w01018-Max": Decimal("51"),
                       "w01018-Flag": "N", "w21003-Avg": Decimal("3.1"), "w21003-Flag": "D"})
    no_time = encode(st="32", cn="2011", pw="123456", mn=MN, qn="20260301160500000", cp={"a21026-Rtd": 7})
    intake = ReadingsIntake(db, clock)
    assert intake.store_packets([parse(frame), parse(no_time)]) == 4
    got = {(r.pollutant, r.kind): r for r in stored(db)}
    assert set(got) == {("w01018", "Avg"), ("w01018", "Max"), ("w21003", "Avg"), ("a21026", "Rtd")}
    assert got["w01018", "Avg"].value == Decimal("49.20") and got["w01018", "Avg"].flag == "N"
    assert got["w21003", "Avg"].flag == "D" and got["w21003", "Avg"].cn == "2061"
    assert got["w01018", "Avg"].data_time == data_time
    assert got["a21026", "Rtd"].data_time == datetime(2026, 3, 1, 8, 5, tzinfo=UTC)  # the QN's time (China time)


def test_purge_deletes_what_is_older_than_the_cutoff(db):
    with db.transaction() as s:
        store_readings(s, [row(pollutant=f"a{i}", at=T0 + timedelta(days=i)) for i in range(10)])
    assert purge_older_than(db, T0 + timedelta(days=7), chunk=3) == 7
    assert [r.data_time for r in stored(db)] == [T0 + timedelta(days=i) for i in (7, 8, 9)]
    assert purge_older_than(db, T0) == 0


def test_the_wired_intake_has_the_rules_when_they_exist(db, clock):
    assert readings.intake_for(db, clock, rules=False).hooks == []
    try:
        from workflows.monitoring_rules import evaluate  # noqa: F401
    except ImportError:
        assert readings.intake_for(db, clock).hooks == []
    else:
        assert [h.__name__ for h in readings.intake_for(db, clock).hooks] == ["monitoring_rules.evaluate"]
