"""A use case's unit of work commits only when told to: an exception or an early return rolls back
everything it wrote, an instance started in it included; after a commit the change's wake-up is
announced."""

from datetime import timedelta

import pytest

from engine import definitions, instances
from engine.models import ProcessInstance
from engine.unit_of_work import UnitOfWork
from tests.engine.support import count


@pytest.fixture
def deployed(rt, reference_xml):
    definitions.deploy(rt, reference_xml, "admin")
    return rt


def start_in(uow, rt, key="C-1"):
    return uow.changed(instances.start_in(rt, uow.conn, actor="t", key="reference_loop", business_key=key,
                                          variables={"case_id": key, "value": 150, "grid": "g1",
                                                     "handle_due": (rt.clock.now() + timedelta(hours=4)).isoformat()}))


def test_nothing_is_kept_without_commit(deployed):
    rt = deployed
    with UnitOfWork(rt) as uow:
        start_in(uow, rt)  # and leave without commit(), as a `return` would
    assert count(rt, ProcessInstance) == 0


def test_an_error_rolls_back_the_whole_use_case(deployed):
    rt = deployed
    with pytest.raises(RuntimeError), UnitOfWork(rt) as uow:
        start_in(uow, rt, "C-1")
        start_in(uow, rt, "C-2")
        raise RuntimeError("the third write failed")
    assert count(rt, ProcessInstance) == 0


def test_a_commit_keeps_everything_and_wakes_the_relay(deployed):
    rt = deployed
    woken = []
    rt.on_wakeup = lambda: woken.append(1)
    with UnitOfWork(rt) as uow:
        start_in(uow, rt, "C-1")
        start_in(uow, rt, "C-2")
        uow.wake_after_commit()
        assert woken == []  # not before the commit
        uow.commit()
    assert count(rt, ProcessInstance) == 2 and woken == [1]
    with UnitOfWork(rt) as uow:
        uow.wake_after_commit()  # rolled back: nobody is woken
    assert woken == [1]
