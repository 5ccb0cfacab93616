"""Finding the models in a checkout of SpiffWorkflow's test data: every executable process of every
BPMN file is one model, deployed as a bundle of its own file plus the files (under the same --models
directory) that define the processes its call activities call and the decisions its business rule
tasks use, found transitively."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
DMN_SUFFIX = ".dmn"
BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml")
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


@dataclass(frozen=True)
class Model:
    file: Path  # the file that defines the process
    process_id: str
    bundle: tuple[Path, ...]  # its file first, then what it needs
    root: Path  # the --models directory it was found under

    @property
    def name(self) -> str:
        return f"{self.file.relative_to(self.root)}#{self.process_id}"


@dataclass
class _FileFacts:
    processes: dict[str, bool]  # id -> executable (the library's default: true)
    calls: set[str]  # calledElement of call activities
    decisions: set[str]  # decision ids its business rule tasks name


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _bpmn_facts(path: Path) -> _FileFacts | None:
    try:
        tree = etree.parse(str(path), PARSER)
    except etree.XMLSyntaxError:
        return None
    processes, calls, decisions = {}, set(), set()
    for el in tree.iter():
        name = _local(el.tag)
        if name == "process" and el.get("id"):
            processes[el.get("id")] = el.get("isExecutable", "true") == "true"
        elif name == "callActivity" and el.get("calledElement"):
            calls.add(el.get("calledElement"))
        elif name == "calledDecisionId" and (el.text or "").strip():
            decisions.add(el.text.strip())
        elif name == "businessRuleTask":
            for attr, value in el.attrib.items():
                if _local(attr) == "decisionRef" and value:
                    decisions.add(value)
    return _FileFacts(processes, calls, decisions)


def _dmn_decisions(path: Path) -> set[str]:
    try:
        tree = etree.parse(str(path), PARSER)
    except etree.XMLSyntaxError:
        return set()
    return {el.get("id") for el in tree.iter() if _local(el.tag) == "decision" and el.get("id")}


def is_bpmn(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(BPMN_SUFFIXES)


def is_dmn(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(DMN_SUFFIX)


def _nearest(candidates: list[Path], near: Path) -> Path:
    """Of several files defining one id: the one in the same directory, else the closest by path."""
    def distance(p: Path) -> tuple[int, str]:
        common = len([a for a, b in zip(p.parent.parts, near.parent.parts, strict=False) if a == b])
        return (len(p.parent.parts) + len(near.parent.parts) - 2 * common, str(p))

    return min(candidates, key=distance)


def find_models(root: Path) -> tuple[list[Model], list[Path]]:
    """Every executable process under `root`, each with its bundle; and every DMN file."""
    bpmn_files = sorted(p for p in root.rglob("*") if is_bpmn(p))
    dmn_files = sorted(p for p in root.rglob("*") if is_dmn(p))
    facts = {p: f for p in bpmn_files if (f := _bpmn_facts(p)) is not None}
    defines: dict[str, list[Path]] = defaultdict(list)
    for path, f in facts.items():
        for pid in f.processes:
            defines[pid].append(path)
    decides: dict[str, list[Path]] = defaultdict(list)
    for path in dmn_files:
        for did in _dmn_decisions(path):
            decides[did].append(path)

    def bundle_of(first: Path) -> tuple[Path, ...]:
        order, todo = [first], [first]
        while todo:
            path = todo.pop()
            f = facts.get(path)
            if f is None:
                continue
            for called in sorted(f.calls - set(f.processes)):
                if called in defines:
                    found = _nearest(defines[called], first)
                    if found not in order and not any(called in facts[p].processes for p in order if p in facts):
                        order.append(found)
                        todo.append(found)
            for decision in sorted(f.decisions):
                if decision in decides:
                    found = _nearest(decides[decision], first)
                    if found not in order:
                        order.append(found)
        return tuple(order)

    models = [Model(path, pid, bundle_of(path), root)
              for path, f in facts.items() for pid, executable in f.processes.items() if executable]
    unreadable = [p for p in bpmn_files if p not in facts]
    models += [Model(p, "", (p,), root) for p in unreadable]  # counted: both sides must refuse them
    return models, dmn_files
