"""Jobs the worker tests enqueue by name: each writes a line "<tag> <event> <pid>" to a file, so a
test can tell which process ran what, and how often."""

from __future__ import annotations

import contextlib
import os
import time


def note(path: str, tag: str, event: str = "ran") -> None:
    with open(path, "a") as f:  # one short append per line: lines from processes do not interleave
        f.write(f"{tag} {event} {os.getpid()}\n")


def record(path: str, tag: str) -> None:
    note(path, tag)


def hang(path: str, tag: str) -> None:
    note(path, tag, "started")
    time.sleep(3600)


def hang_and_swallow_the_timeout(path: str, tag: str) -> None:
    """A job with a broad `except`: RQ's timeout exception never gets out of it."""
    note(path, tag, "started")
    while True:
        with contextlib.suppress(Exception):  # the point of this job
            time.sleep(3600)


def catch_the_timeout(path: str, tag: str) -> None:
    """A job that turns RQ's timeout into an outcome of its own and returns (as an operation's
    `except Exception` turns it into a retry)."""
    note(path, tag, "started")
    try:
        time.sleep(3600)
    except Exception:
        note(path, tag, "caught")


def fail(path: str, tag: str) -> None:
    note(path, tag, "started")
    raise ValueError("this job fails")


def slow(path: str, tag: str, seconds: float) -> None:
    note(path, tag, "started")
    time.sleep(seconds)
    note(path, tag)


STRAIGHT_THROUGH = b"""<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="straight" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def run_a_workflow(path: str, tag: str, phone: str) -> None:
    """Runs a workflow through SpiffWorkflow itself: every task state change calls its loggers."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser

    parser = BpmnParser()
    parser.add_bpmn_str(STRAIGHT_THROUGH)
    workflow = BpmnWorkflow(parser.get_spec("straight"))
    workflow.data["reporter_phone"] = phone
    for task in workflow.get_tasks():
        task.data["reporter_phone"] = phone
    workflow.do_engine_steps()
    assert workflow.completed
    note(path, tag)
