"""The warning policy's use cases called directly (HTTP: tests/api/test_warnings_api.py)."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInput, NotFound
from workflows.warning_policies import NewPolicy, add_policy, policies, remove_policy


def test_a_row_is_added_listed_by_level_and_removed(rt):
    second = add_policy(rt, NewPolicy(tenant="320700", level=2, ack_minutes=30, grid_prefix="320706"))
    first = add_policy(rt, NewPolicy(tenant="320700", level=1, ack_minutes=15, notify_post="leader"))
    add_policy(rt, NewPolicy(tenant="310100", level=1, ack_minutes=15))
    assert [p.id for p in policies(rt, "320700")] == [first.id, second.id]
    remove_policy(rt, first.id)
    assert [p.id for p in policies(rt, "320700")] == [second.id]
    with pytest.raises(NotFound, match=f"warning policy {first.id} does not exist"):
        remove_policy(rt, first.id)


def test_a_row_the_warnings_could_not_follow_is_refused_naming_the_fields(rt):
    with pytest.raises(InvalidInput) as refused:
        add_policy(rt, NewPolicy(tenant="320700", level=5, ack_minutes=0, notify_level="province",
                                 notify_post="mayor"))
    assert set(refused.value.fields) == {"level", "ackMinutes", "notifyLevel", "notifyPost"}
    assert refused.value.fields["notifyPost"] == ["one of supervisor, inspector, leader"]
    assert policies(rt, "320700") == []
