"""An export of the whole trail (events, recorded heads, checkpoints) as JSON lines, and its offline
verification: an auditor holding the key file runs the same checks as `verify` without a database.

The file: a header line, then one object per line keyed by its kind — `checkpoint`, `event` (in id
order), `instance` (its recorded head), `chainHead` (the system and anchor chains' recorded heads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, overload

from sqlalchemy import select

from ..db import Database
from ..models import ProcessInstance
from .keys import AuditKeys
from .store import chain_heads, checkpoints, events, snapshot
from .verify import ChainReport, Verifier

FORMAT = "gridloop-audit-export"
VERSION = 1
EVENT_FIELDS = ("id", "chain", "at", "actor", "action", "instance_id", "task_id", "element_id", "details",
                "prev_hash", "hash", "key_id")
CHECKPOINT_FIELDS = ("seq", "at", "taken_by", "max_event_id", "legacy_until", "heads", "prev_signature", "key_id",
                     "signature")


class ExportError(ValueError):
    """The file is not an audit export this version reads."""


@dataclass
class ExportSummary:
    events: int
    instances: int
    checkpoints: int
    last_checkpoint_seq: int | None
    last_checkpoint_signature: str | None


def _line(out: IO[str], kind: str, obj: Any, fields: tuple[str, ...]) -> None:
    record = {f: (getattr(obj, f).isoformat() if f == "at" else getattr(obj, f)) for f in fields}
    out.write(json.dumps({kind: record}, ensure_ascii=False, sort_keys=True) + "\n")


def export(db: Database, path: Path, exported_at: datetime) -> ExportSummary:
    """Write the trail as of one snapshot to `path`."""
    with snapshot(db) as s, path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"format": FORMAT, "version": VERSION, "exportedAt": exported_at.isoformat()}) + "\n")
        marks = checkpoints(s)
        for c in marks:
            _line(out, "checkpoint", c, CHECKPOINT_FIELDS)
        n_events = 0
        for e in events(s):
            _line(out, "event", e, EVENT_FIELDS)
            n_events += 1
        n_instances = 0
        for instance_id, head in s.execute(select(ProcessInstance.id, ProcessInstance.audit_head)
                                           .order_by(ProcessInstance.id)):
            out.write(json.dumps({"instance": {"id": instance_id, "audit_head": head}}) + "\n")
            n_instances += 1
        for chain, hash_ in sorted(chain_heads(s).items()):
            out.write(json.dumps({"chainHead": {"chain": chain, "hash": hash_}}) + "\n")
    last = marks[-1] if marks else None
    return ExportSummary(n_events, n_instances, len(marks), last.seq if last else None,
                         last.signature if last else None)


def _records(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        header = f.readline()
        try:
            head = json.loads(header)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: line 1 is not JSON") from exc
        if not isinstance(head, dict) or head.get("format") != FORMAT or head.get("version") != VERSION:
            raise ExportError(f"{path}: not a {FORMAT} version {VERSION} file")
        for number, text in enumerate(f, start=2):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                (kind, record), = obj.items()
            except (json.JSONDecodeError, ValueError, AttributeError) as exc:
                raise ExportError(f"{path}: line {number} is not one JSON record") from exc
            if not isinstance(record, dict):
                raise ExportError(f"{path}: line {number}: a {kind!r} record is not a JSON object")
            yield number, kind, record


@overload
def _text(record: dict[str, Any], name: str, number: int) -> str: ...
@overload
def _text(record: dict[str, Any], name: str, number: int, *, missing_ok: bool) -> str | None: ...
def _text(record: dict[str, Any], name: str, number: int, *, missing_ok: bool = False) -> str | None:
    """A text field of an instance or chain-head record (a null one only with `missing_ok`): a record
    that names nothing would check nothing."""
    value = record.get(name)
    if value is None and missing_ok:
        return None
    if not isinstance(value, str) or not value:
        raise ExportError(f"line {number}: a field is missing or malformed ({name!r})")
    return value


def _namespace(record: dict[str, Any], fields: tuple[str, ...], number: int) -> SimpleNamespace:
    try:
        values = {f: record[f] for f in fields}
        values["at"] = datetime.fromisoformat(values["at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"line {number}: a field is missing or malformed ({exc})") from exc
    return SimpleNamespace(**values)


def verify_export(path: Path, keys: AuditKeys) -> ChainReport:
    """The checks of `verify`, on an export file: reads it twice (checkpoints first, then the rest)."""
    v = Verifier(keys)
    v.checkpoints(_namespace(r, CHECKPOINT_FIELDS, n) for n, kind, r in _records(path) if kind == "checkpoint")
    heads: dict[str, str] = {}
    last_id = 0
    for number, kind, record in _records(path):
        if kind == "event":
            e = _namespace(record, EVENT_FIELDS, number)
            if not isinstance(e.id, int) or e.id <= last_id:
                raise ExportError(f"line {number}: events are not in ascending id order")
            last_id = e.id
            v.event(e)
        elif kind == "instance":
            v.instance(_text(record, "id", number), _text(record, "audit_head", number, missing_ok=True))
        elif kind == "chainHead":
            heads[_text(record, "chain", number)] = _text(record, "hash", number)
        elif kind != "checkpoint":
            raise ExportError(f"line {number}: unknown record {kind!r}")
    v.chain_heads(heads)
    return v.report()
