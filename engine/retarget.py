"""Moving a loaded workflow onto another version's spec, keeping what it has done and where it waits.

SpiffWorkflow's own `migrate_workflow` (bpmn/util/diff.py) resets every READY and WAITING task:
new task ids (the human-task rows and subscriptions point at them) and timers started again (their
deadlines lost). Here the tasks keep their ids, data and internal data (a timer's deadline lives
there); only their specs are swapped by name, and what is merely predicted after the tasks that
wait is predicted again from the target's flows."""

from __future__ import annotations

from collections.abc import Mapping

from SpiffWorkflow.util.task import TaskState

from .errors import InvalidInput

ACTIVE = TaskState.WAITING | TaskState.READY | TaskState.STARTED
UNSTARTED = TaskState.FUTURE | TaskState.LIKELY | TaskState.MAYBE


def retarget(workflow, spec, subprocess_specs: dict, names: Mapping[str, str | None]) -> None:
    """Re-point `workflow` (loaded on the source version) at `spec`. `names` maps each source task
    spec name to the target's (None: no counterpart). A finished task without a counterpart leaves
    the history (its children hang under its parent); a waiting one is an error (the plan refuses
    it first)."""
    if workflow.subprocesses:
        raise InvalidInput("the instance waits inside a sub-process; it is not moved")
    tasks, new_specs = workflow.tasks, spec.task_specs
    ahead: dict = {}  # active task id -> the state its predicted children had
    for task in list(tasks.values()):
        if task.id in tasks and task.has_state(ACTIVE):
            children = [c for c in task.children if c.has_state(UNSTARTED)]
            default = TaskState.FUTURE if task.has_state(TaskState.DEFINITE_MASK) else task.state
            ahead[task.id] = children[0].state if children else default
            for child in children:
                workflow._remove_task(child.id)
    for task in list(tasks.values()):
        if task.id not in tasks:
            continue
        name = names.get(task.task_spec.name)
        if name is not None and name in new_specs:
            task.task_spec = new_specs[name]
        elif task.has_state(TaskState.FINISHED_MASK) and task is not workflow.task_tree:
            _splice(workflow, task)
        elif task.has_state(UNSTARTED):
            workflow._remove_task(task.id)
        else:
            raise InvalidInput(f"the instance waits at '{task.task_spec.bpmn_id or task.task_spec.name}', "
                               "which has no counterpart in the target version")
    workflow.spec = spec
    workflow.subprocess_specs = subprocess_specs
    for task_id, state in ahead.items():
        task = tasks[task_id]
        task._sync_children(task.task_spec.outputs, state)
        for child in task.children:
            if child.has_state(UNSTARTED):
                child.task_spec._predict(child, mask=UNSTARTED)
    if workflow.last_task is not None and workflow.last_task.id not in tasks:
        workflow.last_task = None


def _splice(workflow, task) -> None:
    """Take a finished task out of the tree; its children move up to its parent (their data is whole
    in memory, so nothing is lost when the deltas are written against the new parent)."""
    parent = workflow.tasks[task._parent]
    at = parent._children.index(task.id)
    parent._children[at:at + 1] = task._children
    for child_id in task._children:
        workflow.tasks[child_id]._parent = parent.id
    del workflow.tasks[task.id]
