from sqlalchemy import func, select

from workflows.working_time import CalendarDay

YEAR_2027 = {"source": "国办发明电〔2026〕号", "holidays": [{"date": "2027-01-01", "name": "元旦"}],
             "workdays": [{"date": "2027-02-06", "name": "春节调休"}]}


def test_admin_loads_a_year_and_health_stops_warning(client, users, clock):
    assert any("2026" in w for w in client.get("/health").get_json()["warnings"])  # nothing loaded yet
    r = users["admin"]._call("put", "/api/v1/calendar/2027", json=YEAR_2027)
    assert r.status_code == 200, r.get_json()
    body = users["sup"].get("/api/v1/calendar/2027").get_json()
    assert body["holidays"] == [{"date": "2027-01-01", "name": "元旦"}] and body["loadedBy"] == "admin"
    assert not any("2027" in w for w in client.get("/health").get_json()["warnings"])


def test_bad_calendar_payloads_are_422_and_change_nothing(rt, users):
    bad = [
        {"source": "x", "holidays": [{"date": "2026-05-01"}]},                              # wrong year
        {"source": "x", "holidays": [], "workdays": [{"date": "2027-01-05"}]},              # a weekday
        {"source": "x", "holidays": [{"date": "2027-13-01"}]},                              # not a date
        {"source": "x", "holidays": [{"date": "2027-01-01"}, {"date": "2027-01-01"}]},      # twice
        {"holidays": []},                                                                    # no source
    ]
    for body in bad:
        r = users["admin"]._call("put", "/api/v1/calendar/2027", json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert r.get_json()["error"]["fields"]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(CalendarDay)) == 0
    outside = users["admin"]._call("put", "/api/v1/calendar/1999", json=YEAR_2027)
    assert outside.status_code == 404
    message = outside.get_json()["error"]["message"]
    assert message == "the calendar covers the years 2000 to 2100; 1999 is not one of them"
    assert "2000 to 2100" in users["admin"]._call("get", "/api/v1/calendar/2101").get_json()["error"]["message"]
