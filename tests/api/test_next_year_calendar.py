"""Loading next year's calendar: one file format for the API and `gridloop calendar load`, the same
refusals in the same words, /health warning from 1 December (China time) while next year is missing,
and a loaded holiday and swapped working day moving working-time deadlines.

The dates are fictional (a made-up 2031 holiday on a Wednesday, a made-up swapped Saturday): the
real holidays of a future year are published by the State Council, not guessed in a test."""

import json
import logging
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from api.cli import main
from workflows.working_time import CHINA, CalendarService

FICTIONAL = {"source": "测试数据 fictional, not a State Council notice",
             "holidays": [{"date": "2031-03-12", "name": "虚构假日 fictional holiday"}],
             "workdays": [{"date": "2031-03-15", "name": "虚构调休 fictional swapped Saturday"}]}


@pytest.fixture
def cli(rt, tmp_path, monkeypatch):
    """`gridloop …` against the test database, as an operator would run it; the root logger is put
    back afterwards (the command configures logging for its process)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.chdir(tmp_path)
    env = {"GRIDLOOP_DATABASE_URL": rt.db.url, "GRIDLOOP_SECRET_KEY": "test", "USER": "ops",
           "GRIDLOOP_LOG_LEVEL": "WARNING"}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env)

    yield run
    root.handlers[:], root.level = handlers, level


def health_warnings(client) -> list[str]:
    return client.get("/health").get_json()["warnings"]


def test_health_warns_about_next_year_from_the_first_of_december_in_china(client, users, clock):
    users["admin"]._call("put", "/api/v1/calendar/2030", json={"source": "fictional", "holidays": []})
    clock.set(datetime(2030, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 on 30 November in China
    assert health_warnings(client) == []
    clock.set(datetime(2030, 11, 30, 16, 0, tzinfo=UTC))  # midnight: 1 December in China (still November in UTC)
    (warning,) = health_warnings(client)
    assert warning.startswith("no holiday data for 2031: ")
    assert users["admin"]._call("put", "/api/v1/calendar/2031", json=FICTIONAL).status_code == 200
    assert health_warnings(client) == []


def test_the_cli_loads_the_apis_file_and_refuses_it_in_the_apis_words(rt, users, cli, tmp_path):
    bad = {"source": "x", "holidays": [{"date": "2031-01-01", "name": "元旦"}, {"date": "2030-12-31"}],
           "workdays": [{"date": "2031-03-12", "name": "a Wednesday"}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    api = users["admin"]._call("put", "/api/v1/calendar/2031", json=bad).get_json()["error"]["fields"]
    r = cli("calendar", "load", str(path))
    assert r.exit_code == 1
    for field, messages in api.items():
        assert f"{path}: {field}: {'; '.join(messages)}" in r.output
    assert "2030-12-31 is not in 2031" in r.output and "must fall on a weekend" in r.output
    path.write_text(json.dumps({"source": "x", "holidays": [{"day": "2031-01-01"}]}), encoding="utf-8")
    r = cli("calendar", "load", str(path))
    assert r.exit_code == 1 and "holidays.0.date: Missing data for required field." in r.output
    path.write_text("{not json", encoding="utf-8")
    assert cli("calendar", "load", str(path)).exit_code == 2
    assert cli("calendar", "show", "2031").exit_code == 1  # nothing was loaded

    good = tmp_path / "2031.json"
    good.write_text(json.dumps(FICTIONAL, ensure_ascii=False), encoding="utf-8")
    r = cli("calendar", "load", str(good))
    assert r.exit_code == 0, r.output
    assert "2031 loaded: 1 holidays, 1 swapped working days" in r.output
    shown = cli("calendar", "show", "2031")
    assert shown.exit_code == 0 and "loaded by cli:ops" in shown.output
    assert "2031-03-12  holiday      虚构假日 fictional holiday" in shown.output
    assert "2031-03-15  working day  虚构调休 fictional swapped Saturday" in shown.output
    body = users["admin"].get("/api/v1/calendar/2031").get_json()
    assert body["holidays"] == FICTIONAL["holidays"] and body["loadedBy"] == "cli:ops"


def test_a_loaded_holiday_and_swapped_working_day_move_working_time_deadlines(rt, users, cli, tmp_path):
    def local(*args) -> datetime:
        return datetime(*args, tzinfo=CHINA)

    service = CalendarService(rt.db, max_age=0)
    before = service.calendar()
    # 2 working hours from Tuesday 16:30: one that day, one on the next working day
    assert before.add_working_hours(local(2031, 3, 11, 16, 30), 2) == local(2031, 3, 12, 9, 30)
    assert before.add_working_hours(local(2031, 3, 14, 16, 30), 2) == local(2031, 3, 17, 9, 30)  # over the weekend
    path = tmp_path / "2031.json"
    path.write_text(json.dumps(FICTIONAL), encoding="utf-8")
    assert cli("calendar", "load", str(path)).exit_code == 0
    after = service.calendar()
    assert after.add_working_hours(local(2031, 3, 11, 16, 30), 2) == local(2031, 3, 13, 9, 30)  # Wednesday off
    assert after.add_working_hours(local(2031, 3, 14, 16, 30), 2) == local(2031, 3, 15, 9, 30)  # Saturday worked
    assert after.working_hours_between(local(2031, 3, 11, 8, 30), local(2031, 3, 16, 0, 0)) == 7.5 * 4
    assert not after.is_working_day(date(2031, 3, 12)) and 2031 in after.known_years
