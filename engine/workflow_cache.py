"""Workflows as this process last committed them, so that the next change of the same instance can
skip deserializing its state (the largest part of a change's own CPU after the library's).

An entry is *taken* (removed) by the change that uses it and *put* back only once that change has
committed, with the revision it wrote. The change looks its instance up under the row lock and uses
an entry only when the entry's revision and definition are the ones it just read, so an entry can
never be stale: whoever else wrote the row (another process, a migration) bumped the revision. A
change that fails or rolls back simply never puts its workflow back, whatever it did to it; and no
two changes hold the same object, because taking removes it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow


@dataclass(frozen=True)
class _Entry:
    revision: int
    definition_id: int
    workflow: BpmnWorkflow


class WorkflowCache:
    """A bounded LRU of committed workflows by instance id (`size` 0: no caching)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()  # web threads and job threads share one runtime

    def take(self, instance_id: str, revision: int | None, definition_id: int) -> BpmnWorkflow | None:
        """The workflow committed at exactly `revision` of `definition_id`, now the caller's alone."""
        if not self.size:
            return None
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None and entry.revision == (revision or 0) and entry.definition_id == definition_id:
                self.hits += 1
                return entry.workflow
            self.misses += 1
            return None

    def put(self, instance_id: str, revision: int, definition_id: int, workflow: BpmnWorkflow) -> None:
        """Keep `workflow`, committed at `revision`; call only after the commit, and not touch it again."""
        if not self.size:
            return
        with self._lock:
            self._entries[instance_id] = _Entry(revision, definition_id, workflow)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
