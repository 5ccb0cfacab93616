"""XML namespaces of BPMN and the SpiffWorkflow extensions."""

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NSMAP = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}


def full_tag(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"
