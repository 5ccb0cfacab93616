"""The workflow cache (engine/workflow_cache.py): a change reuses the workflow the previous change of
the same instance committed in this process, and never one that is stale or half-changed."""

from __future__ import annotations

import pytest

from engine import definitions, instances
from engine.errors import ProcessError
from engine.workflow_cache import WorkflowCache
from tests.engine.builders import end, process, script, seq, start, user
from tests.engine.support import complete, open_task, other_process, start_reference, to_handle

DIVIDE = process("divide", start(), user("ask"), script("divide", "share = 100 / parts"), user("check"), end(),
                 seq("start", "ask", "divide", "check", "end"))


def _cached_state(rt, iid: str) -> str | None:
    """What the cache holds for `iid`, serialized (None: nothing); put back as it was."""
    row = instances.get(rt, iid)
    wf = rt.workflows.take(iid, row.revision, row.definition_id)
    if wf is None:
        return None
    rt.workflows.put(iid, row.revision, row.definition_id, wf)
    return rt.serializer.dumps(wf)


def test_each_change_reuses_what_the_last_one_committed_and_it_equals_the_stored_state(rt):
    iid = start_reference(rt)
    assert _cached_state(rt, iid) == instances.get(rt, iid).state
    hits = rt.workflows.hits
    to_handle(rt, iid)  # completes the review: one change of the instance
    assert rt.workflows.hits == hits + 1
    assert _cached_state(rt, iid) == instances.get(rt, iid).state


def test_a_change_that_fails_does_not_leave_its_half_run_workflow_behind(rt):
    definitions.deploy(rt, DIVIDE, "t")
    iid = instances.start(rt, actor="t", key="divide").instance.id
    with pytest.raises(ProcessError):  # the user task ran, then the script failed: rolled back
        complete(rt, iid, "ask", "t", variables={"parts": 0})
    assert _cached_state(rt, iid) is None
    complete(rt, iid, "ask", "t", variables={"parts": 4})  # a cached half-run workflow would say the task is gone
    assert instances.variables(rt, iid)["share"] == 25
    assert open_task(rt, iid, "check") is not None


def test_a_change_made_by_another_process_is_never_hidden_by_this_ones_cache(rt):
    iid = start_reference(rt)  # this process caches revision 1
    with other_process(rt) as other:
        to_handle(other, iid)  # revision 2, written elsewhere
    misses = rt.workflows.misses
    complete(rt, iid, "handle", variables={"violation": False})  # needs revision 2's workflow
    assert rt.workflows.misses == misses + 1
    assert instances.get(rt, iid).revision == 3


def test_the_cache_keeps_the_most_recently_committed_and_size_zero_keeps_nothing():
    cache = WorkflowCache(2)
    for n in range(3):
        cache.put(f"i{n}", 1, 7, object())  # type: ignore[arg-type]
    assert len(cache) == 2
    assert cache.take("i0", 1, 7) is None
    assert cache.take("i2", 2, 7) is None  # another revision: a miss, and the entry is dropped
    assert cache.take("i2", 1, 7) is None
    assert cache.take("i1", 1, 8) is None  # another definition (a migrated instance)
    off = WorkflowCache(0)
    off.put("i", 1, 7, object())  # type: ignore[arg-type]
    assert off.take("i", 1, 7) is None and len(off) == 0
