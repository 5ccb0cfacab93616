"""The reference enforcement system against GridLoop over real HTTP on loopback: the engine's job
pushes a case to the simulator, which calls back into a GridLoop served by werkzeug, and the case
goes on to verification; an outage runs the engine's retries into an incident that an operator
retries once the outage is over; a refusal is an incident at once. Plus the simulator on its own:
signatures, idempotency, the result distribution, its callback retries, and running it as a
separate process that imports nothing of GridLoop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from api import create_app
from api.settings import Settings
from api.views.enforcement import callback_signature
from engine import definitions, outbox
from engine.models import OutboxEntry
from engine.queues import ManualJobQueue
from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient, EnforcementUnavailable, sign
from integrations.reference_enforcement import EnforcementSimulator, SimConfig, parse_results, result_for
from tests.api.conftest import Caller
from tests.api.test_closed_loop_http import MODEL, login, to_enforcement
from workflows.demo_seed import seed_demo
from workflows.install import install
from workflows.working_time import CalendarService, seed_from_package

SECRET = "enforcement-shared-secret"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    rt: Runtime
    client: object  # the Flask test client (the people's side)
    sim: EnforcementSimulator
    gridloop_url: str  # the real server the simulator calls back


@pytest.fixture
def start_world(rt, clock, tmp_path) -> Iterator:
    """The demo city world of tests/api/test_closed_loop_http.py, with GridLoop served on loopback
    and the reference enforcement system in front of it: `start_world(push_secret=…, delay_s=…)`."""
    stack = ExitStack()

    def start(*, push_secret: str = SECRET, delay_s: float = 0.05) -> World:
        clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
        seed_from_package(rt.db, clock.now(), years=[2026])
        seed_demo(rt.db, clock.now() - timedelta(hours=1))
        holder: dict = {}
        server = make_server("127.0.0.1", 0, lambda environ, respond: holder["app"](environ, respond),
                             threaded=True)
        gridloop_url = f"http://127.0.0.1:{server.server_port}"
        sim = stack.enter_context(EnforcementSimulator(SimConfig(
            secret=SECRET, port=0, delay_s=delay_s, callback_url=f"{gridloop_url}/api/v1/enforcement/callback",
            callback_backoff_s=0.05)))
        install(rt, calendar=CalendarService(rt.db).calendar, enforcement=EnforcementClient(sim.url, push_secret))
        definitions.deploy(rt, MODEL.read_bytes(), "admin")
        app = create_app(Settings(database_url=rt.db.url, secret_key="t", enforcement_secret=SECRET,
                                  deploy_bundled=False, storage_dir=str(tmp_path / "uploads"),
                                  max_photo_bytes=10_000), runtime=rt)
        holder["app"] = app
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        return World(rt, app.test_client(), sim, gridloop_url)

    with stack:
        yield start


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def set_outage(sim: EnforcementSimulator, on: bool) -> None:
    assert http("POST", f"{sim.base_url}/admin/outage", json.dumps({"on": on}).encode()) == (200, {"outage": on})


def run_jobs(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def open_tasks(caller: Caller, case: dict) -> list[str]:
    items = caller.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"]
    return [t["taskDefinitionKey"] for t in items]


def waiting_pushes(rt) -> list[OutboxEntry]:
    """Outbox rows of `enforcement.push` calls not done yet (the first call, or a retry)."""
    with rt.db.session() as s:
        rows = s.scalars(select(OutboxEntry).where(OutboxEntry.job == "service_call", OutboxEntry.done_at.is_(None))
                         .order_by(OutboxEntry.id))
        return [r for r in rows if r.payload.get("operation") == "enforcement.push"]


# -- GridLoop and the simulator together (PostgreSQL and SQLite) -------------------------------------

def test_a_pushed_case_comes_back_signed_from_the_simulator_and_goes_on_to_verification(start_world, clock):
    w = start_world()
    case, sup, act = to_enforcement(w.rt, w.client, clock)
    run_jobs(w.rt)
    held = w.sim.wait_for_callback(f"{case['id']}-1")  # the first enforcement round's Idempotency-Key
    assert held is not None and (held["callback"], held["callback_status"]) == ("delivered", 200), held
    assert held["body"] == {"case_id": case["id"], "push_id": f"{case['id']}-1", "category": "air.exceedance",
                            "grid": held["body"]["grid"], "findings": "治污设施停运"}
    assert open_tasks(sup, case) == ["verify"]
    variables = sup.get(f"/api/v1/process-instance/{case['processInstanceId']}/variables").get_json()
    result, amount = result_for(case["id"], SimConfig(secret="x").results)
    assert variables["enforcement_ticket"] == {"ticket": held["ticket"]}
    assert variables["enforcement"]["result"] == result and variables["enforcement"].get("amount") == amount
    assert variables["enforcement"]["ticket"] == held["ticket"]

    # GridLoop pushing the same case again (a retry after a lost answer): the same ticket, no second callback
    again = EnforcementClient(w.sim.url, SECRET).push({"case_id": case["id"], "push_id": f"{case['id']}-1",
                                                       "category": "air.exceedance"})
    assert again == {"ticket": held["ticket"]}
    time.sleep(0.2)
    first_round = w.sim.case(f"{case['id']}-1")
    assert (first_round["pushes"], first_round["callback_attempts"]) == (2, 1)
    assert len(w.sim.cases()) == 1

    act(sup, "verify", verified=True)
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert (detail["status"], detail["outcome"]) == ("closed", "closed")


def pushes(incidents: list[dict]) -> list[dict]:
    """The enforcement pushes' incidents (the demo's staff have no phone: their notices are incidents too)."""
    return [i for i in incidents if i["operation"] == "enforcement.push"]


def test_an_outage_retries_with_backoff_into_an_incident_and_an_operator_retry_delivers(start_world, clock):
    w = start_world()
    set_outage(w.sim, True)
    case, sup, _act = to_enforcement(w.rt, w.client, clock)
    admin = login(w.rt, w.client, clock, "ops", ["admin"], None)
    delays = []
    for attempt in range(1, 7):  # enforcement.push: max_attempts=6
        run_jobs(w.rt)
        pending = waiting_pushes(w.rt)
        if attempt == 6:
            assert pending == []
            break
        (retry,) = pending
        assert retry.payload["attempt"] == attempt + 1 and "503" in retry.payload["last_error"]
        delays.append((retry.available_at - retry.created_at).total_seconds())
        run_jobs(w.rt)
        assert [(p.id, p.relayed_at) for p in waiting_pushes(w.rt)] == [(retry.id, None)]  # not before its time
        clock.set(retry.available_at)
    for got, base in zip(delays, (10, 20, 40, 80, 160), strict=True):  # doubling, plus up to 10 % jitter
        assert base <= got <= base * 1.1 + 0.001, delays
    assert w.sim.cases() == []  # nothing got in

    (incident,) = pushes(admin.get("/api/v1/incident").get_json()["items"])
    assert incident["operation"] == "enforcement.push" and incident["attempts"] == 6
    assert "503" in incident["message"]
    assert open_tasks(sup, case) == []  # the case waits on the push, nothing for people to do

    set_outage(w.sim, False)
    r = admin.post(f"/api/v1/incident/{incident['id']}/retry")
    assert r.status_code == 200, r.get_json()
    run_jobs(w.rt)
    held = w.sim.wait_for_callback(f"{case['id']}-1")
    assert held is not None and held["callback"] == "delivered"
    assert open_tasks(sup, case) == ["verify"]
    assert pushes(admin.get("/api/v1/incident").get_json()["items"]) == []


def test_a_refused_push_is_an_incident_at_once(start_world, clock):
    w = start_world(push_secret="not-the-shared-one")  # the simulator answers 401
    case, _sup, _act = to_enforcement(w.rt, w.client, clock)
    admin = login(w.rt, w.client, clock, "ops", ["admin"], None)
    run_jobs(w.rt)
    assert waiting_pushes(w.rt) == []  # no retry scheduled
    (incident,) = pushes(admin.get("/api/v1/incident").get_json()["items"])
    assert incident["attempts"] == 1 and "refused" in incident["message"] and "401" in incident["message"]
    assert incident["processInstanceId"] == case["processInstanceId"]
    assert w.sim.cases() == []


# -- the simulator on its own ----------------------------------------------------------------------

class CallbackStub:
    """GridLoop's callback endpoint as the simulator sees it: answers the scripted statuses, then 200."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[tuple[float, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append((time.monotonic(), dict(self.headers), body))
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/enforcement/callback"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[CallbackStub]:
    s = CallbackStub()
    yield s
    s.close()


def sim_config(callback_url: str, **kw) -> SimConfig:
    return SimConfig(**{"secret": SECRET, "port": 0, "delay_s": 0.01, "callback_url": callback_url,
                        "callback_backoff_s": 0.05, **kw})


def push(sim: EnforcementSimulator, key: str, body: bytes, *, secret: str = SECRET, ts: int | None = None,
         signature: str | None = None) -> tuple[int, dict]:
    ts_text = str(int(time.time()) if ts is None else ts)
    return http("POST", sim.url, body, {"Content-Type": "application/json", "Idempotency-Key": key,
                                        "X-Timestamp": ts_text,
                                        "X-Signature": signature or sign(secret, key, ts_text, body)})


def test_the_simulator_refuses_forged_stale_and_malformed_pushes(stub):
    with EnforcementSimulator(sim_config(stub.url)) as sim:
        body = b'{"case_id": "C-1"}'
        assert push(sim, "C-1", body, secret="forged") == (401, {"error": "bad_signature"})
        assert push(sim, "C-1", body, signature="0" * 64)[0] == 401
        assert push(sim, "C-2", body, signature=sign(SECRET, "C-1", str(int(time.time())), body))[0] == 401
        assert push(sim, "C-1", body, ts=int(time.time()) - 301)[1]["error"] == "stale"
        assert push(sim, "", body)[0] == 400
        assert push(sim, "C-1", b"[1, 2]")[0] == 400
        assert http("POST", f"{sim.base_url}/admin/outage", b'{"on": "yes"}')[0] == 400
        assert http("GET", f"{sim.base_url}/nowhere")[0] == 404
        with pytest.raises(Exception, match="401"):
            EnforcementClient(sim.url, "forged").push({"case_id": "C-1"})
        assert sim.cases() == [] and stub.calls == []
        assert http("GET", f"{sim.base_url}/health") == (200, {"ok": True, "outage": False, "cases": 0})


def test_the_simulator_keeps_one_case_per_idempotency_key_and_answers_503_in_an_outage(stub):
    with EnforcementSimulator(sim_config(stub.url)) as sim:
        first = push(sim, "C-1", b'{"case_id": "C-1"}')
        assert first[0] == 201 and first[1]["ticket"] == "ZF-000001"
        assert push(sim, "C-1", b'{"case_id": "C-1", "findings": "again"}') == (
            200, {"ticket": "ZF-000001", "status": "accepted", "duplicate": True})
        assert push(sim, "C-2", b'{"case_id": "C-2"}')[1]["ticket"] != "ZF-000001"
        set_outage(sim, True)
        assert push(sim, "C-3", b'{"case_id": "C-3"}')[0] == 503
        with pytest.raises(EnforcementUnavailable, match="503"):
            EnforcementClient(sim.url, SECRET).push({"case_id": "C-3"})
        set_outage(sim, False)
        assert EnforcementClient(sim.url, SECRET).push({"case_id": "C-3"})["ticket"]
        assert http("GET", f"{sim.base_url}/cases/C-1")[1]["pushes"] == 2
        assert http("GET", f"{sim.base_url}/cases/ZF-000001")[1]["key"] == "C-1"
        assert len(http("GET", f"{sim.base_url}/cases")[1]["items"]) == 3


def test_the_callback_is_signed_as_gridloop_verifies_it_and_retried_with_backoff(stub):
    stub.script = [503, 503]  # GridLoop down twice
    with EnforcementSimulator(sim_config(stub.url)) as sim:
        assert push(sim, "C-1", b'{"case_id": "C-1"}')[0] == 201
        held = sim.wait_for_callback("C-1", timeout_s=5)
    assert held["callback"] == "delivered" and held["callback_attempts"] == 3
    ids = {headers["X-Callback-Id"] for _t, headers, _b in stub.calls}
    assert ids == {held["callback_id"]}  # one id on every attempt: GridLoop keeps the first delivery only
    for _t, headers, body in stub.calls:
        assert headers["X-Signature"] == callback_signature(SECRET, headers["X-Callback-Id"],
                                                            headers["X-Timestamp"], body)
        assert abs(int(headers["X-Timestamp"]) - time.time()) < 5
    (t0, _h, body), (t1, _h1, _b1), (t2, _h2, _b2) = stub.calls
    assert t1 - t0 >= 0.05 and t2 - t1 >= 0.1  # backoff doubles
    sent = json.loads(body)
    result, amount = result_for("C-1", SimConfig(secret="x").results)
    assert (sent["caseId"], sent["result"], sent["ticket"], sent.get("amount")) == ("C-1", result, held["ticket"],
                                                                                    amount)
    assert datetime.fromisoformat(sent["decidedAt"]).tzinfo is not None


def test_a_refused_or_unreachable_callback_ends_as_failed(stub):
    stub.script = [401]
    with EnforcementSimulator(sim_config(stub.url)) as sim:
        push(sim, "C-1", b"{}")
        refused = sim.wait_for_callback("C-1", timeout_s=5)
    assert (refused["callback"], refused["callback_attempts"], refused["callback_status"]) == ("failed", 1, 401)
    with EnforcementSimulator(sim_config("http://127.0.0.1:1/callback", callback_attempts=3)) as sim:
        push(sim, "C-1", b"{}")
        down = sim.wait_for_callback("C-1", timeout_s=5)
    assert (down["callback"], down["callback_attempts"]) == ("failed", 3) and "refused" in down["last_error"].lower()


def test_results_follow_the_distribution_and_the_case_id():
    default = SimConfig(secret="x").results
    ids = [f"CASE-{i}" for i in range(4000)]
    drawn = [result_for(i, default) for i in ids]
    assert drawn == [result_for(i, default) for i in ids]  # deterministic
    share = {r: sum(1 for d, _a in drawn if d == r) / len(ids) for r in ("penalized", "rectified", "no_violation")}
    assert abs(share["penalized"] - 0.5) < 0.03 and abs(share["rectified"] - 0.3) < 0.03
    assert all((a is not None) == (r == "penalized") for r, a in drawn)
    assert all(5000 <= a <= 200000 for r, a in drawn if a is not None)
    only = parse_results("rectified=1, penalized=0")
    assert {result_for(i, only)[0] for i in ids[:200]} == {"rectified"}
    for bad in ("", "fined=1", "penalized", "penalized=x", "penalized=-1", "penalized=0"):
        with pytest.raises(ValueError):
            parse_results(bad)


def test_the_simulator_imports_nothing_of_gridloop():
    code = ("import sys, integrations.reference_enforcement, integrations.reference_enforcement.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('engine', 'workflows', 'api', 'notifications', 'flask', 'sqlalchemy') "
            "or m == 'integrations.enforcement'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gridloop_enforcement_sim_runs_as_a_separate_process(stub):
    gridloop = Path(sys.executable).parent / "gridloop"
    argv = ([str(gridloop), "enforcement-sim"] if gridloop.exists()
            else [sys.executable, "-m", "integrations.reference_enforcement"])
    env = {**os.environ, "GRIDLOOP_ENFORCEMENT_SECRET": SECRET, "GRIDLOOP_SIM_CALLBACK_URL": stub.url,
           "GRIDLOOP_SIM_DELAY": "0.05", "GRIDLOOP_SIM_RESULTS": "no_violation=1"}
    proc = subprocess.Popen([*argv, "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert "push to http://127.0.0.1:" in line, line
        url = line.split("push to ", 1)[1].split()[0]
        assert EnforcementClient(url, SECRET).push({"case_id": "C-9", "category": "noise"})["ticket"]
        deadline = time.monotonic() + 10
        while not stub.calls and time.monotonic() < deadline:
            time.sleep(0.02)
        (_t, headers, body), = stub.calls
        assert json.loads(body)["result"] == "no_violation" and json.loads(body)["caseId"] == "C-9"
        assert headers["X-Signature"] == callback_signature(SECRET, headers["X-Callback-Id"],
                                                            headers["X-Timestamp"], body)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
