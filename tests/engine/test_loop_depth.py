"""A loop that runs hundreds of times: SpiffWorkflow hangs each iteration's tasks under the last
ones and walks them recursively, and near Python's recursion limit it silently ended the process
(at iteration 333 of a three-element loop). The engine refuses the change before that depth."""

import pytest

from engine import definitions, instances, tasks
from engine.change import MAX_TREE_DEPTH
from engine.errors import ProcessError
from tests.engine.builders import end, flow, gateway, process, script, seq, start, user


def test_a_loop_too_deep_for_the_library_is_refused_not_silently_ended(rt):
    xml = process("loop", start(), user("work"), script("count", "n = n + 1"), gateway("again", default="f_again_end"),
                  end(), seq("start", "work", "count", "again"), flow("again", "work", "n < 1000"),
                  flow("again", "end"), lanes={"inspector": ["work"]})
    definitions.deploy(rt, xml, "admin")
    iid = instances.start(rt, actor="t", key="loop", variables={"n": 0}).instance.id
    with pytest.raises(ProcessError, match="looped so often") as refused:
        for _ in range(400):
            (task,) = instances.open_tasks(rt, iid)
            tasks.complete(rt, task.id, "u", {})
    n = instances.variables(rt, iid)["n"]
    assert MAX_TREE_DEPTH // 3 - 2 <= n < 333  # stopped before the depth where the library gave up
    assert instances.get(rt, iid).status == "running" and refused.value.details["element"] in ("work", "count", "again")
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["work"]  # the refused change left nothing
