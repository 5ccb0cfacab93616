"""首页 pushed live: /home's new lists, the one-time stream ticket, the SSE stream that sends a new
alarm without a reload, and the photo bytes the console shows on a case."""

import io
import json
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import update

from api import accounts
from api.views import home_stream
from tests.api.conftest import Caller
from tests.api.images import JPEG
from tests.api.test_closed_loop_http import login, point_in_first_unit, run_jobs, signed, to_enforcement, world

__all__ = ["world"]  # the fixture, shared with the closed-loop tests


def _alarm(rt, client, clock, external_id: str):
    _unit, lon, lat = point_in_first_unit(rt)
    key = accounts.create_api_key(rt.db, clock.now(), name=f"feed-{external_id}", roles=["system"])
    r = Caller(client, {"X-API-Key": key}, "system").post("/api/v1/alarms", json={
        "tenant": "320700", "source": "monitoring", "externalId": external_id, "sourceRef": "MN-9",
        "category": "air.exceedance", "occurredAt": clock.now().isoformat(), "lon": lon, "lat": lat})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


class Stream:
    """Reads events off a streamed test response (its generator runs as it is read)."""

    def __init__(self, response) -> None:
        self.response, self.chunks, self.buffer = response, iter(response.response), ""

    def next_events(self, wanted: int, kind: str = "home") -> list[dict]:
        out: list[dict] = []
        while len(out) < wanted:
            self.buffer += next(self.chunks).decode()  # the stream ends (StopIteration) after MAX_LIFE_S
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                              and not line.startswith(":"))
                if fields.get("event") == kind:
                    out.append(json.loads(fields["data"]))
        return out


def _ticket(caller, tenant="320700"):
    r = caller.post("/api/v1/home/stream-ticket", json={"tenant": tenant})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_home_lists_awaiting_dispatch_and_awaiting_verification(world, clock):
    rt, client, _fake = world
    case, sup, _act = to_enforcement(rt, client, clock)
    run_jobs(rt)
    assert signed(client, {"caseId": case["id"], "result": "rectified"}, "cb-h").status_code == 200
    page = sup.get("/api/v1/home?tenant=320700").get_json()
    assert page["awaitingVerification"]["count"] == 1
    assert page["awaitingVerification"]["items"][0]["caseId"] == case["id"]
    assert page["awaitingDispatch"]["count"] == 0
    second = _alarm(rt, client, clock, "H-2")
    items = sup.get(f"/api/v1/task?processInstanceId={second['processInstanceId']}").get_json()["items"]
    assert sup.post(f"/api/v1/task/{items[0]['id']}/complete",
                    json={"variables": {"review_result": "valid"}}).status_code == 200
    page = sup.get("/api/v1/home?tenant=320700").get_json()
    assert [i["caseId"] for i in page["awaitingDispatch"]["items"]] == [second["id"]]
    assert page["alarms"]["count"] == 0


def test_a_new_alarm_is_pushed_to_an_open_stream(world, clock):
    rt, client, _fake = world
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    ticket = _ticket(sup)
    assert ticket["expiresIn"] == home_stream.TICKET_TTL_S
    stream = client.get(ticket["url"], buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    try:
        events = Stream(stream)
        (first,) = events.next_events(1)
        assert first["alarms"]["count"] == 0 and set(first) >= {"awaitingDispatch", "awaitingVerification"}
        case = _alarm(rt, client, clock, "S-1")
        (second,) = events.next_events(1)
        assert [i["caseId"] for i in second["alarms"]["items"]] == [case["id"]]
    finally:
        stream.close()


def test_a_stream_ticket_is_good_once_for_the_roles_of_home(world, clock):
    rt, client, _fake = world
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    inspector = login(rt, client, clock, "insp", ["inspector"], "320703")
    assert inspector.post("/api/v1/home/stream-ticket", json={"tenant": "320700"}).status_code == 403
    assert client.post("/api/v1/home/stream-ticket", json={"tenant": "320700"}).status_code == 401
    bad = sup.post("/api/v1/home/stream-ticket", json={"tenant": "32070"})
    assert bad.status_code == 422 and "tenant" in bad.get_json()["error"]["fields"]
    assert client.get("/api/v1/home/stream").status_code == 401
    assert client.get("/api/v1/home/stream?ticket=forged").get_json()["error"]["code"] == "invalid_ticket"
    ticket = _ticket(sup)
    first = client.get(ticket["url"], buffered=False)
    assert first.status_code == 200
    first.close()
    again = client.get(ticket["url"])
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "ticket_used"


def test_an_expired_ticket_or_a_deactivated_user_is_refused(world, clock, app_secret="t"):
    rt, client, _fake = world
    login(rt, client, clock, "city-sup", ["supervisor"], "3207")

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - home_stream.TICKET_TTL_S - 5

    stale = URLSafeTimedSerializer(app_secret, salt=home_stream.TICKET_SALT, signer=Earlier).dumps(
       {"sub": "city-sup", "tenant": "320700", "n": "x"})
    r = client.get(f"/api/v1/home/stream?ticket={stale}")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "ticket_expired"
    sup = login(rt, client, clock, "sup2", ["supervisor"], "3207")
    ticket = _ticket(sup)
    with rt.db.transaction() as s:
        s.execute(update(accounts.User).where(accounts.User.username == "sup2").values(active=False))
    assert client.get(ticket["url"]).status_code == 401


def test_logging_out_ends_an_open_stream_and_its_ticket(world, clock):
    rt, client, _fake = world
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    unused = _ticket(sup)
    stream = client.get(_ticket(sup)["url"], buffered=False)
    try:
        events = Stream(stream)
        events.next_events(1)
        assert sup.post("/api/v1/auth/logout", json={}).status_code in (200, 204)
        assert events.next_events(1, kind="ended") == [{}]  # the logout's audit event woke the check
        assert list(events.chunks) == []  # and nothing follows
    finally:
        stream.close()
    r = client.get(unused["url"])
    assert r.status_code == 401 and "session" in r.get_json()["error"]["message"]


def test_a_process_serves_a_bounded_number_of_streams(world, clock):
    rt, client, _fake = world
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    open_ = [client.get(_ticket(sup)["url"], buffered=False) for _ in range(home_stream.MAX_STREAMS)]
    try:
        assert all(r.status_code == 200 for r in open_)
        busy = client.get(_ticket(sup)["url"])
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "30"
    finally:
        for r in open_:
            r.close()
    again = client.get(_ticket(sup)["url"], buffered=False)
    assert again.status_code == 200  # closing a stream gives its place back
    again.close()


def test_a_photo_is_served_to_whoever_may_see_its_task(world, clock):
    rt, client, _fake = world
    case, sup, _act = to_enforcement(rt, client, clock)
    tasks = sup.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}&status=completed").get_json()["items"]
    (handle,) = [t for t in tasks if t["taskDefinitionKey"] == "handle"]
    (photo,) = [e for e in sup.get(f"/api/v1/task/{handle['id']}/evidence").get_json() if e["kind"] == "photo"]
    r = sup.get(f"/api/v1/task/{handle['id']}/evidence/{photo['id']}/file")
    assert r.status_code == 200 and r.data == JPEG and r.mimetype == "image/jpeg"
    assert "immutable" in r.headers["Cache-Control"]
    checkin = next(e for e in sup.get(f"/api/v1/task/{handle['id']}/evidence").get_json() if e["kind"] == "checkin")
    assert sup.get(f"/api/v1/task/{handle['id']}/evidence/{checkin['id']}/file").status_code == 404
    assert sup.get(f"/api/v1/task/{handle['id']}/evidence/{photo['id'] + 1000}/file").status_code == 404
    elsewhere = login(rt, client, clock, "insp-far", ["inspector"], "320723")
    assert elsewhere.get(f"/api/v1/task/{handle['id']}/evidence/{photo['id']}/file").status_code == 404
    assert client.get(f"/api/v1/task/{handle['id']}/evidence/{photo['id']}/file").status_code == 401
    assert io.BytesIO(r.data).read(2) == b"\xff\xd8"
