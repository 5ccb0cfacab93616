"""Plumbing of `python -m bench.loop`: the fake enforcement system and the bulk insert of closed cases
(the HTTP client: bench/_loop_client.py; the server processes: bench/_common.py)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench._common import Processes
from bench._loop_client import Client as Client
from bench._loop_client import HttpError as HttpError
from bench._loop_client import LoopFailure as LoopFailure
from bench._loop_client import Recorder as Recorder
from bench._loop_client import login as login

log = logging.getLogger("bench.loop")


# -- the enforcement system ------------------------------------------------------------------------

class JsonReplies(BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler that answers JSON (the fakes of the systems GridLoop calls)."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


class EnforcementSink:
    """A fake enforcement system on loopback speaking the push protocol of integrations/enforcement.py
    (the same checks as tests/integrations/fake_enforcement.py: signature, idempotency key → ticket),
    which also tells a waiting client the moment its case arrives."""

    def __init__(self, secret: str) -> None:
        from integrations.enforcement import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

        self.secret = secret
        self._cond = threading.Condition()
        self.arrived: dict[str, float] = {}  # case id → time.perf_counter() when the push came in
        self.tickets: dict[str, str] = {}
        self.pushes = 0
        self.bad_signatures = 0
        outer = self

        class Handler(JsonReplies):

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not verify(outer.secret, self.headers.get(IDEMPOTENCY_HEADER, ""),
                              self.headers.get(TIMESTAMP_HEADER, ""), self.headers.get(SIGNATURE_HEADER, ""), body):
                    outer.bad_signatures += 1
                    return self._send(401, {"error": "bad signature"})
                case_id = json.loads(body)["case_id"]
                with outer._cond:
                    outer.pushes += 1
                    ticket = outer.tickets.setdefault(self.headers.get("Idempotency-Key", case_id),
                                                      f"ZF-{len(outer.tickets) + 1:06d}")
                    outer.arrived.setdefault(case_id, time.perf_counter())
                    outer._cond.notify_all()
                self._send(200, {"ticket": ticket})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/cases"
        self.thread = threading.Thread(target=self.server.serve_forever, name="enforcement", daemon=True)

    def wait_for(self, case_id: str, timeout_s: float) -> float | None:
        """When the push of `case_id` arrived (perf_counter), or None after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while case_id not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.arrived[case_id]

    def __enter__(self) -> EnforcementSink:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the HTTP client: bench/_loop_client.py (its names are importable from here too) ---------------


def wait_healthy(base: str, procs: Processes, timeout_s: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            r = requests.get(f"{base}/health", timeout=5)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise RuntimeError(f"the server did not become healthy within {timeout_s}s ({last})\n{procs.tails()}")


# -- closed cases in bulk --------------------------------------------------------------------------

# What one closed loop leaves behind in the tables this benchmark fills (as the HTTP loop above
# leaves it, with the reviewed → dispatched → signed → handled → pushed → verified path):
#   env_case          one row, status 'closed' (and, where the schema has them, outcome 'closed' and
#                     closed_at), instance_id set, occurrences 1, routing details, created_at spread
#                     over the past year, random basic unit of the tenant, random category;
#   process_instance  one row, status 'completed', ended_at set, next_wakeup_at NULL, scope = grid,
#                     state = the serialized state of a really completed env_case instance (taken
#                     from a warm-up loop of this run, its case id replaced), revision 8;
#   human_task        five rows, status 'completed' with ended_at and completed_by: review, dispatch,
#                     verify (supervisor lane, unassigned) and sign_for, handle (inspector lane,
#                     assigned to the unit's inspector, with due dates, done on time);
#   case_alarm        (only if the table exists) the case's one alarm;
#   case_assessment   (only if the table exists) outcome 'closed', violation, on time, no counters.
# Not inserted (they do not feed the pages measured here): the audit_event chain (its hashes
# cannot be faked without making /audit/verify fail), message, outbox, evidence and message
# subscription rows. Columns this version of the schema does not have are left out, and an
# optional table is skipped when it is missing or has a NOT NULL column without a default that is
# not filled here (both logged), so that the benchmark keeps working while the schema changes.

SUPERVISOR_TASKS = (("review", "甄别 Review", "case_review"), ("dispatch", "派遣 Dispatch", "case_dispatch"))
INSPECTOR_TASKS = (("sign_for", "签收 Sign for", "case_sign_for"),
                   ("handle", "现场处置 Handle on site", "case_handling"))
VERIFY_TASK = ("verify", "核查结案 Verify and close", "case_verification")
ASSESSMENT_COUNTERS = ("reworks", "returns", "extensions", "escalations", "reminders", "urges", "transfers")
OPTIONAL_TABLES = ("case_alarm", "case_assessment")
PROVIDED: dict[str, set[str]] = {
    "process_instance": {"id", "definition_id", "process_key", "business_key", "status", "state", "next_wakeup_at",
                         "started_by", "started_at", "updated_at", "ended_at", "revision", "audit_head", "scope"},
    "env_case": {"id", "tenant", "source", "source_ref", "external_id", "category", "description", "lon", "lat",
                 "grid_code", "route_reason", "urgent", "status", "outcome", "closed_at", "instance_id",
                 "occurrences", "first_seen", "last_seen", "details", "created_at"},
    "human_task": {"id", "instance_id", "process_key", "element_id", "name", "candidate_role", "candidate_scope",
                   "assignee", "owner", "form_key", "priority", "due_at", "follow_up_at", "status", "created_at",
                   "claimed_at", "ended_at", "completed_by"},
    "case_alarm": {"case_id", "source", "external_id", "occurred_at", "received_at", "details"},
    "case_assessment": {"case_id", "tenant", "grid_code", "category", "source", "inspector", "outcome", "violation",
                        "filed_at", "closed_at", "lead_hours", "signed_on_time", "handled_on_time", "closed_on_time",
                        *ASSESSMENT_COUNTERS, "occurrences", "details"},
}
SOURCE_WEIGHTS = (("monitoring", 50), ("device", 15), ("citizen", 20), ("patrol", 10), ("petition", 5))


@dataclass(frozen=True)
class Unit:
    code: str
    lon: float
    lat: float


def load_units(db, tenant: str) -> list[Unit]:
    import shapely
    from sqlalchemy import select

    from workflows.grids import Grid

    with db.session() as s:
        rows = s.execute(select(Grid.code, Grid.geometry).where(Grid.tenant == tenant, Grid.level == "unit",
                                                                 Grid.valid_to.is_(None)).order_by(Grid.code)).all()
    out = []
    for code, geometry in rows:
        p = shapely.from_geojson(geometry).representative_point()
        out.append(Unit(code, p.x, p.y))
    return out


def _columns(conn, table: str) -> dict[str, bool]:
    """Column name → whether a value is required (NOT NULL without a default); {} if no such table."""
    return {r[0]: r[1] == "NO" and r[2] is None and r[3] == "NO" for r in conn.execute(
        "SELECT column_name, is_nullable, column_default, is_identity FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s", (table,))}


def _usable(table: str, columns: dict[str, bool], provided: set[str], *, optional: bool) -> bool:
    missing = sorted(c for c, required in columns.items() if required and c not in provided)
    problem = "does not exist" if not columns else f"needs {', '.join(missing)}" if missing else None
    if problem is None:
        return True
    if not optional:
        raise RuntimeError(f"table {table} {problem}: bench/_loop_support.py must learn to fill it")
    log.warning("table %s %s: not filled", table, problem)
    return False


def _copy(conn, table: str, rows: list[dict[str, Any]], present: dict[str, bool], skipped: set[str]) -> None:
    if not rows:
        return
    cols = [c for c in rows[0] if c in present]
    skipped.update(f"{table}.{c}" for c in rows[0] if c not in present)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row([row[c] for c in cols])


def insert_closed_cases(pg_url: str, *, n: int, tenant: str, units: list[Unit], categories: list[tuple[str, bool]],
                        template_state: str, template_case_id: str, definition_id: int, batch: int = 5000,
                        seed: int = 7, deadline: float | None = None) -> dict[str, Any]:
    """Insert `n` closed cases with their completed instances and ended tasks (see the comment
    above), in batches of `batch` cases, COPY per table; returns counts and what was skipped.

    The instances' states are written by the server (the template sent once, the case id replaced
    in SQL) and compressed with lz4 where the server has it (pglz, the default, spent most of the
    time: ~3 ms of server CPU per 20 kB state on this machine). Past `deadline` (time.monotonic())
    no further batch is started: `cases` says how many there are, `finished` whether all."""
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC)
    sources = [s for s, w in SOURCE_WEIGHTS for _ in range(w)]
    skipped: set[str] = set()
    t0 = time.perf_counter()
    tables = ("process_instance", "env_case", "human_task", "case_alarm", "case_assessment")
    inserted = 0
    with psycopg.connect(pg_url) as conn:
        present = {t: _columns(conn, t) for t in tables}
        filled = [t for t in tables if _usable(t, present[t], PROVIDED[t], optional=t in OPTIONAL_TABLES)]
        compression = _fast_toast_compression(conn)
        conn.execute("CREATE TEMP TABLE bulk_instance (LIKE process_instance INCLUDING DEFAULTS)")
        for start in range(0, n, batch):
            if deadline is not None and time.monotonic() > deadline:
                log.warning("bulk insert stopped at %d of %d closed cases: out of time", start, n)
                break
            rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
            cases, instances, tasks = rows["env_case"], rows["process_instance"], rows["human_task"]
            for i in range(start, min(n, start + batch)):
                unit = rng.choice(units)
                category, urgent = rng.choice(categories)
                source = rng.choice(sources)
                created = now - timedelta(days=365) + timedelta(seconds=rng.uniform(0, 360 * 86400))
                reviewed = created + timedelta(minutes=rng.uniform(2, 60))
                dispatched = reviewed + timedelta(minutes=rng.uniform(1, 30))
                signed = dispatched + timedelta(minutes=rng.uniform(5, 25))
                handled = signed + timedelta(hours=rng.uniform(0.5, 4))
                verified = handled + timedelta(hours=rng.uniform(2, 16))
                case_id = f"C{created:%Y%m%d}-{i:08x}"
                iid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                inspector = f"insp-{unit.code}"
                lon, lat = unit.lon + rng.uniform(-1e-4, 1e-4), unit.lat + rng.uniform(-1e-4, 1e-4)
                cases.append({
                    "id": case_id, "tenant": tenant, "source": source, "source_ref": f"SRC-{rng.randrange(5000)}",
                    "external_id": f"bulk-{i}", "category": category, "description": None, "lon": lon, "lat": lat,
                    "grid_code": unit.code, "route_reason": "on duty in the grid", "urgent": urgent,
                    "status": "closed", "outcome": "closed", "closed_at": verified, "instance_id": iid,
                    "occurrences": 1, "first_seen": created, "last_seen": created, "created_at": created,
                    "details": json.dumps({"handled_at": unit.code, "assignees": [inspector], "sign_for_hours": 0.5,
                                           "handle_hours": 4.0, "parent": unit.code[:9]}),
                })
                instances.append({
                    "id": iid, "definition_id": definition_id, "process_key": "env_case", "business_key": case_id,
                    "status": "completed", "state": "",  # written by the server: see _copy_instances
                    "next_wakeup_at": None, "started_by": f"system:{source}", "started_at": created,
                    "updated_at": verified, "ended_at": verified, "revision": 8, "audit_head": None,
                    "scope": unit.code,
                })
                steps = [(*SUPERVISOR_TASKS[0], "supervisor", None, None, created, reviewed, "bench-sup"),
                         (*SUPERVISOR_TASKS[1], "supervisor", None, None, reviewed, dispatched, "bench-sup"),
                         (*INSPECTOR_TASKS[0], "inspector", inspector, dispatched + timedelta(minutes=30),
                          dispatched, signed, inspector),
                         (*INSPECTOR_TASKS[1], "inspector", inspector, signed + timedelta(hours=4), signed, handled,
                          inspector),
                         (*VERIFY_TASK, "supervisor", None, None, handled, verified, "bench-sup")]
                rows["case_alarm"].append({"case_id": case_id, "source": source, "external_id": f"bulk-{i}",
                                           "occurred_at": created, "received_at": created, "details": "{}"})
                rows["case_assessment"].append({
                    "case_id": case_id, "tenant": tenant, "grid_code": unit.code, "category": category,
                    "source": source, "inspector": inspector, "outcome": "closed", "violation": True,
                    "filed_at": created, "closed_at": verified,
                    "lead_hours": round((verified - created).total_seconds() / 3600, 3), "signed_on_time": True,
                    "handled_on_time": True, "closed_on_time": True, **dict.fromkeys(ASSESSMENT_COUNTERS, 0),
                    "occurrences": 1, "details": json.dumps({"enforcement": {"result": "penalized"}})})
                for element, name, form_key, role, assignee, due, opened, ended, by in steps:
                    tasks.append({
                        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "instance_id": iid,
                        "process_key": "env_case", "element_id": element, "name": name, "candidate_role": role,
                        "candidate_scope": unit.code, "assignee": assignee, "owner": None, "form_key": form_key,
                        "priority": 80 if urgent else 50, "due_at": due, "follow_up_at": None,
                        "status": "completed", "created_at": opened, "claimed_at": opened if assignee else None,
                        "ended_at": ended, "completed_by": by,
                    })
            for t in filled:  # in this order: the foreign keys point at process_instance and env_case
                if t == "process_instance":
                    _copy_instances(conn, rows[t], present[t], skipped, template_state, template_case_id)
                else:
                    _copy(conn, t, rows[t], present[t], skipped)
            conn.commit()
            inserted = min(n, start + batch)
            if (start // batch) % 5 == 4:
                log.info("  %d closed cases inserted (%.0fs)", inserted, time.perf_counter() - t0)
        conn.autocommit = True
        for t in filled:
            conn.execute(f"ANALYZE {t}")
    if skipped:
        log.warning("columns not in this schema, left out: %s", ", ".join(sorted(skipped)))
    return {"cases": inserted, "requested": n, "finished": inserted == n, "instances": inserted,
            "human_tasks": 5 * inserted, "tables": filled, "state_compression": compression,
            "seconds": round(time.perf_counter() - t0, 1), "skipped_columns": sorted(skipped)}


def _fast_toast_compression(conn) -> str:
    """lz4 for the values this session compresses, if the server has it (a session setting, not the schema's)."""
    import psycopg

    try:
        conn.execute("SET default_toast_compression = lz4")
    except psycopg.Error:
        conn.rollback()
    return conn.execute("SHOW default_toast_compression").fetchone()[0]


def _copy_instances(conn, rows: list[dict[str, Any]], present: dict[str, bool], skipped: set[str],
                    template_state: str, template_case_id: str) -> None:
    """COPY the instances without their state into a temporary table, then insert them with the
    template's state, the case id (the business key) replaced, computed by the server."""
    _copy(conn, "bulk_instance", rows, present, skipped)
    cols = [c for c in rows[0] if c in present and c != "state"]
    listed = ", ".join(cols)
    conn.execute(f"INSERT INTO process_instance ({listed}, state) SELECT {listed}, "
                 "replace(%s, %s, business_key) FROM bulk_instance", (template_state, template_case_id))
    conn.execute("TRUNCATE bulk_instance")
