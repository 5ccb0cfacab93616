"""Tasks outside every lane deploy (with a warning): offered to the process's defaultRole, or else
assigned to whoever started the instance, and visible under the usual rules."""

from __future__ import annotations

import pytest

from engine import definitions, instances, tasks
from engine.errors import NotAllowed
from engine.parsing import ModelError
from engine.visibility import Viewer, task_visible
from tests.engine.builders import end, process, seq, start, user


def _default_role(role: str) -> str:
    return ('<bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="defaultRole" value="{role}"/>'
            '</spiffworkflow:properties></bpmn:extensionElements>')


def _laneless(*head: str, lanes=None) -> str:
    return process("free", *head, start(), user("t"), user("u"), end(), seq("start", "t", "u", "end"), lanes=lanes)


def _viewer(name: str, *roles: str, scope: str | None = "g1") -> Viewer:
    return Viewer(name=name, roles=frozenset(roles), scope=scope)


def test_a_task_without_a_lane_deploys_with_a_warning_naming_it(rt):
    d, created = definitions.deploy(rt, _laneless(), "admin")
    assert created
    warnings = {w.element_id: w.message for w in definitions.warnings(rt, d)}
    assert set(warnings) == {"t", "u"}
    assert "not in a lane" in warnings["t"] and "started the instance" in warnings["t"]


def test_without_a_default_role_the_starter_is_the_assignee(rt):
    definitions.deploy(rt, _laneless(), "admin")
    iid = instances.start(rt, actor="li.ming", key="free").instance.id
    (ht,) = instances.open_tasks(rt, iid)
    assert (ht.element_id, ht.candidate_role, ht.assignee) == ("t", None, "li.ming")
    assert ht.claimed_at is not None
    assert task_visible(_viewer("li.ming", "inspector"), ht)
    assert not task_visible(_viewer("wang.fang", "inspector"), ht)  # same role, not theirs
    assert not task_visible(_viewer("zhao.lei", "supervisor", scope="g"), ht)  # no scope: not offered in a grid
    with pytest.raises(NotAllowed):
        tasks.complete(rt, ht.id, "wang.fang", {})
    tasks.complete(rt, ht.id, "li.ming", {})
    (nxt,) = instances.open_tasks(rt, iid)
    assert (nxt.element_id, nxt.assignee) == ("u", "li.ming")


def test_the_default_role_is_offered_the_task_instead(rt):
    d, _ = definitions.deploy(rt, _laneless(_default_role("supervisor")), "admin")
    assert "offered to the role 'supervisor'" in definitions.warnings(rt, d)[0].message
    iid = instances.start(rt, actor="li.ming", key="free", scope="g1").instance.id
    (ht,) = instances.open_tasks(rt, iid)
    assert (ht.candidate_role, ht.assignee) == ("supervisor", None)
    assert not task_visible(_viewer("li.ming", "inspector"), ht)  # the starter has no part in it now


def test_a_lane_still_wins_over_the_default_role_and_warns_nothing(rt):
    xml = _laneless(_default_role("supervisor"), lanes={"inspector": ["t", "u"]})
    d, _ = definitions.deploy(rt, xml, "admin")
    assert definitions.warnings(rt, d) == []
    iid = instances.start(rt, actor="li.ming", key="free").instance.id
    assert [(t.candidate_role, t.assignee) for t in instances.open_tasks(rt, iid)] == [("inspector", None)]


def test_an_assignee_property_wins_over_the_starter(rt):
    xml = process("free", start(), user("t", assignee="'zhao.lei'"), end(), seq("start", "t", "end"))
    definitions.deploy(rt, xml, "admin")
    iid = instances.start(rt, actor="li.ming", key="free").instance.id
    assert [t.assignee for t in instances.open_tasks(rt, iid)] == ["zhao.lei"]


def test_an_empty_default_role_is_refused(rt):
    with pytest.raises(ModelError) as exc:
        definitions.deploy(rt, _laneless(_default_role(" ")), "admin")
    assert any("defaultRole" in p.message for p in exc.value.problems)


def test_manual_and_plain_tasks_without_a_lane_go_to_the_starter_too(rt):
    xml = process("free", start(), '<bpmn:manualTask id="m"/>', '<bpmn:task id="p"/>', end(),
                  seq("start", "m", "p", "end"))
    d, _ = definitions.deploy(rt, xml, "admin")
    assert sorted(w.element_id for w in definitions.warnings(rt, d)) == ["m", "p"]
    iid = instances.start(rt, actor="li.ming", key="free").instance.id
    for element in ("m", "p"):
        (ht,) = instances.open_tasks(rt, iid)
        assert (ht.element_id, ht.assignee) == (element, "li.ming")
        tasks.complete(rt, ht.id, "li.ming", {})
    assert instances.get(rt, iid).status == "completed"
