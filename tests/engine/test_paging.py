"""Paging: a page of rows and the total, which a caller may cap (counting a large table reads it all)."""

from sqlalchemy import select

from engine import outbox
from engine.db import page
from engine.models import OutboxEntry


def test_the_total_stops_at_the_cap_and_the_page_is_unaffected(db, clock):
    with db.transaction() as s:
        for i in range(5):
            outbox.add(s, clock.now(), queue="q", job=f"job-{i}", payload={})
    stmt = select(OutboxEntry)
    rows, total = page(db, stmt, [OutboxEntry.id], offset=1, limit=3)
    assert total == 5 and [r.job for r in rows] == ["job-1", "job-2", "job-3"]
    rows, total = page(db, stmt, [OutboxEntry.id], offset=3, limit=3, count_cap=3)
    assert total == 3 and [r.job for r in rows] == ["job-3", "job-4"]
