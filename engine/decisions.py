"""Decision tables: deploy a DMN file (every decision its own key and version; the same bytes keep
their version), read them back, and evaluate the newest version of a key for a business rule task
(spiff_dmn.DecisionTask). A process whose business rule task names a decision that is deployed
neither before nor with it is refused at deploy (`missing`)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import audit, dmn_hits
from .dmn import ParsedDecision, parse_decisions
from .errors import NotFound, ProcessError
from .models import DecisionDefinition
from .parsing import SAFE_PARSER, Problem, declared_outputs
from .spiff_dmn import decision_refs

if TYPE_CHECKING:
    from .runtime import Runtime

DEPLOY_LOCK_KEY = 0x6772_6964_0002  # bundles.DEPLOY_LOCK_KEY (it imports this module): one deploy at a time


def deploy(rt: Runtime, dmn_xml: str | bytes, actor: str) -> list[tuple[DecisionDefinition, bool]]:
    """Deploy every decision of a DMN file; (definition, created) each, in the file's order. Raises
    parsing.ModelError naming each problem; stores nothing then."""
    raw = dmn_xml.encode() if isinstance(dmn_xml, str) else dmn_xml
    parsed = parse_decisions(raw)
    for _attempt in range(3):
        try:
            with rt.db.transaction() as s:
                rt.db.advisory_xact_lock(s, DEPLOY_LOCK_KEY)
                stored = store(rt, s, parsed, raw, actor, rt.clock.now())
            for (definition, _created), decision in zip(stored, parsed, strict=True):
                rt.decisions.put(definition.id, decision)
            return stored
        except IntegrityError:
            continue  # a concurrent deploy took this version number; read again
    raise RuntimeError("could not allocate a decision version")


def store(rt: Runtime, s, parsed: list[ParsedDecision], raw: bytes, actor: str, now: datetime,
          deployment_id: int | None = None, drafts: list | None = None) -> list[tuple[DecisionDefinition, bool]]:
    """Store the decisions of one file in the caller's transaction (which holds the deploy lock);
    their audit events go to `drafts` when the caller appends its own (a bundle), else straight in."""
    digest = hashlib.sha256(raw).hexdigest()
    text = _text(raw)
    stored, mine = [], []
    for decision in parsed:
        same = s.scalar(select(DecisionDefinition).where(DecisionDefinition.key == decision.key,
                                                         DecisionDefinition.sha256 == digest))
        if same is not None:
            stored.append((same, False))
            continue
        version = (s.scalar(select(func.max(DecisionDefinition.version))
                            .where(DecisionDefinition.key == decision.key)) or 0) + 1
        definition = DecisionDefinition(key=decision.key, version=version, name=decision.name,
                                        hit_policy=decision.hit_policy, dmn_xml=text, sha256=digest,
                                        deployed_by=actor, deployed_at=now, deployment_id=deployment_id)
        s.add(definition)
        s.flush()
        stored.append((definition, True))
        mine.append(audit.AuditDraft(action="decision.deployed", actor=actor, at=now, details={
            "key": decision.key, "version": version, "sha256": digest, "hitPolicy": decision.hit_policy,
            **({"deployment": deployment_id} if deployment_id is not None else {})}))
    if drafts is not None:
        drafts.extend(mine)
    elif mine:
        audit.append_system(rt, s, mine)
    return stored


def missing(s, process_specs: Iterable, deployed_with: Collection[str] = frozenset()) -> list[Problem]:
    """A problem for every business rule task whose decision is neither in `deployed_with` (the
    decisions of the same deployment) nor deployed before."""
    problems = []
    for element, key in decision_refs(process_specs):
        if not key:
            problems.append(Problem(element, "the business rule task names no decision "
                                             "(spiffworkflow:calledDecisionId)"))
        elif key not in deployed_with and s.scalar(
                select(DecisionDefinition.id).where(DecisionDefinition.key == key).limit(1)) is None:
            problems.append(Problem(element, f"the business rule task evaluates decision '{key}', which is not "
                                             "deployed; deploy its DMN file first, or with this model"))
    return problems


def get(rt: Runtime, definition_id: int) -> DecisionDefinition:
    with rt.db.session() as s:
        found = s.get(DecisionDefinition, definition_id)
    if found is None:
        raise NotFound(f"decision definition {definition_id} does not exist")
    return found


def list_definitions(rt: Runtime, key: str | None = None, latest_only: bool = False) -> list[DecisionDefinition]:
    with rt.db.session() as s:
        stmt = select(DecisionDefinition).order_by(DecisionDefinition.key, DecisionDefinition.version)
        if key:
            stmt = stmt.where(DecisionDefinition.key == key)
        if latest_only:
            newest = (select(DecisionDefinition.key, func.max(DecisionDefinition.version).label("v"))
                      .group_by(DecisionDefinition.key).subquery())
            stmt = stmt.join(newest, (newest.c.key == DecisionDefinition.key)
                             & (newest.c.v == DecisionDefinition.version))
        return list(s.scalars(stmt))


class Decisions:
    """Parsed decisions per definition id (versions are immutable, so entries never go stale), and
    the evaluation a business rule task asks for through the script environment."""

    def __init__(self) -> None:
        self._parsed: dict[int, ParsedDecision] = {}
        self._lock = threading.Lock()

    def put(self, definition_id: int, decision: ParsedDecision) -> None:
        with self._lock:
            self._parsed.setdefault(definition_id, decision)

    def decide(self, conn, my_task, key: str | None) -> dict[str, Any]:
        """The outputs of the newest version of `key` for the task's data, read through the change's
        connection; a ProcessError in the modeller's words if the table cannot answer."""
        element = my_task.task_spec.bpmn_id or my_task.task_spec.name
        newest = conn.execute(select(DecisionDefinition.id, DecisionDefinition.version)
                              .where(DecisionDefinition.key == key)
                              .order_by(DecisionDefinition.version.desc()).limit(1)).first()
        if newest is None:
            raise ProcessError(f"the business rule task evaluates decision '{key}', which is not deployed",
                               element=element, decision=key)
        assert key is not None  # a row matched it, and decision keys are NOT NULL
        decision = self._parsed.get(newest.id) or self._load(conn, newest.id, key)
        allowed = declared_outputs(my_task.task_spec)
        if allowed is not None and not decision.variables <= allowed:
            raise ProcessError(f"decision '{key}' (version {newest.version}) sets "
                               f"{', '.join(sorted(decision.variables - allowed))}, which the task does not declare "
                               f"in its outputs ({', '.join(sorted(allowed)) or 'none'})", element=element,
                               decision=key, decisionVersion=newest.version)
        try:
            return dmn_hits.evaluate(decision, my_task)
        except dmn_hits.DecisionFailed as exc:
            raise dmn_hits.failure(key, newest.version, decision.hit_policy, exc, element) from exc

    def _load(self, conn, definition_id: int, key: str) -> ParsedDecision:
        xml = conn.scalar(select(DecisionDefinition.dmn_xml).where(DecisionDefinition.id == definition_id))
        decision = next(d for d in parse_decisions(xml) if d.key == key)
        self.put(definition_id, decision)
        return decision


def _text(raw: bytes) -> str:
    """The file as text whatever encoding it declared; parsing already succeeded."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return etree.tostring(etree.fromstring(raw, parser=SAFE_PARSER), encoding="unicode")
