"""Small DMN documents and processes with a business rule task, for the decision tests."""

from __future__ import annotations

from html import escape

from tests.engine.builders import end, process, seq, start

DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"


def table(key: str, inputs: list[str], outputs: list[str], rules: list[tuple[list[str], list[str]]], *,
          hit_policy: str | None = "UNIQUE", aggregation: str | None = None,
          output_values: dict[str, str] | None = None) -> str:
    """A decision table: `inputs` are input expressions, `outputs` output names, each rule a list of
    input cells and a list of output cells (Python, as SpiffWorkflow reads them); `output_values`
    maps an output name to its outputValues text (PRIORITY)."""
    attrs = (f' hitPolicy="{hit_policy}"' if hit_policy else "") + (f' aggregation="{aggregation}"'
                                                                     if aggregation else "")
    cols = "".join(f'<input id="in_{key}_{n}" label="{escape(e)}"><inputExpression id="ie_{key}_{n}">'
                   f"<text>{escape(e)}</text></inputExpression></input>" for n, e in enumerate(inputs))
    for n, name in enumerate(outputs):
        values = (output_values or {}).get(name)
        inner = f"<outputValues><text>{escape(values)}</text></outputValues>" if values else ""
        cols += f'<output id="out_{key}_{n}" name="{name}">{inner}</output>'
    body = ""
    for r, (ins, outs) in enumerate(rules, start=1):
        body += (f'<rule id="rule_{key}_{r}">'
                 + "".join(f'<inputEntry id="ie_{key}_{r}_{n}"><text>{escape(c)}</text></inputEntry>'
                           for n, c in enumerate(ins))
                 + "".join(f'<outputEntry id="oe_{key}_{r}_{n}"><text>{escape(c)}</text></outputEntry>'
                           for n, c in enumerate(outs))
                 + "</rule>")
    return (f'<decision id="{key}" name="{key} table"><decisionTable id="dt_{key}"{attrs}>{cols}{body}'
            "</decisionTable></decision>")


def dmn(*decisions: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><definitions xmlns="{DMN13}" id="defs" name="d" '
            f'namespace="http://gridloop.test/dmn">{"".join(decisions)}</definitions>')


def rule_task(id_: str, decision: str, outputs: str | None = None) -> str:
    props = (f'<spiffworkflow:properties><spiffworkflow:property name="outputs" value="{outputs}"/>'
             "</spiffworkflow:properties>") if outputs is not None else ""
    return (f'<bpmn:businessRuleTask id="{id_}" name="Decide {decision}"><bpmn:extensionElements>'
            f"<spiffworkflow:calledDecisionId>{decision}</spiffworkflow:calledDecisionId>{props}"
            "</bpmn:extensionElements></bpmn:businessRuleTask>")


def deciding(key: str, decision: str, *, before: str | None = None, outputs: str | None = None) -> str:
    """start → [before, an element given] → the business rule task → end."""
    steps = ["start", *(["before"] if before else []), "decide", "end"]
    return process(key, start(), *([before] if before else []), rule_task("decide", decision, outputs), end(),
                   seq(*steps))
