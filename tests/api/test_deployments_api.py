"""Deployments as bundles and call activities, driven through the REST API: several files in one
multipart deploy or one zip, all or nothing; a call chain started, worked and finished over HTTP; a
child's incident seen from its parent."""

from __future__ import annotations

import io
import zipfile

from engine import outbox
from engine.operations import PermanentFailure
from engine.queues import ManualJobQueue
from tests.engine.builders import end, process, seq, service, start
from tests.engine.calling import child, grandchild, parent

GRID = "320706001000001"  # within the supervisor's scope 3207 (tests/api/conftest.py)
BUNDLE = {"grandchild.bpmn": grandchild(), "child.bpmn": child(), "parent.bpmn": parent()}


def _multipart(files: dict[str, str], **fields: str) -> dict:
    data: dict = {"file": [(io.BytesIO(xml.encode()), name) for name, xml in files.items()]}
    data.update(fields)
    return {"data": data, "content_type": "multipart/form-data"}


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, xml in files.items():
            archive.writestr(name, xml)
    return buffer.getvalue()


def _deliver(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def _tasks(caller, instance_id: str) -> list[dict]:
    return caller.get(f"/api/v1/task?processInstanceId={instance_id}").get_json()["items"]


def test_a_bundle_deploys_and_a_call_chain_runs_over_http(rt, users):
    admin, sup = users["admin"], users["sup"]
    r = admin.post("/api/v1/deployment", **_multipart(BUNDLE, name="call chain"))
    assert r.status_code == 201, r.get_json()
    deployment = r.get_json()
    assert deployment["name"] == "call chain" and deployment["deployedBy"] == "admin"
    assert [(f["name"], [(p["key"], p["version"], p["created"]) for p in f["processes"]])
            for f in deployment["files"]] == [("grandchild.bpmn", [("grandchild", 1, True)]),
                                              ("child.bpmn", [("child", 1, True)]),
                                              ("parent.bpmn", [("parent", 1, True)])]
    assert admin.get(f"/api/v1/deployment/{deployment['id']}").get_json()["files"] == deployment["files"]

    r = sup.post("/api/v1/process-definition/key/parent/start", json={"scope": GRID, "variables": {"case": "C-9"}})
    assert r.status_code == 201, r.get_json()
    pid = r.get_json()["id"]
    detail = sup.get(f"/api/v1/process-instance/{pid}").get_json()
    (called,) = detail["children"]
    assert (called["processKey"], called["parentElementId"], called["status"]) == ("child", "call_child", "running")
    assert called["scope"] == GRID and called["incidents"] == []
    (grand,) = sup.get(f"/api/v1/process-instance/{called['id']}").get_json()["children"]
    assert grand["parentInstanceId"] == called["id"]

    r = sup.post(f"/api/v1/process-instance/{called['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 403  # cancelling is an administrator's; and for a child, refused below
    r = admin.post(f"/api/v1/process-instance/{called['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 409 and r.get_json()["error"]["details"]["parentInstanceId"] == pid

    (fill,) = _tasks(sup, grand["id"])  # outside every lane: the starter's own task
    r = sup.post(f"/api/v1/task/{fill['id']}/complete", json={"variables": {"note": "done"}})
    assert r.status_code == 200, r.get_json()
    assert _deliver(rt) == 1 and _deliver(rt) == 1  # grandchild → child, child → parent
    assert [t["taskDefinitionKey"] for t in _tasks(sup, pid)] == ["after"]
    variables = sup.get(f"/api/v1/process-instance/{pid}/variables").get_json()
    assert (variables["note"], variables["depth"], variables["case"]) == ("done", 2, "C-9")
    assert [c["status"] for c in sup.get(f"/api/v1/process-instance/{pid}").get_json()["children"]] == ["completed"]


def test_a_bundle_with_one_bad_file_deploys_nothing(rt, users):
    admin = users["admin"]
    broken = process("broken", start(), service("call", "no.such.operation"), end(), seq("start", "call", "end"))
    r = admin.post("/api/v1/deployment", **_multipart({**BUNDLE, "broken.bpmn": broken, "notes.bpmn": "not xml"}))
    assert r.status_code == 400
    problems = r.get_json()["error"]["details"]["problems"]
    assert {"file": "broken.bpmn", "element": "call", "problem": "unknown service operation 'no.such.operation'"} \
        in problems
    assert any(p["file"] == "notes.bpmn" for p in problems)
    assert admin.get("/api/v1/process-definition").get_json() == []
    assert admin.get("/api/v1/deployment").get_json()["total"] == 0


def test_a_bundle_is_refused_when_a_call_names_a_process_nobody_deployed(rt, users):
    r = users["admin"].post("/api/v1/deployment", **_multipart({"child.bpmn": child(), "parent.bpmn": parent()}))
    assert r.status_code == 400
    (problem,) = r.get_json()["error"]["details"]["problems"]
    assert (problem["file"], problem["element"]) == ("child.bpmn", "call_grandchild")
    assert users["admin"].get("/api/v1/process-definition").get_json() == []


def test_a_zip_deploys_and_the_same_zip_again_keeps_the_versions(rt, users):
    admin = users["admin"]
    body = _zip({"models/grandchild.bpmn": grandchild(), "models/child.bpmn": child()})
    r = admin.post("/api/v1/deployment?name=zipped", data=body, headers={"Content-Type": "application/zip"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    r = admin.post("/api/v1/deployment", **_multipart({}) | {"data": {"file": (io.BytesIO(body), "again.zip")}})
    assert r.status_code == 200, r.get_json()
    again = r.get_json()
    assert again["id"] != first["id"]
    assert [p["definitionId"] for f in again["files"] for p in f["processes"]] == \
        [p["definitionId"] for f in first["files"] for p in f["processes"]]
    assert all(not p["created"] for f in again["files"] for p in f["processes"])
    bad = _zip({"child.bpmn": child(), "readme.txt": "hello"})
    r = admin.post("/api/v1/deployment", data=bad, headers={"Content-Type": "application/zip"})
    assert r.status_code == 400 and r.get_json()["error"]["details"]["problems"][0]["file"] == "bundle.zip/readme.txt"


def test_every_executable_pool_of_a_file_deploys_as_a_process(rt, users):
    two = process("first", start(), end(), seq("start", "end")).replace(
        "</bpmn:definitions>",
        '<bpmn:process id="second" isExecutable="true"><bpmn:startEvent id="s2"/><bpmn:endEvent id="e2"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="s2" targetRef="e2"/></bpmn:process></bpmn:definitions>')
    r = users["admin"].post("/api/v1/process-definition", data=two, headers={"Content-Type": "application/xml"})
    assert r.status_code == 400  # the one-file endpoint keeps taking exactly one executable process
    r = users["admin"].post("/api/v1/deployment", **_multipart({"pools.bpmn": two}))
    assert r.status_code == 201, r.get_json()
    (pools,) = r.get_json()["files"]
    assert [p["key"] for p in pools["processes"]] == ["first", "second"]


def test_only_an_administrator_deploys_a_bundle(rt, users):
    for who in ("sup", "insp", "leader", "anonymous"):
        assert users[who].post("/api/v1/deployment", **_multipart(BUNDLE)).status_code in (401, 403)
    assert users["admin"].post("/api/v1/deployment", data="x", headers={"Content-Type": "text/plain"}
                               ).status_code == 415


def test_a_childs_incident_is_visible_from_its_parent(rt, users):
    def broken(_params, _ctx):
        raise PermanentFailure("the sensor registry refused the call")

    rt.registry.register("test.broken", broken, is_async=True)
    failing = process("failing", start(), service("call", "test.broken"), end(), seq("start", "call", "end"))
    r = users["admin"].post("/api/v1/deployment",
                            **_multipart({"failing.bpmn": failing, "parent.bpmn": parent(called="failing")}))
    assert r.status_code == 201, r.get_json()
    pid = users["sup"].post("/api/v1/process-definition/key/parent/start", json={"scope": GRID}).get_json()["id"]
    _deliver(rt)
    (called,) = users["sup"].get(f"/api/v1/process-instance/{pid}").get_json()["children"]
    (incident,) = called["incidents"]
    assert incident["elementId"] == "call" and "refused" in incident["message"]
