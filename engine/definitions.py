"""Process model versions: deploy (parse, lint, store an immutable version; same bytes, same version),
and the lifecycle an administrator steers: which version new cases start on (make latest, to roll
back a broken deploy) and whether a version takes new starts (suspend, activate). Every step is on
the system audit chain with who and why."""

from __future__ import annotations

import hashlib

from sqlalchemy import bindparam, select, update

from . import audit, bundles, start_timers
from .bundles import DEPLOY_LOCK_KEY, ParsedFile, xml_text  # noqa: F401 (xml_text: its old home)
from .errors import Conflict, NotFound
from .models import ProcessDefinition
from .outbox import WAKEUP_CHANNEL
from .parsing import parse_model
from .runtime import Runtime


def deploy(rt: Runtime, bpmn_xml: str | bytes, actor: str) -> tuple[ProcessDefinition, bool]:
    """Deploy a model; returns (definition, created). A new version becomes the latest. The bytes of
    a version already deployed answer that version unchanged, even when it is not the latest: the
    bundled models are redeployed on every start, which must not undo an administrator's choice
    (rolling back is `make_latest`). Raises parsing.ModelError naming each problem. A one-file bundle
    of exactly one executable process (bundles.py); it records a deployment only when it creates one."""
    raw = bpmn_xml.encode() if isinstance(bpmn_xml, str) else bpmn_xml
    model = parse_model(raw, known_operation=rt.registry.__contains__, known_reference=rt.references.get)
    parsed = ParsedFile(f"{model.key}.bpmn", raw, hashlib.sha256(raw).hexdigest(), [model])
    (deployed,) = bundles.store(rt, [parsed], actor, name=model.key, single=True).processes
    return deployed.definition, deployed.created


def warnings(rt: Runtime, definition: ProcessDefinition) -> list:
    """What the deploy's lint noted about a version without refusing it (parsing.Problem each)."""
    return list(rt.specs.get(rt.db, definition.id).warnings)


def latest(rt: Runtime, key: str) -> ProcessDefinition:
    """The version new cases of `key` start on."""
    with rt.db.session() as s:
        d = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key, ProcessDefinition.is_latest))
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
        if latest_only:
            stmt = stmt.where(ProcessDefinition.is_latest)
        return list(s.scalars(stmt))


def make_latest(rt: Runtime, definition_id: int, actor: str, reason: str) -> ProcessDefinition:
    """Start new cases of the key on this version again (a rollback); running cases stay on theirs.
    A suspended version is refused: it would refuse every start by key."""
    with rt.db.transaction() as s:
        rt.db.advisory_xact_lock(s, DEPLOY_LOCK_KEY)  # one latest per key, even against a deploy
        d = _locked(s, definition_id)
        if d.suspended:
            raise Conflict(f"version {d.version} of '{d.key}' is suspended; activate it before making it the "
                           "latest", definitionId=d.id)
        if d.is_latest:
            return d
        previous = s.scalar(select(ProcessDefinition.version).where(ProcessDefinition.key == d.key,
                                                                    ProcessDefinition.is_latest))
        s.execute(_UNMARK_LATEST, {"of_key": d.key})
        d.is_latest = True
        s.flush()
        scheduled = start_timers.sync(s, d.key, d.id, rt.specs.get(rt.db, d.id, session=s).start_timers,
                                      rt.clock.now())
        if scheduled:
            rt.db.notify(s, WAKEUP_CHANNEL)
        _audit(rt, s, d, "definition.made_latest", actor, reason, previous_latest=previous)
    if scheduled:
        rt.wake()
    return d


def suspend(rt: Runtime, definition_id: int, actor: str, reason: str) -> ProcessDefinition:
    """No new cases start on this version (by key or by id) until it is activated; running ones go on."""
    return _set_suspended(rt, definition_id, actor, reason, True)


def activate(rt: Runtime, definition_id: int, actor: str, reason: str) -> ProcessDefinition:
    """Let a suspended version take new cases again."""
    return _set_suspended(rt, definition_id, actor, reason, False)


def _set_suspended(rt: Runtime, definition_id: int, actor: str, reason: str, suspended: bool) -> ProcessDefinition:
    with rt.db.transaction() as s:
        d = _locked(s, definition_id)
        if d.suspended != suspended:  # asking twice changes nothing and records nothing
            d.suspended = suspended
            _audit(rt, s, d, "definition.suspended" if suspended else "definition.activated", actor, reason)
    return d


def count_process_error(rt: Runtime, definition_id: int) -> tuple[str, int] | None:
    """Count a change that failed in this version's model (after it rolled back, in a transaction
    of its own); returns the version's (key, version), None if it is gone."""
    with rt.db.transaction() as s:
        d = s.get(ProcessDefinition, definition_id)
        if d is None:
            return None
        s.execute(update(ProcessDefinition).where(ProcessDefinition.id == definition_id)
                  .values(process_errors=ProcessDefinition.process_errors + 1,
                          last_process_error_at=rt.clock.now()))
        return d.key, d.version


def process_error_counts(rt: Runtime) -> list[tuple[str, int, int]]:
    """(key, version, failed changes) of every version, for /metrics."""
    with rt.db.session() as s:
        return [(key, version, errors) for key, version, errors in s.execute(
            select(ProcessDefinition.key, ProcessDefinition.version, ProcessDefinition.process_errors)
            .order_by(ProcessDefinition.key, ProcessDefinition.version))]


_UNMARK_LATEST = (update(ProcessDefinition).where(ProcessDefinition.key == bindparam("of_key"),
                                                  ProcessDefinition.is_latest)
                  .values(is_latest=False).execution_options(synchronize_session=False))


def _locked(s, definition_id: int) -> ProcessDefinition:
    d = s.scalar(select(ProcessDefinition).where(ProcessDefinition.id == definition_id).with_for_update())
    if d is None:
        raise NotFound(f"process definition {definition_id} does not exist")
    return d


def _audit(rt: Runtime, s, d: ProcessDefinition, action: str, actor: str, reason: str, **more: object) -> None:
    audit.append_system(rt, s, [audit.AuditDraft(
        action=action, actor=actor, at=rt.clock.now(),
        details={"key": d.key, "version": d.version, "definition_id": d.id, "reason": reason, **more})])
