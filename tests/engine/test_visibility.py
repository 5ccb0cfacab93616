"""The scope rule fails closed: an empty scope is no scope (it would otherwise prefix every grid)."""

from sqlalchemy import select

from engine.models import ProcessInstance
from engine.visibility import Viewer, grid_filter, grid_visible, may_work


def test_an_empty_scope_sees_nothing_and_may_work_nowhere():
    empty = Viewer("x", frozenset({"supervisor"}), "", oversees=True)
    assert not grid_visible(empty, "320706001000001")
    assert not may_work(empty, "supervisor", "320706001000001")
    sql = str(select(ProcessInstance.id).where(grid_filter(empty, ProcessInstance.scope)).compile(
        compile_kwargs={"literal_binds": True}))
    assert "false" in sql.lower() or "0 = 1" in sql


def test_a_scope_sees_its_subtree_only():
    district = Viewer("x", frozenset({"supervisor"}), "320706")
    assert grid_visible(district, "320706001000001") and not grid_visible(district, "320703001")
    assert grid_visible(Viewer("a", frozenset({"admin"}), None, sees_all=True), "anything")
