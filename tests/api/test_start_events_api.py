"""Message and signal start events over REST: a message (POST /message, or one thrown by another
instance through the outbox) starts the process whose start event waits for it, once per message id,
its correlation value the business key when the message declares correlation properties; a signal
starts every process with a start event for it, in the thrower's city, once per broadcast."""

from __future__ import annotations

from engine import outbox
from engine.queues import ManualJobQueue
from tests.engine.builders import HEAD, end, seq, user
from workflows.tenants import tenant_prefix

XML = {"Content-Type": "application/xml"}
ORDER_MESSAGE = """<bpmn:message id="msg_order" name="new_order"/>
  <bpmn:correlationProperty id="order_prop" name="order_prop">
    <bpmn:correlationPropertyRetrievalExpression messageRef="msg_order">
      <bpmn:formalExpression>order_id</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
"""
MESSAGE_START = """<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="msg_order">
  <bpmn:extensionElements><spiffworkflow:messageVariable>order</spiffworkflow:messageVariable></bpmn:extensionElements>
  </bpmn:messageEventDefinition></bpmn:startEvent>"""
SIGNAL = '<bpmn:signal id="sig_alert" name="alert"/>'


def _model(key: str, header: str, start_event: str) -> str:
    return (HEAD.format(key=key) + header + f'<bpmn:process id="{key}" isExecutable="true">'
            + "\n".join([start_event, user("handle"), end(), seq("start", "handle", "end")])
            + "</bpmn:process></bpmn:definitions>")


def _intake(key: str = "order_intake", correlated: bool = True) -> str:
    header = ORDER_MESSAGE if correlated else '<bpmn:message id="msg_order" name="new_order"/>'
    return _model(key, header, MESSAGE_START)


def _watch(key: str) -> str:
    return _model(key, SIGNAL, '<bpmn:startEvent id="start"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
                               '</bpmn:startEvent>')


def _thrower(key: str, throw: str, header: str) -> str:
    return (HEAD.format(key=key) + header + f'<bpmn:process id="{key}" isExecutable="true">'
            + '<bpmn:startEvent id="start"/>' + throw + "<bpmn:endEvent id='end'/>" + seq("start", "throw", "end")
            + "</bpmn:process></bpmn:definitions>")


ORDER_THROW = ('<bpmn:intermediateThrowEvent id="throw"><bpmn:messageEventDefinition messageRef="msg_order">'
               '<bpmn:extensionElements><spiffworkflow:messagePayload>{"order_id": order_id, "qty": 3}'
               '</spiffworkflow:messagePayload></bpmn:extensionElements></bpmn:messageEventDefinition>'
               '</bpmn:intermediateThrowEvent>')
SIGNAL_THROW = ('<bpmn:intermediateThrowEvent id="throw"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
                '</bpmn:intermediateThrowEvent>')


def _deploy(users, xml: str) -> None:
    r = users["admin"].post("/api/v1/process-definition", data=xml, headers=XML)
    assert r.status_code == 201, r.get_json()


def _instances(users, key: str) -> list[dict]:
    return users["admin"].get(f"/api/v1/process-instance?key={key}").get_json()["items"]


def _message(users, message_id: str, value: str | None, payload: dict):
    body = {"messageName": "new_order", "messageId": message_id, "payload": payload}
    if value is not None:
        body["correlationValue"] = value
    return users["system"].post("/api/v1/message", json=body)


def _deliver(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def test_a_message_starts_the_process_whose_start_event_waits_for_it_once_per_message_id(users):
    _deploy(users, _intake())
    r = _message(users, "m-1", "O-1", {"order_id": "O-1", "qty": 2})
    assert r.status_code == 200, r.get_json()
    started = r.get_json()["processInstanceId"]
    shown = users["admin"].get(f"/api/v1/process-instance/{started}").get_json()
    assert (shown["businessKey"], shown["status"]) == ("O-1", "running")
    variables = users["admin"].get(f"/api/v1/process-instance/{started}/variables").get_json()
    assert variables["order"] == {"order_id": "O-1", "qty": 2}
    tasks = users["admin"].get(f"/api/v1/task?processInstanceId={started}").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in tasks] == ["handle"]
    again = _message(users, "m-1", "O-1", {"order_id": "O-1", "qty": 2})  # the same message id: nothing new
    assert again.status_code == 200 and again.get_json()["processInstanceId"] == started
    assert len(_instances(users, "order_intake")) == 1
    # Another message with the same correlation value: the business key is taken, so it is no start.
    other = _message(users, "m-2", "O-1", {"order_id": "O-1", "qty": 5})
    assert other.status_code == 202 and other.get_json()["status"] == "buffered"
    assert len(_instances(users, "order_intake")) == 1
    assert _message(users, "m-3", "O-2", {"order_id": "O-2"}).status_code == 200
    assert sorted(i["businessKey"] for i in _instances(users, "order_intake")) == ["O-1", "O-2"]


def test_without_correlation_properties_each_message_starts_an_instance_without_business_key(users):
    _deploy(users, _intake(correlated=False))
    for n in range(2):
        assert _message(users, f"m-{n}", "any", {"n": n}).status_code == 200
    assert [i["businessKey"] for i in _instances(users, "order_intake")] == [None, None]


def test_a_message_addressed_to_an_instance_starts_nothing(users):
    _deploy(users, _intake())
    r = users["system"].post("/api/v1/message", json={"messageName": "new_order", "messageId": "x",
                                                      "processInstanceId": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 202 and r.get_json()["status"] == "buffered"
    assert _instances(users, "order_intake") == []


def test_two_processes_starting_on_one_message_refuse_it_naming_both(users):
    _deploy(users, _intake("intake_a"))
    _deploy(users, _intake("intake_b"))
    r = _message(users, "m-1", "O-1", {"order_id": "O-1"})
    assert r.status_code == 422, r.get_json()
    assert "intake_a and intake_b" in r.get_json()["error"]["message"]
    assert _instances(users, "intake_a") == [] and _instances(users, "intake_b") == []


def test_a_suspended_latest_version_is_not_started_by_a_message(users):
    _deploy(users, _intake())
    deployed = users["admin"].post("/api/v1/process-definition", data=_intake(), headers=XML).get_json()
    r = users["admin"].post(f"/api/v1/process-definition/{deployed['id']}/suspend", json={"reason": "paused"})
    assert r.status_code == 200, r.get_json()
    assert _message(users, "m-1", "O-1", {"order_id": "O-1"}).get_json()["status"] == "buffered"
    assert _instances(users, "order_intake") == []


def test_a_message_thrown_by_another_instance_starts_the_process_through_the_outbox(rt, users):
    _deploy(users, _intake())
    _deploy(users, _thrower("order_desk", ORDER_THROW, ORDER_MESSAGE))
    r = users["admin"].post("/api/v1/process-definition/key/order_desk/start",
                            json={"variables": {"order_id": "O-9"}})
    assert r.status_code == 201, r.get_json()
    assert _instances(users, "order_intake") == []  # nothing leaves before the outbox is relayed
    _deliver(rt)
    (started,) = _instances(users, "order_intake")
    assert started["businessKey"] == "O-9"
    _deliver(rt)  # the job run again starts nothing
    assert len(_instances(users, "order_intake")) == 1


def test_a_signal_starts_every_process_waiting_for_it_in_the_throwers_city_once(rt, users):
    rt.tenant_of = tenant_prefix  # as the app's wiring sets it
    for xml in (_watch("watch_a"), _watch("watch_b"), _thrower("alarm", SIGNAL_THROW, SIGNAL)):
        _deploy(users, xml)
    r = users["admin"].post("/api/v1/process-definition/key/alarm/start", json={"scope": "320703001000009"})
    assert r.status_code == 201, r.get_json()
    _deliver(rt)
    for key in ("watch_a", "watch_b"):
        (started,) = _instances(users, key)
        assert started["status"] == "running"
        shown = users["admin"].get(f"/api/v1/process-instance/{started['id']}").get_json()
        assert shown["scope"] == "3207"
    with rt.db.session() as s:  # the broadcast job run again (at least once) starts nothing twice
        from engine.models import OutboxEntry

        for row in s.query(OutboxEntry).all():
            row.relayed_at, row.done_at = None, None
        s.commit()
    _deliver(rt)
    assert len(_instances(users, "watch_a")) == 1 and len(_instances(users, "watch_b")) == 1
