"""Versions of one small process for migration tests: a review user task guarded by a boundary
timer (escalation), optionally renamed, followed by a new step, with a form, or changed unsafely."""

from __future__ import annotations

from datetime import timedelta

from engine import definitions, instances
from engine.runtime import Runtime
from tests.engine import builders as b

KEY = "mig"
GL = 'xmlns:gridloop="http://gridloop.example/schema/1.0"'


def _review(id_: str, form: str | None) -> str:
    if form is None:
        return b.user(id_)
    return (f'<bpmn:userTask id="{id_}" name="{id_}" {GL}><bpmn:extensionElements><gridloop:form>{form}'
            "</gridloop:form></bpmn:extensionElements></bpmn:userTask>")


LEVEL = ('<gridloop:field name="level" type="enum"><gridloop:option value="low"/><gridloop:option value="high"/>'
         "</gridloop:field>")
LEVEL_LOW_ONLY = '<gridloop:field name="level" type="enum"><gridloop:option value="low"/></gridloop:field>'
NOTE_REQUIRED = '<gridloop:field name="note" type="text" required="true"/>'
NOTE_REQUIRED_DEFAULT = '<gridloop:field name="note" type="text" required="true" default="none"/>'


def model(*, review: str = "review", extra: bool = False, timer: str = '"PT2H"', form: str | None = None,
          review_kind: str = "user", boundary: bool = True) -> str:
    """start → `review` [→ extra] → end, with a boundary timer `late` on the review → esc → end2."""
    review_xml = b.service(review, "mig.noop") if review_kind == "service" else _review(review, form)
    elements = [b.start(), review_xml, b.user("esc"), b.end(), b.end("end2"), b.seq("esc", "end2")]
    if boundary:
        elements += [b.boundary_timer("late", review, "timeDuration", timer), b.seq("late", "esc")]
    if extra:
        elements += [b.user("extra"), b.seq("start", review, "extra", "end")]
    else:
        elements += [b.seq("start", review, "end")]
    lane = ([review] if review_kind == "user" else []) + ["esc"] + (["extra"] if extra else [])
    return b.process(KEY, *elements, lanes={"clerk": lane})


def deploy(rt: Runtime, xml: str) -> int:
    """Deploy a version (the service-task variant's operation registered first)."""
    if "mig.noop" not in rt.registry:
        rt.registry.register("mig.noop", lambda params, ctx: {})
    return definitions.deploy(rt, xml, "admin")[0].id


def start_many(rt: Runtime, definition_id: int, n: int, *, step: timedelta = timedelta(seconds=7, microseconds=250_000),
               variables: dict | None = None) -> list[str]:
    """`n` instances started `step` apart (so each waits for its own deadline), business keys B-0...."""
    ids = []
    for i in range(n):
        ids.append(instances.start(rt, actor="starter", definition_id=definition_id, business_key=f"B-{i}",
                                   variables=dict(variables or {})).instance.id)
        rt.clock.advance(step)
    return ids
