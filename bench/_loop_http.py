"""The loop over HTTP of `python -m bench.loop`: one client's loop (the steps: bench/loop.py's
docstring) and the phases that run clients concurrently, each stopped by a deadline after its
current loop."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench._loop_client import Client, LoopFailure, Recorder, failure_cause, login
from bench._loop_setup import CATEGORY, SUP, TENANT, _settings, noisy_jpeg
from bench._loop_support import EnforcementSink, Unit

log = logging.getLogger("bench.loop")

PUSH_TIMEOUT_S = 60.0
VERIFY_TIMEOUT_S = 60.0
POLL_S = 0.02


class Stop(Exception):
    """The run's hard deadline passed in the middle of a loop."""


class LoopClient:
    """One client: a basic unit of its own, the routed inspector's session, the shared supervisor and
    system sessions (each client has its own `requests` sessions)."""

    def __init__(self, index: int, unit: Unit, bench: Bench) -> None:
        self.index = index
        self.unit = unit
        self.b = bench
        rec = bench.rec
        self.sup = login(bench.base, rec, SUP, bench.password)
        self.system = Client(bench.base, rec, {"X-API-Key": bench.api_key}, "system:monitoring")
        self.enforcement = Client(bench.base, rec, {}, "enforcement")
        self.inspector: Client | None = None
        self.loop_ms: list[float] = []
        self.push_wait_ms: list[float] = []
        self.verify_wait_ms: list[float] = []
        self.verify_polls = 0
        self.callbacks = {"delivered": 0, "buffered": 0}
        self.complete_ms: dict[str, list[float]] = {}

    def close(self) -> None:
        for c in (self.sup, self.system, self.enforcement, self.inspector):
            if c is not None:
                c.close()

    def _task(self, caller: Client, iid: str, element: str) -> dict[str, Any] | None:
        items = caller.call("GET", "GET /task", f"/api/v1/task?processInstanceId={iid}&taskDefinitionKey={element}")
        return items["items"][0] if items["items"] else None

    def _one(self, caller: Client, iid: str, element: str) -> dict[str, Any]:
        task = self._task(caller, iid, element)
        if task is None:
            raise LoopFailure(f"{element} of {iid} is not visible to {caller.name}", "task_missing")
        return task

    def _complete(self, caller: Client, task: dict[str, Any], variables: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        caller.call("POST", "POST /task/{id}/complete", f"/api/v1/task/{task['id']}/complete",
                    json={"variables": variables})
        self.complete_ms.setdefault(task["taskDefinitionKey"], []).append((time.perf_counter() - t0) * 1000.0)

    def _patience(self, timeout_s: float) -> float:
        """`timeout_s`, or less when the run's hard deadline comes first."""
        return max(0.0, min(timeout_s, self.b.hard_deadline - time.monotonic()))

    def loop(self, n: int, measured: bool) -> None:
        b, unit = self.b, self.unit
        t_start = time.perf_counter()
        ext = f"L{self.index}-{n}-{uuid.uuid4().hex[:6]}"
        case = self.system.call("POST", "POST /alarms", "/api/v1/alarms", json={
            "tenant": TENANT, "source": "monitoring", "externalId": ext, "sourceRef": f"MN-{ext}",
            "category": CATEGORY, "occurredAt": datetime.now(UTC).isoformat(), "lon": unit.lon, "lat": unit.lat,
            "description": "bench: SO2 above the limit"})
        if case.get("outcome") != "filed":
            raise LoopFailure(f"alarm {ext} was {case.get('outcome')}, not filed", "alarm_not_filed")
        iid, case_id = case["processInstanceId"], case["id"]
        self._complete(self.sup, self._one(self.sup, iid, "review"), {"review_result": "valid"})
        self._complete(self.sup, self._one(self.sup, iid, "dispatch"), {})
        if self.inspector is None:  # the warm-up finds out whom the case is routed to
            assignee = self._one(self.sup, iid, "sign_for")["assignee"]
            self.inspector = b.inspector(assignee, unit)
        insp = self.inspector
        self._complete(insp, self._one(insp, iid, "sign_for"), {})
        handle = self._one(insp, iid, "handle")
        url = f"/api/v1/task/{handle['id']}"
        insp.call("POST", "POST /task/{id}/checkin", f"{url}/checkin", json={"lon": unit.lon, "lat": unit.lat})
        photo = noisy_jpeg(b.photo_bytes)
        insp.call("POST", "POST /task/{id}/photos", f"{url}/photos",
                  files={"file": ("site.jpg", photo, "image/jpeg")})
        self._complete(insp, handle, {"handle_result": "done", "finding_kind": "violation",
                                      "findings": "治污设施停运"})
        handled = time.perf_counter()
        arrived = b.sink.wait_for(case_id, self._patience(PUSH_TIMEOUT_S))
        if arrived is None:
            if time.monotonic() >= b.hard_deadline:
                raise Stop
            raise LoopFailure(f"the push of {case_id} did not arrive within {PUSH_TIMEOUT_S}s", "push_timeout")
        push_wait = (arrived - handled) * 1000.0
        body = json.dumps({"caseId": case_id, "result": "penalized", "amount": 50000,
                           "ticket": b.sink.tickets.get(case_id, "")}).encode()
        cb_id, ts = f"cb-{case_id}", str(int(time.time()))
        from api.views.enforcement import callback_signature

        answer = self.enforcement.call("POST", "POST /enforcement/callback", "/api/v1/enforcement/callback",
                                       idempotent=True, data=body, headers={  # a repeated callback id changes nothing
            "Content-Type": "application/json", "X-Callback-Id": cb_id, "X-Timestamp": ts,
            "X-Signature": callback_signature(b.secret, cb_id, ts, body)})
        called_back = time.perf_counter()
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        polls = 0
        while (verify := self._task(self.sup, iid, "verify")) is None:
            polls += 1
            if b.stop.is_set() or time.monotonic() >= b.hard_deadline:
                raise Stop
            if time.monotonic() > deadline:
                raise LoopFailure(f"verify of {case_id} did not appear within {VERIFY_TIMEOUT_S}s", "verify_timeout")
            time.sleep(POLL_S)
        verify_wait = (time.perf_counter() - called_back) * 1000.0
        self._complete(self.sup, verify, {"verified": True})
        detail = self.sup.call("GET", "GET /cases/{id}", f"/api/v1/cases/{case_id}")
        if detail.get("processStatus") != "completed" or detail.get("openTasks"):
            raise LoopFailure(f"case {case_id} is {detail.get('processStatus')} with open tasks "
                              f"{[t['taskDefinitionKey'] for t in detail.get('openTasks', [])]}", "not_completed")
        if measured:
            self.loop_ms.append((time.perf_counter() - t_start) * 1000.0)
            self.push_wait_ms.append(push_wait)
            self.verify_wait_ms.append(verify_wait)
            self.verify_polls += polls
            self.callbacks[answer["status"]] = self.callbacks.get(answer["status"], 0) + 1
        b.case_ids.append(case_id)


class Bench:
    """What the clients share: the server's address and secrets, the recorder, the failures by cause
    and the deadlines (monotonic): `hard_deadline` ends a loop in the middle."""

    def __init__(self, args: argparse.Namespace, url: str, base: str, sink: EnforcementSink, secret: str,
                 password: str, api_key: str, units: list[Unit], hard_deadline: float) -> None:
        from api.wiring import make_database

        self.args = args
        self.url = url
        self.base = base
        self.sink = sink
        self.secret = secret
        self.password = password
        self.api_key = api_key
        self.units = units
        self.hard_deadline = hard_deadline
        self.photo_bytes = args.photo_kb * 1024
        self.rec = Recorder(enabled=False)  # each phase says whether it is measured
        self.stop = threading.Event()
        self.case_ids: list[str] = []
        self.failures: list[str] = []
        self.failures_by_cause: Counter = Counter()
        self.cut_by_time = 0
        self._lock = threading.Lock()
        self._created: set[str] = set()
        self._db = make_database(_settings(url, ""))

    def inspector(self, username: str, unit: Unit) -> Client:
        """The routed inspector's session; the user is created on first need (scope: their unit)."""
        from api import accounts

        with self._lock:
            if username not in self._created:
                # a unit's inspector by day on working days, the district's duty inspector at night and on holidays
                prefix = next((p for p in ("insp-", "duty-insp-") if username.startswith(p)), None)
                if prefix is None:
                    raise LoopFailure(f"the case was routed to {username!r}, not to a grid inspector", "routing")
                accounts.create_user(self._db, datetime.now(UTC), username=username, password=self.password,
                                     roles=["inspector"], scope=username.removeprefix(prefix))
                self._created.add(username)
            return login(self.base, self.rec, username, self.password)

    def run_phase(self, clients: list[LoopClient], loops: int, measured: bool, until: float | None = None) -> float:
        """Run `loops` loops over the clients (each takes the next loop number when free) and no loop
        is started after `until` (monotonic); wall seconds."""
        counter = itertools.count()
        self.rec.enabled = measured

        def work(c: LoopClient) -> None:
            while not self.stop.is_set():
                if until is not None and time.monotonic() >= until:
                    return
                n = next(counter)
                if n >= loops:
                    return
                try:
                    c.loop(n, measured)
                except Stop:
                    with self._lock:
                        self.cut_by_time += 1
                    return
                except Exception as exc:  # record and go on with the next loop
                    cause = failure_cause(exc)
                    with self._lock:
                        self.failures.append(f"client {c.index} loop {n}: {cause}: {exc}"[:400])
                        self.failures_by_cause[cause] += 1
                    if not isinstance(exc, LoopFailure):
                        log.warning("client %d loop %d failed: %r", c.index, n, exc)

        threads = [threading.Thread(target=work, args=(c,), name=f"client-{c.index}", daemon=True) for c in clients]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
        return time.perf_counter() - t0

    def time_page(self, caller: Client, path: str, samples: int, until: float | None = None) -> list[float]:
        out = []
        for _ in range(samples):
            if until is not None and time.monotonic() >= until:
                break
            t0 = time.perf_counter()
            caller.call("GET", f"page:{path}", path)
            out.append((time.perf_counter() - t0) * 1000.0)
        return out
