"""The active scheduler takes audit checkpoints (its chore) while it holds its own advisory lock: the
checkpoint's lock must be another one, or the scheduler waits on itself and relays nothing again."""

from __future__ import annotations

import threading

from engine import audit
from engine.runtime import Runtime
from engine.scheduler import Leadership


def test_the_active_scheduler_takes_a_checkpoint_without_waiting_on_itself(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    leader = Leadership(rt)
    assert leader.try_acquire()
    done = threading.Event()

    def checkpoint() -> None:
        audit.take_checkpoint(rt.db, rt.audit_keys, "scheduler", clock.now())
        done.set()

    worker = threading.Thread(target=checkpoint, daemon=True)
    try:
        worker.start()
        assert done.wait(timeout=60), "the checkpoint waits on the scheduler's lock"
    finally:
        leader.release()  # frees a checkpoint stuck on it, so the thread ends either way
        worker.join(timeout=60)
