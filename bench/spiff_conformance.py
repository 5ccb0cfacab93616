"""Conformance with SpiffWorkflow's own test models: each model run to its end by the library in memory
and through GridLoop's REST API with the same driver, end states compared.

    git clone https://github.com/sartography/SpiffWorkflow /tmp/SpiffWorkflow
    T=/tmp/SpiffWorkflow/tests/SpiffWorkflow
    python -m bench.spiff_conformance --models $T/bpmn/data --models $T/spiff/data --models $T/dmn/data

Prints ONE JSON object. A model is an executable process of a BPMN file (a file that is not XML is one
model both sides must refuse); its bundle is its file plus the files under the same --models directory
defining what it calls (processes, decisions), bundle_of in _spiff_models.py. The driver (the same on
both sides, _spiff_library.py): complete the ready user/manual task with the smallest element id with
no data; deliver nothing from outside; when nothing is ready move a controlled clock by 1 min, 1 h, 1 d,
30 d, 400 d in turn (any progress starts the ladder again) and let timers fire. Scripts run in GridLoop's
sandbox on both sides (--library-engine default: the library's own unrestricted engine).

Same end state: both refuse; or both completed with the same completed elements and final data; or
both wait (nothing left the policy may do) with the same completed elements; or both fail at the same
element (GridLoop names a called process's failing step inside its message), or one side cannot say
where (the library's run is stopped after 15 s or 2 GiB, GridLoop's after 60 s). Reasons
are grouped by message with quoted names and numbers blanked; a refusal counts once per distinct
problem, so reason counts may add up to more than the models. --details FILE writes every model's
two end states.

The database (default: a fresh SQLite file in a temporary directory) is emptied before every model;
a --database-url is upgraded and emptied, so never point it at data you keep."""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import _spiff_library as library
from bench._spiff_gridloop import GridLoopSide, bundle_names
from bench._spiff_library import EndState
from bench._spiff_models import Model, find_models

QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|«[^»]*»")
NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
GENERATED_ID = re.compile(r"\b(sid-[0-9a-fA-F-]+|[A-Za-z]+_[0-9a-z]{5,})\b")


def blanked(message: str | None) -> str:
    """A message with its particulars blanked, so that one cause groups as one reason."""
    text = QUOTED.sub("'…'", message or "")
    text = GENERATED_ID.sub("ID", text)
    return NUMBER.sub("N", text).strip()[:220]


def compare(lib: EndState, gl: EndState) -> list[str]:
    """Why the two end states differ (empty: the same)."""
    if lib.outcome == "refused":
        return [] if gl.outcome == "refused" else [f"the library refuses the model, GridLoop {gl.outcome}"]
    if gl.outcome == "refused":
        return [f"refused: {blanked(p)}" for p in (gl.message or "").split("; ")]
    if lib.outcome != gl.outcome:
        why = f"library {lib.outcome}, GridLoop {gl.outcome}"
        if gl.outcome == "error":
            return [f"{why}: {blanked(gl.message)}"]
        if lib.outcome == "error":
            return [f"{why} (library: {blanked(lib.message)})"]
        return [why]
    if lib.outcome == "error":
        same = (lib.element == gl.element or lib.element is None or gl.element is None  # one side cannot say where
                or f"({lib.element})" in (gl.message or ""))  # GridLoop names a called process's failing step
        return [] if same else [f"both fail, at different elements: {blanked(gl.message)}"]
    reasons = []
    if lib.completed != gl.completed:
        reasons.append(f"both {lib.outcome}, different completed elements")
    if lib.outcome == "completed" and lib.data != gl.data:
        reasons.append("both completed, different final data")
    if lib.outcome == "waiting" and sorted(lib.open_tasks) != sorted(gl.open_tasks):
        reasons.append("both waiting, different open tasks")
    return reasons


def dmn_figures(files: list[Path], side: GridLoopSide) -> dict[str, Any]:
    """Decision files alone: does the library parse each (every decision's table), does GridLoop deploy it?"""
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

    counts: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    for path in files:
        try:
            parser = SpiffBpmnParser()
            parser.add_dmn_files([str(path)])
            for decision in list(parser.dmn_parsers):
                parser.get_engine(decision, None)
            parses = True
        except Exception:
            parses = False
        gl = side.run(Model(path, "", (path,), path.parent))
        deploys = gl.outcome != "refused"
        if not deploys:
            refusals.update({blanked(p) for p in (gl.message or "").split("; ")})
        counts["library_parses"] += parses
        counts["gridloop_deploys"] += deploys
        counts["both"] += parses and deploys
        counts["library_only"] += parses and not deploys
    return {"files": len(files), **counts, "gridloop_refusals": dict(refusals.most_common())}


def _source(root: Path) -> str | None:
    """The commit of a git checkout the models come from, if it is one."""
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--tags", "--always"], capture_output=True,
                             text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def measure(roots: list[Path], database_url: str, *, sandbox: bool,
            details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    from importlib.metadata import version

    models: list[Model] = []
    dmn_files: list[Path] = []
    for root in roots:
        found, dmn = find_models(root)
        models += found
        dmn_files += dmn
    side = GridLoopSide(database_url)
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    counts = Counter()
    try:
        for model in models:
            lib = library.run_guarded(model, sandbox=sandbox, seconds=15)
            try:
                gl = side.run(model)
            except Exception as exc:  # the bench's own trouble with one model must not hide the others
                logging.getLogger("bench.spiff_conformance").exception("GridLoop side failed: %s", model.name)
                gl = EndState("error", message=f"bench: {type(exc).__name__}: {exc}")
            why = compare(lib, gl)
            counts["library_refuses"] += lib.outcome == "refused"
            counts["deploy"] += gl.outcome != "refused"
            counts["same_end_state"] += not why
            counts["same_of_library_runs"] += not why and lib.outcome != "refused"
            counts[f"same_{lib.outcome}"] += not why
            counts[f"library_{lib.outcome}"] += 1
            for reason in dict.fromkeys(why):
                reasons[reason] += 1
                if len(examples[reason]) < 4:
                    examples[reason].append(model.name)
            if details is not None:
                details.append({"model": model.name, "bundle": bundle_names(model), "same": not why,
                                "reasons": why, "library": _shown(lib), "gridloop": _shown(gl)})
        dmn = dmn_figures(dmn_files, side)
    finally:
        side.close()
    runs = len(models) - counts["library_refuses"]
    return {
        "spiffworkflow_installed": version("spiffworkflow"),
        "models_from": {str(r): _source(r) for r in roots},
        "script_engine_on_library_side": "gridloop sandbox" if sandbox else "library default",
        "models": len(models),
        "library_refuses": counts["library_refuses"],
        "library_end_states": {k.removeprefix("library_"): v for k, v in sorted(counts.items())
                               if k.startswith("library_") and k != "library_refuses"},
        "gridloop_deploys": counts["deploy"],
        "same_end_state": counts["same_end_state"],
        "same_end_state_share": round(counts["same_end_state"] / len(models), 3) if models else None,
        "same_of_library_runs": f"{counts['same_of_library_runs']}/{runs}",
        "same_by_end_state": {k.removeprefix("same_"): counts[k] for k in
                              ("same_completed", "same_waiting", "same_error", "same_refused", "same_budget")},
        "reasons": [{"reason": r, "models": n, "examples": examples[r]} for r, n in reasons.most_common()],
        "dmn_files_alone": dmn,
    }


def _shown(state: EndState) -> dict[str, Any]:
    shown = asdict(state)
    shown["completed"] = sorted(state.completed)
    return shown


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", action="append", required=True, type=Path,
                    help="a directory of SpiffWorkflow's test models (repeatable)")
    ap.add_argument("--database-url", help="a database to use (upgraded and emptied!); default: a temporary SQLite")
    ap.add_argument("--library-engine", choices=("sandbox", "default"), default="sandbox",
                    help="the library side's script engine: GridLoop's sandbox (default) or the library's own")
    ap.add_argument("--details", type=Path, help="write every model's two end states to this JSON file")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the engine logs every process error at ERROR: the JSON says it
    for root in args.models:
        if not root.is_dir():
            ap.error(f"--models {root}: not a directory")
    details: list[dict[str, Any]] | None = [] if args.details else None
    with tempfile.TemporaryDirectory(prefix="spiff_conformance_") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/gridloop.db"
        figures = measure(args.models, url, sandbox=args.library_engine == "sandbox", details=details)
    if args.details:
        args.details.write_text(json.dumps(details, indent=1, ensure_ascii=False, default=str))
    json.dump(figures, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
