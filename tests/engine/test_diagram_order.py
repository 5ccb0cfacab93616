"""A diagram never decides what runs: a gateway whose conditions are both true takes the flow that
comes first in the file, wherever a modeler drew the targets (SpiffWorkflow alone takes the flow
whose target is drawn highest)."""

import re

from engine import definitions, instances
from tests.engine.builders import end, flow, gateway, process, script, seq, start
from tools.bpmn_layout import with_diagram


def _both_true() -> str:
    return process("both_true", start(), script("set", "x = 1"), gateway("gw"),
                   script("first", "took = 'first'"), script("second", "took = 'second'"), end("e1"), end("e2"),
                   seq("start", "set", "gw"), flow("gw", "first", "x == 1"), flow("gw", "second", "x > 0"),
                   seq("first", "e1"), seq("second", "e2"))


def test_a_gateway_takes_the_first_true_flow_of_the_file_whatever_the_diagram(rt):
    plain = _both_true()
    # laid out, then turned upside down: the second branch is drawn above the first
    drawn = re.sub(r'(<dc:Bounds x="-?\d+" y=")(\d+)', r"\1-\2", with_diagram(plain))
    second_y = int(re.search(r'bpmnElement="second">\s*<dc:Bounds x="-?\d+" y="(-?\d+)"', drawn).group(1))
    first_y = int(re.search(r'bpmnElement="first">\s*<dc:Bounds x="-?\d+" y="(-?\d+)"', drawn).group(1))
    assert second_y < first_y
    for xml in (plain, drawn):
        definition, _ = definitions.deploy(rt, xml, "admin")
        started = instances.start(rt, actor="t", definition_id=definition.id)
        assert instances.variables(rt, started.instance.id)["took"] == "first"
