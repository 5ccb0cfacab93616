"""A message or signal event without a name (no messageRef/signalRef and no name of its own) is refused
at deploy naming the element: it could never be told apart, and it used to fail at run time (a signal
subscription with no name broke the start's transaction as a 'conflict'; a message one said another
instance waited already). Found by bench/spiff_conformance.py on SpiffWorkflow's boundary_event_split.bpmn.
An event that names itself keeps working: SpiffWorkflow takes the event's name then."""

from __future__ import annotations

import pytest

from engine import definitions, instances
from engine.models import SignalSubscription
from engine.parsing import ModelError
from tests.engine.builders import end, process, seq, start, user
from tests.engine.support import count

SIGNAL_HEADER = '<bpmn:signal id="sig_go" name="go"/>'


def _catch(kind: str, *, name: str = "", ref: str = "") -> str:
    named = f' name="{name}"' if name else ""
    return (f'<bpmn:intermediateCatchEvent id="wait"{named}><bpmn:{kind}EventDefinition{ref}/>'
            "</bpmn:intermediateCatchEvent>")


def _boundary(kind: str) -> str:
    return f'<bpmn:boundaryEvent id="stop" attachedToRef="u"><bpmn:{kind}EventDefinition/></bpmn:boundaryEvent>'


@pytest.mark.parametrize("kind", ["message", "signal"])
def test_a_catch_event_without_a_name_is_refused_naming_it(rt, kind):
    xml = process("nameless", start(), _catch(kind), end(), seq("start", "wait", "end"))
    with pytest.raises(ModelError) as refused:
        definitions.deploy(rt, xml, "admin")
    assert [(p.element_id, f"has no {kind} name" in p.message) for p in refused.value.problems] == [("wait", True)]


@pytest.mark.parametrize("kind", ["message", "signal"])
def test_a_boundary_event_without_a_name_is_refused_too(rt, kind):
    xml = process("nameless", start(), user("u"), _boundary(kind), end(), end("after_stop"),
                  seq("start", "u", "end"), seq("stop", "after_stop"))
    with pytest.raises(ModelError) as refused:
        definitions.deploy(rt, xml, "admin")
    assert {p.element_id for p in refused.value.problems} == {"stop"}


def test_an_event_named_by_itself_or_by_its_ref_deploys_and_waits_under_that_name(rt):
    by_name = process("by_name", start(), _catch("signal", name="ring"), end(), seq("start", "wait", "end"))
    by_ref = process("by_ref", start(), _catch("signal", ref=' signalRef="sig_go"'), end(),
                     seq("start", "wait", "end"), header=SIGNAL_HEADER)
    for xml in (by_name, by_ref):
        definitions.deploy(rt, xml, "admin")
    for key in ("by_name", "by_ref"):
        instances.start(rt, actor="clerk", key=key)
    with rt.db.session() as s:
        assert sorted(s.scalars(SignalSubscription.__table__.select().with_only_columns(
            SignalSubscription.signal_name))) == ["go", "ring"]
    assert count(rt, SignalSubscription) == 2
