"""The counts of `python -m bench.chaos`: waiting for the system to settle after the faults, then
what was lost or done twice, from the database and the fakes (see bench/chaos.py for the rules)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from typing import Any

log = logging.getLogger("bench.chaos")


def _pg(url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                           connect_timeout=5)


def pending(url: str, case_ids: list[str], pushed: set[str]) -> dict[str, int]:
    """What is still under way: outbox rows due and not done, notifications not yet sent or
    refused, handled cases not yet pushed."""
    with _pg(url) as conn:
        outbox = conn.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL AND available_at <= now()"
                              ).fetchone()[0]
        notices = conn.execute("SELECT count(*) FROM notification WHERE status IN ('queued', 'sending') "
                               "AND case_id = ANY(%s)", (case_ids,)).fetchone()[0]
    return {"outbox": outbox, "notices": notices, "pushes": len(set(case_ids) - pushed)}


def wait_recovered(url: str, handled: list, sink, timeout_s: float) -> float | None:
    """Seconds until nothing is pending for the handled loops' cases; None if it never settles."""
    t0 = time.monotonic()
    case_ids = [rec.case_id for rec in handled]
    last: dict[str, int] = {}
    while time.monotonic() - t0 < timeout_s:
        with contextlib.suppress(Exception):
            last = pending(url, case_ids, set(sink.keys))
            if not any(last.values()):
                return round(time.monotonic() - t0, 1)
        time.sleep(1.0)
    log.warning("not settled after %.0fs: %s", timeout_s, last)
    return None


def reachable_staff(url: str, phone: str) -> int:
    """Give every member of staff a phone number and SMS as their channel (the demo's people have
    none, so every notice would fail for want of an address); how many."""
    with _pg(url) as conn:
        return conn.execute("UPDATE person SET phone = %s, channels = 'sms'", (phone,)).rowcount


def count_outcome(url: str, warm: list, records: list, sink, sms: dict[str, Any]) -> dict[str, Any]:
    """lost_* and duplicated_* (all must be 0), and what explains them."""
    case_ids = [rec.case_id for rec in records if rec.case_id]
    instance_ids = [rec.instance_id for rec in records if rec.instance_id]
    externals = [rec.external_id for rec in records]
    warm_cases = [rec.case_id for rec in warm]
    with _pg(url) as conn:
        present = {r[0] for r in conn.execute("SELECT id FROM env_case WHERE id = ANY(%s)", (case_ids,))}
        per_alarm = dict(conn.execute("SELECT external_id, count(DISTINCT case_id) FROM case_alarm "
                                      "WHERE external_id = ANY(%s) GROUP BY external_id", (externals,)).fetchall())
        completions = Counter({(i, e): n for i, e, n in conn.execute(
            "SELECT instance_id, element_id, count(*) FROM audit_event WHERE action = 'task.completed' "
            "AND instance_id = ANY(%s) GROUP BY instance_id, element_id", (instance_ids,))})
        done_rows = {(i, e) for i, e in conn.execute(
            "SELECT instance_id, element_id FROM human_task WHERE status = 'completed' AND instance_id = ANY(%s)",
            (instance_ids,))}
        notices = conn.execute("SELECT case_id, id, status FROM notification WHERE case_id = ANY(%s)",
                               (case_ids + warm_cases,)).fetchall()
        incidents = {f"{k}:{op}": n for k, op, n in conn.execute(
            "SELECT kind, coalesce(operation, ''), count(*) FROM incident WHERE status = 'open' GROUP BY 1, 2")}
        process = dict(conn.execute("SELECT p.status, count(*) FROM env_case c JOIN process_instance p "
                                    "ON p.id = c.instance_id WHERE c.id = ANY(%s) GROUP BY p.status",
                                    (case_ids,)).fetchall())
    sent = Counter(case for case, _id, status in notices if status == "sent")
    expected = max((sent[c] for c in warm_cases), default=0)
    loop_notices = [(case, nid, status) for case, nid, status in notices if case in set(case_ids)]
    arrivals = sms.get("arrivals", {})
    pushed_handled = [rec for rec in records if rec.handled]
    lost_transitions = sum(1 for rec in records for e in rec.completed
                           if completions[(rec.instance_id, e)] == 0 or (rec.instance_id, e) not in done_rows)
    return {
        "lost_cases": sum(1 for c in case_ids if c not in present),
        "duplicated_cases": sum(1 for n in per_alarm.values() if n > 1),
        "lost_transitions": lost_transitions,
        "duplicated_transitions": sum(n - 1 for n in completions.values() if n > 1),
        "lost_notices": sum(max(0, expected - sent[rec.case_id]) for rec in records if rec.finished)
        + sum(1 for _c, _n, status in loop_notices if status in ("queued", "sending")),
        "duplicated_notices": sum(len(arrivals.get(nid, [])) - 1 for _c, nid, _s in loop_notices
                                  if len(arrivals.get(nid, [])) > 1),
        "lost_pushes": sum(1 for rec in pushed_handled if not sink.keys.get(rec.case_id)),
        "duplicated_pushes": sum(len(sink.keys[rec.case_id]) - 1 for rec in pushed_handled
                                 if len(sink.keys.get(rec.case_id, ())) > 1),
        "transitions_acknowledged": sum(len(rec.completed) for rec in records),
        "notices_per_loop": expected,
        "notices_sent": sum(sent[c] for c in case_ids),
        "notice_statuses": dict(Counter(status for _c, _n, status in loop_notices)),
        "sms_requests": sms.get("requests"),
        "pushes": sum(sink.deliveries[rec.case_id] for rec in pushed_handled),
        "push_redeliveries": sum(sink.deliveries[rec.case_id] - len(sink.keys.get(rec.case_id, ()))
                                 for rec in pushed_handled),
        "alarms_unanswered": sum(1 for rec in records if rec.case_id is None),
        "process_status": process,
        "open_incidents": incidents,
    }
