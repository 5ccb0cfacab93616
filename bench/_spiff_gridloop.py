"""One model run to its end through GridLoop's REST API (the Flask test client over a real database),
with the driver policy of bench/_spiff_library.py: deploy the bundle (POST /api/v1/deployment), start
(POST /process-definition/key/{id}/start), complete the open task with the smallest element id
(POST /task/{id}/complete, no variables); when none is open, move the manual clock by the next step of
the ladder and fire due timers as the scheduler does (timers.fire_due). After every step the outbox is
relayed and its jobs run in-process (messages between instances, call-activity returns), as the
embedded runner does. The end state's completed elements are read from the stored instance states
(the root instance and the instances its call activities started)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench._spiff_library import MAX_ACTIONS, START, WAIT_LADDER, EndState, completed_elements, normalized
from bench._spiff_models import Model

PASSWORD = "bench password 1"


class GridLoopSide:
    """An app over one database, emptied before every model."""

    def __init__(self, database_url: str) -> None:
        from api import create_app, database
        from api.settings import Settings
        from engine.clock import ManualClock
        from engine.db import Database
        from engine.queues import ManualJobQueue
        from engine.runtime import Runtime

        self.db = Database(database_url)
        database.upgrade(self.db)
        self.clock = ManualClock(START)
        self.rt = Runtime(db=self.db, clock=self.clock)
        app = create_app(Settings(database_url=database_url, secret_key="bench-secret", deploy_bundled=False),
                         runtime=self.rt)
        app.config["TESTING"] = True
        self.client = app.test_client()
        self.jobs = ManualJobQueue(self.rt)
        self.headers: dict[str, str] = {}

    def close(self) -> None:
        self.db.dispose()

    # -- setup -----------------------------------------------------------------------------------

    def _reset(self) -> None:
        from api import accounts
        from api.schema_registry import metadata

        tables = [t.name for t in reversed(metadata.sorted_tables)]
        with self.db.engine.begin() as conn:
            if self.db.is_postgres:
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))
        self.rt.specs._specs.clear()  # definition ids restart: a cached spec of an earlier model would be served
        self.clock.set(START)
        self.jobs.pending.clear()
        accounts.create_user(self.db, self.clock.now(), username="bench", password=PASSWORD, roles=["admin"],
                             hash_method="pbkdf2:sha256:1000")
        token = self.client.post("/api/v1/auth/token", json={"username": "bench", "password": PASSWORD}).get_json()
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    def _get(self, path: str) -> Any:
        r = self.client.get(path, headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
        return r.get_json()

    def _post(self, path: str, **kw: Any):
        return self.client.post(path, headers=self.headers, **kw)

    def _deliver(self) -> None:
        from engine import outbox

        for _ in range(20):  # a job may throw what another job delivers
            outbox.relay(self.rt, self.jobs)
            if not self.jobs.run_all():
                return

    # -- the run ---------------------------------------------------------------------------------

    def run(self, model: Model, seconds: int = 60) -> EndState:
        """The run, stopped after `seconds` (a model may make the engine work without end)."""
        import signal

        def stop(*_args: object) -> None:
            raise TimeoutError(f"GridLoop did not end within {seconds} s")

        previous = signal.signal(signal.SIGALRM, stop)
        signal.alarm(seconds)
        try:
            return self._run(model)
        except TimeoutError as exc:
            return EndState("error", message=str(exc))
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    def _run(self, model: Model) -> EndState:
        self._reset()
        files = [(p.open("rb"), p.name) for p in model.bundle]
        try:
            r = self._post("/api/v1/deployment", data={"file": files}, content_type="multipart/form-data")
        finally:
            for fh, _name in files:
                fh.close()
        if r.status_code not in (200, 201):
            return EndState("refused", message=_refusal(r.get_json()))
        if not model.process_id:
            return EndState("completed", message="deployed a file the library cannot read")
        deployed = {p["key"] for f in r.get_json().get("files", []) for p in f.get("processes", [])}
        if deployed and model.process_id not in deployed:
            return EndState("refused", message="the bundle deployed, but not this process "
                                               f"(deployed: {', '.join(sorted(deployed))})")
        r = self._post(f"/api/v1/process-definition/key/{model.process_id}/start", json={})
        if r.status_code != 201:
            return _error(r.get_json())
        root = r.get_json()["id"]
        actions: list[str] = []
        rung = 0
        while len(actions) < MAX_ACTIONS:
            self._deliver()
            if self._get(f"/api/v1/process-instance/{root}")["status"] == "completed":
                return EndState("completed", completed=frozenset(self._completed(root)),
                                data=normalized(self._get(f"/api/v1/process-instance/{root}/variables")),
                                actions=actions)
            open_tasks = sorted(self._get("/api/v1/task?limit=200")["items"], key=lambda t: t["taskDefinitionKey"])
            if open_tasks:
                actions.append(f"complete {open_tasks[0]['taskDefinitionKey']}")
                r = self._post(f"/api/v1/task/{open_tasks[0]['id']}/complete", json={"variables": {}})
                if r.status_code not in (200, 204):
                    return _error(r.get_json(), actions)
                rung = 0
            elif rung < len(WAIT_LADDER):
                before = self._completed(root)
                self.clock.advance(WAIT_LADDER[rung])
                actions.append(f"wait {WAIT_LADDER[rung]}")
                self._fire()
                self._deliver()
                rung = 0 if self._completed(root) != before else rung + 1
            else:
                return self._incident() or EndState("waiting", completed=frozenset(self._completed(root)),
                                                    actions=actions, open_tasks=())
        return EndState("budget", completed=frozenset(self._completed(root)), actions=actions)

    def _fire(self) -> None:
        from engine import timers

        timers.fire_due(self.rt)

    def _incident(self) -> EndState | None:
        """A timer or job that failed is parked as an open incident: the run ended in an error."""
        from engine.models import Incident

        with self.db.session() as s:
            found = s.query(Incident).filter(Incident.status == "open").order_by(Incident.id).first()
            if found is None:
                return None
            return EndState("error", element=found.element_id, message=found.message[:300])

    def _completed(self, root: str) -> set[str]:
        """Completed elements of the root instance and every instance it called (read from the states)."""
        from engine import instances
        from engine.models import ProcessInstance

        with self.db.session() as s:
            rows = s.query(ProcessInstance.id, ProcessInstance.parent_instance_id).all()
        tree, todo = set(), [root]
        while todo:
            iid = todo.pop()
            tree.add(iid)
            todo += [rid for rid, parent in rows if parent == iid and rid not in tree]
        found: set[str] = set()
        for iid in tree:
            row = instances.get(self.rt, iid)
            model = self.rt.specs.get(self.db, row.definition_id)
            found |= completed_elements(self.rt.serializer.loads(row.state, model.spec, model.subprocess_specs))
        return found


def _refusal(body: Any) -> str:
    error = (body or {}).get("error", {})
    problems = (error.get("details") or {}).get("problems") or []
    if problems:
        return "; ".join(sorted({p.get("problem", "") for p in problems}))
    return error.get("message", json.dumps(body)[:200])


def _error(body: Any, actions: list[str] | None = None) -> EndState:
    error = (body or {}).get("error", {})
    details = error.get("details") or {}
    return EndState("error", element=details.get("element"), message=error.get("message", json.dumps(body)[:300]),
                    actions=actions or [])


def bundle_names(model: Model) -> list[str]:
    return [str(Path(p).relative_to(model.root)) for p in model.bundle]
