"""Lay out the diagram (BPMN DI) of a model from its process, so a modeler (bpmn-js) can open it.

    python -m tools.bpmn_layout bpmn/env_case.bpmn ...     rewrite each file's diagram in place
    python -m tools.bpmn_layout --check bpmn/*.bpmn        exit 1 when a diagram is not what the tool makes

Only the `bpmndi:BPMNDiagram` element (and the three DI namespace declarations) changes; the process,
comments and formatting stay byte for byte, so the layout can never change behaviour. Deterministic:
the same process gives the same diagram.

Layout: left to right on a grid of columns and rows. A node's column is its longest distance from a
start event, back edges (loops) ignored; the longest start-to-end path is the main row. Each lane is a
horizontal band (a node outside every lane is drawn in the band of the nearest lane it leads to, or
comes from: drawing only, the model is untouched); inside a band, branches go to the rows below the
main row, a boundary event's branch below its task. Edges are orthogonal: of a few candidate routes
along the gaps between rows and columns, the one crossing the fewest shapes. Flat processes only: a
sub-process is drawn collapsed.
"""

from __future__ import annotations

import argparse
import heapq
import re
import sys
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DI_NAMESPACES = {"bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
                 "dc": "http://www.omg.org/spec/DD/20100524/DC",
                 "di": "http://www.omg.org/spec/DD/20100524/DI"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent"}
GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
ACTIVITIES = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
SIZES = {"event": (36, 36), "gateway": (50, 50), "activity": (100, 80)}
COL_W, ROW_H = 160, 140  # a cell; shapes are centred in it, so gaps between cells carry the edges
MARGIN, POOL_HEAD, LANE_HEAD, INSET = 40, 30, 30, 10


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def cx(self) -> int:
        return self.x + self.w // 2

    @property
    def cy(self) -> int:
        return self.y + self.h // 2

    def crossed_by(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        """Whether an axis-parallel segment passes through the inside (the border does not count)."""
        (x1, y1), (x2, y2) = a, b
        lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        return lo_x < self.x + self.w and hi_x > self.x and lo_y < self.y + self.h and hi_y > self.y \
            and (self.x < x1 < self.x + self.w or lo_x != hi_x) and (self.y < y1 < self.y + self.h or lo_y != hi_y)

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


@dataclass
class Process:
    """What the layout reads of a model: one process, in document order."""
    id: str
    plane_element: str                    # the collaboration when the file has one, else the process
    participant: str | None
    nodes: dict[str, str]                 # id → kind (event, gateway, activity), boundary events excluded
    tags: dict[str, str]                  # id → BPMN tag (exclusive gateways get a visible marker)
    boundaries: dict[str, str]            # boundary event id → the activity it is attached to
    flows: list[tuple[str, str, str]]     # (id, source, target)
    lanes: list[tuple[str, list[str]]]    # (lane id, its flow node refs)


def read_process(xml: bytes) -> Process:
    root = etree.fromstring(xml)
    processes = [p for p in root.iterfind(f"{{{BPMN}}}process") if len(p.findall("*"))]
    if len(processes) != 1:
        raise ValueError(f"the layout draws one process per file; this file has {len(processes)}")
    proc = processes[0]
    pid = proc.get("id")
    collab = root.find(f"{{{BPMN}}}collaboration")
    participant = None
    if collab is not None:
        participant = next((p.get("id") for p in collab.iterfind(f"{{{BPMN}}}participant")
                            if p.get("processRef") == pid), None)
    nodes, tags, boundaries, flows = {}, {}, {}, []
    for el in proc:
        if not isinstance(el.tag, str):
            continue
        tag = etree.QName(el).localname
        if tag == "sequenceFlow":
            flows.append((el.get("id"), el.get("sourceRef"), el.get("targetRef")))
        elif tag == "boundaryEvent":
            boundaries[el.get("id")] = el.get("attachedToRef")
        elif tag in EVENTS or tag in GATEWAYS or tag in ACTIVITIES:
            nodes[el.get("id")] = "event" if tag in EVENTS else "gateway" if tag in GATEWAYS else "activity"
            tags[el.get("id")] = tag
    lanes = [(lane.get("id"), [r.text.strip() for r in lane.iterfind(f"{{{BPMN}}}flowNodeRef") if r.text])
             for lane in proc.iterfind(f"{{{BPMN}}}laneSet/{{{BPMN}}}lane")]
    return Process(pid, collab.get("id") if participant else pid, participant, nodes, tags, boundaries, flows, lanes)


@dataclass
class Diagram:
    shapes: dict[str, Box]                      # element id → bounds (pool, lanes, nodes, boundary events)
    edges: dict[str, list[tuple[int, int]]]     # sequence flow id → waypoints
    expanded: dict[str, bool]


def layout(p: Process) -> Diagram:
    order = {n: i for i, n in enumerate(p.nodes)}
    host = p.boundaries
    succ: dict[str, list[tuple[str, str]]] = defaultdict(list)   # boundary flows leave from the host
    for fid, s, t in p.flows:
        if t in p.nodes and (s in p.nodes or s in host):
            succ[host.get(s, s)].append((t, fid))
    back = _back_edges(p, succ, order)
    layer = _layers(p, succ, back, order)
    main = _main_path(p, succ, back, order)
    band = _bands(p, succ, back, order)
    rows = _rows(p, succ, back, layer, band, main, order)
    return _geometry(p, layer, band, rows, back)


def _back_edges(p: Process, succ, order) -> set[str]:
    state: dict[str, int] = {}
    back: set[str] = set()
    starts = [n for n, k in p.nodes.items() if p.tags[n] == "startEvent"]
    targets = {t for _f, _s, t in p.flows}
    roots = starts + [n for n in p.nodes if n not in targets] + list(p.nodes)
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            step = next(it, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            target, fid = step
            if state.get(target) == 1:
                back.add(fid)
            elif target not in state:
                state[target] = 1
                stack.append((target, iter(succ[target])))
    return back


def _layers(p: Process, succ, back, order) -> dict[str, int]:
    """A node's column: its longest distance from a node nothing leads to, loops ignored."""
    indegree = dict.fromkeys(p.nodes, 0)
    for n in p.nodes:
        for t, fid in succ[n]:
            if fid not in back:
                indegree[t] += 1
    ready = [(order[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    layer = dict.fromkeys(p.nodes, 0)
    while ready:
        _i, n = heapq.heappop(ready)
        for t, fid in succ[n]:
            if fid in back:
                continue
            layer[t] = max(layer[t], layer[n] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                heapq.heappush(ready, (order[t], t))
    return layer


def _main_path(p: Process, succ, back, order) -> list[str]:
    """The longest path from a start event to an end event over plain forward flows (no boundary
    event, no loop back): the way a case goes when nothing is late or sent back."""
    skip = back | {fid for fid, s, _t in p.flows if s in p.boundaries}
    indegree = dict.fromkeys(p.nodes, 0)
    for n in p.nodes:
        for t, fid in succ[n]:
            if fid not in skip:
                indegree[t] += 1
    ready = [(order[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    dist: dict[str, int] = {n: 0 for n in p.nodes if p.tags[n] == "startEvent"}
    pred: dict[str, str] = {}
    while ready:
        _i, n = heapq.heappop(ready)
        for t, fid in succ[n]:
            if fid in skip:
                continue
            if n in dist and dist[n] + 1 > dist.get(t, -1):
                dist[t], pred[t] = dist[n] + 1, n
            indegree[t] -= 1
            if indegree[t] == 0:
                heapq.heappush(ready, (order[t], t))
    ends = [n for n in dist if p.tags[n] == "endEvent"] or list(dist) or list(p.nodes)[:1]
    end = max(ends, key=lambda n: (dist.get(n, 0), -order[n]))
    path = [end]
    while path[-1] in pred:
        path.append(pred[path[-1]])
    return path[::-1]


def _bands(p: Process, succ, back, order) -> dict[str, int]:
    """The lane band of each node: its lane, else the nearest lane forward, else backward, else 0."""
    lane_of = {ref: i for i, (_lid, refs) in enumerate(p.lanes) for ref in refs}
    pred: dict[str, list[str]] = defaultdict(list)
    for n in p.nodes:
        for t, _fid in succ[n]:
            pred[t].append(n)

    def nearest(start: str, nxt) -> int | None:
        seen, queue = {start}, deque([start])
        while queue:
            n = queue.popleft()
            if n in lane_of:
                return lane_of[n]
            for m in nxt(n):
                if m not in seen:
                    seen.add(m)
                    queue.append(m)
        return None

    bands = {}
    for n in p.nodes:
        found = nearest(n, lambda m: [t for t, fid in succ[m] if fid not in back])
        if found is None:
            found = nearest(n, lambda m: pred[m])
        bands[n] = found if found is not None else 0
    return bands


def _rows(p: Process, succ, back, layer, band, main, order) -> dict[str, int]:
    """Main path on row 0 of its band; every other node on the first free row at or below the row its
    predecessors suggest (a boundary event's branch: below its task, one row per boundary event)."""
    rows: dict[str, int] = dict.fromkeys(main, 0)
    taken = {(band[n], 0, layer[n]) for n in main}
    wanted: dict[str, int] = {}
    branch_of = {fid: s for fid, s, _t in p.flows if s in p.boundaries}
    branch_index: dict[str, int] = {}
    per_host: dict[str, list[str]] = defaultdict(list)
    for b, h in p.boundaries.items():
        per_host[h].append(b)
    for events in per_host.values():
        for i, b in enumerate(events):
            branch_index[b] = i + 1
    for n in sorted(p.nodes, key=lambda m: (layer[m], order[m])):
        if n not in rows:
            row = max(1, wanted.get(n, 1))
            while (band[n], row, layer[n]) in taken:
                row += 1
            rows[n] = row
            taken.add((band[n], row, layer[n]))
        for t, fid in succ[n]:
            if fid in back or band[t] != band[n]:
                continue
            want = rows[n] + branch_index[branch_of[fid]] if fid in branch_of else rows[n]
            wanted[t] = min(wanted.get(t, want), want)
    return rows


def _geometry(p: Process, layer, band, rows, back) -> Diagram:
    n_bands = max(1, len(p.lanes))
    band_rows = [1 + max([rows[n] for n in p.nodes if band[n] == b] or [0]) for b in range(n_bands)]
    left = MARGIN + (POOL_HEAD if p.participant else 0) + (LANE_HEAD if p.lanes else 0) + INSET
    band_top = [MARGIN + ROW_H * sum(band_rows[:b]) for b in range(n_bands)]
    n_cols = 1 + max(layer.values(), default=0)
    width = left - MARGIN + n_cols * COL_W + INSET
    height = ROW_H * sum(band_rows)
    shapes: dict[str, Box] = {}
    if p.participant:
        shapes[p.participant] = Box(MARGIN, MARGIN, width, height)
    lane_x = MARGIN + (POOL_HEAD if p.participant else 0)
    for b, (lid, _refs) in enumerate(p.lanes):
        shapes[lid] = Box(lane_x, band_top[b], MARGIN + width - lane_x, ROW_H * band_rows[b])
    cell: dict[str, tuple[int, int]] = {}
    for n, kind in p.nodes.items():
        w, h = SIZES[kind]
        cx = left + layer[n] * COL_W + COL_W // 2
        cy = band_top[band[n]] + rows[n] * ROW_H + ROW_H // 2
        shapes[n] = Box(cx - w // 2, cy - h // 2, w, h)
        cell[n] = (layer[n], band_top[band[n]] + rows[n] * ROW_H)
    attached: dict[str, list[str]] = defaultdict(list)
    for b_id, h_id in p.boundaries.items():
        attached[h_id].append(b_id)
    for h_id, events in attached.items():
        hb = shapes[h_id]
        for i, b_id in enumerate(events):
            cx = hb.cx + (2 * i + 1 - len(events)) * 20  # 40 apart: side by side, never overlapping
            shapes[b_id] = Box(cx - 18, hb.y + hb.h - 18, 36, 36)
            cell[b_id] = cell[h_id]
    borders = {band_top[b] for b in range(n_bands)} | {MARGIN + height}  # lane borders: edges run beside them
    channels = sorted({y for r in range(sum(band_rows) + 1) for y in (
        [MARGIN + ROW_H * r - 15, MARGIN + ROW_H * r + 15] if MARGIN + ROW_H * r in borders else [MARGIN + ROW_H * r])
        if MARGIN < y < MARGIN + height})
    obstacles = {i: box for i, box in shapes.items() if i in p.nodes or i in p.boundaries}
    edges = {}
    for fid, s, t in p.flows:
        if s in shapes and t in shapes:
            edges[fid] = _route(shapes[s], shapes[t], cell[s], cell[t], s in p.boundaries, left, channels,
                                obstacles, {s, t})
    return Diagram(shapes, edges, {n: False for n, tag in p.tags.items() if tag in {"subProcess", "transaction"}})


def _route(s: Box, t: Box, s_cell, t_cell, from_boundary: bool, left: int, channels: list[int],
           obstacles: dict[str, Box], ends: set[str]) -> list[tuple[int, int]]:
    right, bottom, top = (s.x + s.w, s.cy), (s.cx, s.y + s.h), (s.cx, s.y)
    t_left, t_top, t_bottom = (t.x, t.cy), (t.cx, t.y), (t.cx, t.y + t.h)
    gap_before_t = left + t_cell[0] * COL_W
    gap_after_s = left + (s_cell[0] + 1) * COL_W
    forward = t.x > s.x + s.w
    candidates: list[list[tuple[int, int]]] = []
    exits = [bottom] if from_boundary else [right, bottom, top]
    if forward:
        if not from_boundary:
            if s.cy == t.cy:
                candidates.append([right, t_left])
            candidates += [[right, (gap_before_t, s.cy), (gap_before_t, t.cy), t_left],
                           [right, (gap_after_s, s.cy), (gap_after_s, t.cy), t_left],
                           [right, (t.cx, s.cy), t_top if t.cy > s.cy else t_bottom]]
        candidates.append([bottom if t.cy >= s.cy or from_boundary else top, (s.cx, t.cy), t_left])
    for ch in channels:
        for start in exits:
            if start == right:
                lead = [right, (gap_after_s, s.cy), (gap_after_s, ch)]
            elif (start == bottom) == (ch > s.cy):
                lead = [start, (s.cx, ch)]
            else:
                continue
            if forward:
                candidates.append([*lead, (gap_before_t, ch), (gap_before_t, t.cy), t_left])
            candidates.append([*lead, (t.cx, ch), t_bottom if ch > t.cy else t_top])
    others = [box for i, box in obstacles.items() if i not in ends]

    def score(points):
        segments = list(pairwise(points))
        crossings = sum(box.crossed_by(a, b) for a, b in segments for box in others)
        crossings += sum(s.crossed_by(a, b) for a, b in segments) + sum(t.crossed_by(a, b) for a, b in segments)
        length = sum(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in segments)
        return crossings, len(points), length

    best = min((_tidy(c) for c in candidates), key=score)
    return best


def _tidy(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop repeated points and the middle of three collinear ones."""
    out: list[tuple[int, int]] = []
    for pt in points:
        if out and out[-1] == pt:
            continue
        if len(out) >= 2 and (out[-2][0] == out[-1][0] == pt[0] or out[-2][1] == out[-1][1] == pt[1]):
            out[-1] = pt
            continue
        out.append(pt)
    return out


def render(p: Process, d: Diagram, indent: str = "  ") -> str:
    i1, i2, i3, i4 = (indent * k for k in range(1, 5))
    lines = [f'{i1}<bpmndi:BPMNDiagram id="diagram_{p.id}">',
             f'{i2}<bpmndi:BPMNPlane id="plane_{p.id}" bpmnElement="{p.plane_element}">']
    order = [x for x in [p.participant, *(lid for lid, _ in p.lanes)] if x] + list(p.nodes) + list(p.boundaries)
    for el in order:
        b = d.shapes[el]
        extra = ' isHorizontal="true"' if el == p.participant or el in dict(p.lanes) else ""
        if p.tags.get(el) == "exclusiveGateway":
            extra = ' isMarkerVisible="true"'
        if el in d.expanded:
            extra = ' isExpanded="false"'
        lines += [f'{i3}<bpmndi:BPMNShape id="{el}_di" bpmnElement="{el}"{extra}>',
                  f'{i4}<dc:Bounds x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}"/>',
                  f"{i3}</bpmndi:BPMNShape>"]
    for fid, points in d.edges.items():
        lines.append(f'{i3}<bpmndi:BPMNEdge id="{fid}_di" bpmnElement="{fid}">')
        lines += [f'{i4}<di:waypoint x="{x}" y="{y}"/>' for x, y in points]
        lines.append(f"{i3}</bpmndi:BPMNEdge>")
    lines += [f"{i2}</bpmndi:BPMNPlane>", f"{i1}</bpmndi:BPMNDiagram>"]
    return "\n".join(lines)


_DIAGRAM = re.compile(r"\n?[ \t]*<(?:\w+:)?BPMNDiagram\b.*?</(?:\w+:)?BPMNDiagram>", re.S)
_ROOT = re.compile(r"<(?:\w+:)?definitions\b[^>]*>", re.S)


def with_diagram(text: str) -> str:
    """The file's text with its diagram made anew from its process (nothing else changes)."""
    process = read_process(text.encode())
    body = _DIAGRAM.sub("", text)
    root = _ROOT.search(body)
    if root is None:
        raise ValueError("no definitions element")
    tag = root.group(0)
    declared = dict(re.findall(r'xmlns:(\w+)="([^"]*)"', tag))
    missing = []
    for prefix, uri in DI_NAMESPACES.items():
        if prefix in declared and declared[prefix] != uri:
            raise ValueError(f"the prefix {prefix} is bound to {declared[prefix]}, not {uri}")
        if prefix not in declared:
            missing.append(f'xmlns:{prefix}="{uri}"')
    if missing:
        pad = "\n" + " " * (len(tag.split()[0]) + 1) if "\n" in tag else " "
        end = -2 if tag.endswith("/>") else -1
        tag = tag[:end].rstrip() + "".join(pad + m for m in missing) + tag[end:]
        body = body[:root.start()] + tag + body[root.end():]
    close = body.rindex("</")
    diagram = render(process, layout(process))
    return body[:close].rstrip("\n ") + "\n" + diagram + "\n" + body[close:]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bpmn_layout", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a diagram is stale")
    args = parser.parse_args(list(argv) if argv is not None else None)
    stale = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        new = with_diagram(text)
        if new != text:
            stale.append(str(path))
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(("stale: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
