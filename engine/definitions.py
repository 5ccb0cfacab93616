"""Deploying process models: parse, lint, and store an immutable version (same bytes, same version)."""

from __future__ import annotations

import hashlib

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import audit
from .errors import NotFound
from .models import ProcessDefinition
from .parsing import SAFE_PARSER, parse_model
from .runtime import Runtime

DEPLOY_LOCK_KEY = 0x6772_6964_0002


def deploy(rt: Runtime, bpmn_xml: str | bytes, actor: str) -> tuple[ProcessDefinition, bool]:
    """Deploy a model; returns (definition, created). Raises parsing.ModelError naming each problem."""
    raw = bpmn_xml.encode() if isinstance(bpmn_xml, str) else bpmn_xml
    model = parse_model(raw, known_operation=rt.registry.__contains__, known_reference=rt.references.get)
    digest = hashlib.sha256(raw).hexdigest()
    text = xml_text(raw)
    for _attempt in range(3):
        try:
            with rt.db.transaction() as s:
                rt.db.advisory_xact_lock(s, DEPLOY_LOCK_KEY)
                same = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == model.key,
                                                                ProcessDefinition.sha256 == digest))
                if same is not None:
                    return same, False
                version = (s.scalar(select(func.max(ProcessDefinition.version))
                                    .where(ProcessDefinition.key == model.key)) or 0) + 1
                now = rt.clock.now()
                definition = ProcessDefinition(key=model.key, version=version, name=model.name, bpmn_xml=text,
                                               sha256=digest, deployed_by=actor, deployed_at=now)
                s.add(definition)
                s.flush()
                audit.append_system(rt.db, s, [audit.AuditDraft(
                    action="definition.deployed", actor=actor, at=now,
                    details={"key": model.key, "version": version, "sha256": digest})])
            rt.specs.put(definition.id, model)
            return definition, True
        except IntegrityError:
            continue  # a concurrent deploy took this version number; read again
    raise RuntimeError("could not allocate a definition version")


def xml_text(raw: bytes) -> str:
    """The model as text whatever encoding it declared (GBK, UTF-16...); parsing already succeeded."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return etree.tostring(etree.fromstring(raw, parser=SAFE_PARSER), encoding="unicode")


def latest(rt: Runtime, key: str) -> ProcessDefinition:
    with rt.db.session() as s:
        d = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key)
                     .order_by(ProcessDefinition.version.desc()).limit(1))
    if d is None:
        raise NotFound(f"no process definition with key '{key}'")
    return d


def get(rt: Runtime, definition_id: int) -> ProcessDefinition:
    with rt.db.session() as s:
        d = s.get(ProcessDefinition, definition_id)
    if d is None:
        raise NotFound(f"process definition {definition_id} does not exist")
    return d


def list_definitions(rt: Runtime, key: str | None = None, latest_only: bool = False) -> list[ProcessDefinition]:
    with rt.db.session() as s:
        stmt = select(ProcessDefinition).order_by(ProcessDefinition.key, ProcessDefinition.version)
        if key:
            stmt = stmt.where(ProcessDefinition.key == key)
        rows = list(s.scalars(stmt))
    if latest_only:
        newest: dict[str, ProcessDefinition] = {}
        for d in rows:
            newest[d.key] = d
        rows = list(newest.values())
    return rows
