"""Every bundled model carries a diagram a modeler can open (BPMN DI): a shape per flow node, lane and
pool, an edge per sequence flow starting and ending on its shapes, nothing overlapping, and exactly
what tools/bpmn_layout.py makes of the process (so an edit of a model is followed by a new diagram).
The diagram changes nothing the engine runs."""

from __future__ import annotations

from itertools import combinations, pairwise
from pathlib import Path

import pytest
from lxml import etree

from api.settings import Settings
from api.wiring import deploy_directory, make_runtime
from engine import definitions
from engine.parsing import parse_model
from tools import bpmn_layout
from tools.bpmn_layout import Box

BPMN_DIR = Path(__file__).resolve().parents[2] / "bpmn"
MODELS = sorted(BPMN_DIR.glob("*.bpmn"))
NS = {"bpmn": bpmn_layout.BPMN, **bpmn_layout.DI_NAMESPACES}
FLOW_NODES = bpmn_layout.EVENTS | bpmn_layout.GATEWAYS | bpmn_layout.ACTIVITIES | {"boundaryEvent"}


def _read(path: Path):
    root = etree.fromstring(path.read_bytes())
    proc = root.find("bpmn:process", NS)
    nodes = {el.get("id"): etree.QName(el).localname for el in proc
             if isinstance(el.tag, str) and etree.QName(el).localname in FLOW_NODES}
    flows = {el.get("id"): (el.get("sourceRef"), el.get("targetRef")) for el in proc.iterfind("bpmn:sequenceFlow", NS)}
    lanes = {lane.get("id"): [r.text for r in lane.iterfind("bpmn:flowNodeRef", NS)]
             for lane in proc.iterfind("bpmn:laneSet/bpmn:lane", NS)}
    pools = [p.get("id") for p in root.iterfind("bpmn:collaboration/bpmn:participant", NS)]
    shapes = {}
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        b = shape.find("dc:Bounds", NS)
        shapes[shape.get("bpmnElement")] = Box(*(int(b.get(k)) for k in ("x", "y", "width", "height")))
    edges = {e.get("bpmnElement"): [(int(w.get("x")), int(w.get("y"))) for w in e.iterfind("di:waypoint", NS)]
             for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    return nodes, flows, lanes, pools, shapes, edges


def _on_border(box: Box, point: tuple[int, int]) -> bool:
    x, y = point
    inside_x, inside_y = box.x <= x <= box.x + box.w, box.y <= y <= box.y + box.h
    return (inside_y and x in (box.x, box.x + box.w)) or (inside_x and y in (box.y, box.y + box.h))


def test_every_bundled_model_is_checked():
    assert [p.name for p in MODELS] == ["alarm_review.bpmn", "env_case.bpmn", "graded_warning.bpmn",
                                        "patrol_round.bpmn", "patrol_visit.bpmn"]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_flow_node_lane_and_pool_has_a_shape_and_every_flow_an_edge(path):
    nodes, flows, lanes, pools, shapes, edges = _read(path)
    assert nodes and flows
    assert set(shapes) == set(nodes) | set(lanes) | set(pools)
    assert set(edges) == set(flows)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_shapes_do_not_overlap_and_sit_in_their_lane_and_pool(path):
    nodes, _flows, lanes, pools, shapes, _edges = _read(path)
    root = etree.fromstring(path.read_bytes())
    host = {b.get("id"): b.get("attachedToRef") for b in root.iterfind(".//bpmn:boundaryEvent", NS)}
    for a, b in combinations(sorted(nodes), 2):
        if host.get(a) == b or host.get(b) == a:
            continue  # a boundary event sits on its task's border, by definition
        assert not shapes[a].overlaps(shapes[b]), f"{a} overlaps {b}"
    for a, b in combinations(sorted(lanes), 2):
        assert not shapes[a].overlaps(shapes[b]), f"lanes {a} and {b} overlap"
    for lane, refs in lanes.items():
        band = shapes[lane]
        for ref in refs:
            s = shapes[ref]
            assert band.x <= s.x and s.x + s.w <= band.x + band.w and band.y <= s.y and s.y + s.h <= band.y + band.h, \
                f"{ref} is drawn outside its lane {lane}"
    for pool in pools:
        for n in nodes:
            assert shapes[pool].overlaps(shapes[n]) and shapes[pool].x < shapes[n].x, f"{n} outside the pool"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_edge_starts_and_ends_on_its_shapes_border_with_straight_segments(path):
    _nodes, flows, _lanes, _pools, shapes, edges = _read(path)
    for fid, (source, target) in flows.items():
        points = edges[fid]
        assert len(points) >= 2, fid
        assert _on_border(shapes[source], points[0]), f"{fid} does not leave {source} from its border"
        assert _on_border(shapes[target], points[-1]), f"{fid} does not reach {target} on its border"
        assert all(a[0] == b[0] or a[1] == b[1] for a, b in pairwise(points)), f"{fid} has a slanted segment"


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_the_committed_diagram_is_what_the_layout_tool_makes(path):
    """After an edit of the process, `python -m tools.bpmn_layout FILE` must be run again."""
    text = path.read_text(encoding="utf-8")
    assert bpmn_layout.with_diagram(text) == text


def test_the_tool_adds_a_diagram_and_touches_nothing_else():
    text = (BPMN_DIR / "alarm_review.bpmn").read_text(encoding="utf-8")
    bare = bpmn_layout._DIAGRAM.sub("", text)
    for prefix, uri in bpmn_layout.DI_NAMESPACES.items():
        bare = bare.replace(f'\n                  xmlns:{prefix}="{uri}"', "")
    assert "bpmndi" not in bare
    made = bpmn_layout.with_diagram(bare)
    assert made == text
    assert bpmn_layout.with_diagram(made) == made  # idempotent
    assert bpmn_layout.main(["--check", str(BPMN_DIR / "env_case.bpmn")]) == 0


def test_the_tool_refuses_a_file_of_two_processes():
    two = ('<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
           '<bpmn:process id="a"><bpmn:startEvent id="s1"/></bpmn:process>'
           '<bpmn:process id="b"><bpmn:startEvent id="s2"/></bpmn:process></bpmn:definitions>')
    with pytest.raises(ValueError, match="one process per file; this file has 2"):
        bpmn_layout.with_diagram(two)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_the_diagram_changes_nothing_the_engine_runs(path):
    with_di = parse_model(path.read_bytes(), require_lint=False)
    without = parse_model(bpmn_layout._DIAGRAM.sub("", path.read_text(encoding="utf-8")), require_lint=False)
    assert sorted(with_di.spec.task_specs) == sorted(without.spec.task_specs)
    for name, spec in with_di.spec.task_specs.items():
        other = without.spec.task_specs[name]
        assert type(spec) is type(other)
        assert [s.name for s in spec.outputs] == [s.name for s in other.outputs], name  # the file's order


def test_the_bundled_models_with_their_diagrams_deploy(db, tmp_path):
    settings = Settings(database_url=db.url, secret_key="x", storage_dir=str(tmp_path))
    rt = make_runtime(settings, db=db)
    deploy_directory(rt, BPMN_DIR, actor="system:bundled")
    assert {(d.key, d.version) for d in definitions.list_definitions(rt)} == {
        ("alarm_review", 1), ("env_case", 1), ("graded_warning", 1), ("patrol_round", 1), ("patrol_visit", 1)}
