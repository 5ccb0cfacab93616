"""Deployments as bundles: one deploy carries several model files (or one zip of them). Every
executable process of every file gets its own key and version; a collaboration's pools deploy each
as a process. All or nothing: one bad file, and nothing is deployed; the problems name their file and
element. A `deployment` row records who deployed which files when, and which version of each process
the deploy stands for (created now, or kept because the same bytes were deployed before): a call
activity bound to `deployment` calls the version its caller's deployment stood for.

Files are told apart by their root element's namespace: BPMN (`FILE_KINDS`) and DMN decision tables
(dmn.py). A bundle's decisions are stored first, so its business rule tasks may use them; each decision
gets its own key and version like a process (decisions.py)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from lxml import etree
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from . import audit, decisions, start_timers
from .db import page
from .dmn import DMN_NAMESPACES, ParsedDecision, is_dmn, parse_decisions
from .errors import NotFound
from .models import DecisionDefinition, Deployment, ProcessDefinition
from .outbox import WAKEUP_CHANNEL
from .parsing import MAX_BPMN_BYTES, SAFE_PARSER, ModelError, ParsedModel, Problem, parse_processes
from .parsing_names import BPMN_NS
from .runtime import Runtime

DEPLOY_LOCK_KEY = 0x6772_6964_0002  # one deploy at a time: version numbers and `is_latest` stay consistent
MAX_FILES = 50
MAX_ZIP_BYTES = 20 * 1024 * 1024  # uncompressed, all members together
MODEL_SUFFIXES = (".bpmn", ".bpmn20.xml", ".xml", ".dmn")


@dataclass(frozen=True)
class BundleFile:
    name: str
    content: bytes


@dataclass
class ParsedFile:
    name: str
    content: bytes
    sha256: str
    processes: list[ParsedModel] = field(default_factory=list)
    decisions: list[ParsedDecision] = field(default_factory=list)  # a DMN file's


@dataclass
class DeployedDecision:
    file: str
    definition: DecisionDefinition
    created: bool


@dataclass
class DeployedProcess:
    file: str
    definition: ProcessDefinition
    created: bool
    model: ParsedModel


@dataclass
class DeployedBundle:
    deployment: Deployment | None  # None: a one-file deploy of bytes deployed before (definitions.deploy)
    processes: list[DeployedProcess]
    decisions: list[DeployedDecision] = field(default_factory=list)


def deploy_bundle(rt: Runtime, files: list[BundleFile], actor: str, name: str | None = None) -> DeployedBundle:
    """Parse and lint every file, then store them all in one transaction; raises ModelError (every
    problem with its file) and stores nothing if any file is refused."""
    return store(rt, parse_files(rt, files), actor, name)


def parse_files(rt: Runtime, files: list[BundleFile]) -> list[ParsedFile]:
    problems: list[Problem] = []
    if not files:
        raise ModelError([Problem(None, "the deployment carries no file")])
    if len(files) > MAX_FILES:
        raise ModelError([Problem(None, f"a deployment carries at most {MAX_FILES} files; this one {len(files)}")])
    names = [f.name for f in files]
    problems += [Problem(None, "two files of the deployment have this name", n) for n in sorted(set(names))
                 if names.count(n) > 1]
    parsed: list[ParsedFile] = []
    for f in files:
        kind = _kind(f.content)
        if is_dmn(kind):
            try:
                tables = parse_decisions(f.content)
            except ModelError as exc:
                problems += [p.in_file(f.name) for p in exc.problems]
                continue
            parsed.append(ParsedFile(f.name, f.content, hashlib.sha256(f.content).hexdigest(), decisions=tables))
            continue
        parse = FILE_KINDS.get(kind or "")
        if parse is None:
            known = ", ".join([*FILE_KINDS, *DMN_NAMESPACES])
            problems.append(Problem(None, f"not a model file GridLoop deploys ({known}): the root "
                                          f"element is {kind or 'not XML'}", f.name))
            continue
        try:
            processes = parse(rt, f.content)
        except ModelError as exc:
            problems += [p.in_file(f.name) for p in exc.problems]
            continue
        parsed.append(ParsedFile(f.name, f.content, hashlib.sha256(f.content).hexdigest(), processes))
    seen: dict[str, str] = {}
    for pf in parsed:
        for model in pf.processes:
            if model.key in seen:
                problems.append(Problem(model.key, f"the process id is defined in {seen[model.key]} too; a "
                                                   "deployment defines each process once", pf.name))
            seen.setdefault(model.key, pf.name)
    seen_decisions: dict[str, str] = {}
    for pf in parsed:
        for decision in pf.decisions:
            if decision.key in seen_decisions:
                problems.append(Problem(decision.key, f"the decision id is defined in {seen_decisions[decision.key]} "
                                                      "too; a deployment defines each decision once", pf.name))
            seen_decisions.setdefault(decision.key, pf.name)
    if problems:
        raise ModelError(problems)
    return parsed


def _parse_bpmn(rt: Runtime, content: bytes) -> list[ParsedModel]:
    return parse_processes(content, known_operation=rt.registry.__contains__, known_reference=rt.references.get)


# The root element's namespace → what parses such a file (DMN joins here).
FILE_KINDS: dict[str, Callable[[Runtime, bytes], list[ParsedModel]]] = {BPMN_NS: _parse_bpmn}


def _kind(content: bytes) -> str | None:
    """The namespace of the file's root element ("bpmn" files), None if it is not XML at all."""
    if len(content) > MAX_BPMN_BYTES:
        return BPMN_NS  # the parser says it is too large, naming the limit
    try:
        root = etree.fromstring(content, parser=SAFE_PARSER)
    except etree.XMLSyntaxError:
        return BPMN_NS if content.lstrip().startswith(b"<") else None  # XML, but broken: the parser says where
    return etree.QName(root).namespace or etree.QName(root).localname


def files_from_zip(name: str, raw: bytes) -> list[BundleFile]:
    """The model files of a zip (folders flattened; other members refused), bounded in number and size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    except zipfile.BadZipFile as exc:
        raise ModelError([Problem(None, f"not a readable zip: {exc}", name)]) from exc
    if len(members) > MAX_FILES:
        raise ModelError([Problem(None, f"a deployment carries at most {MAX_FILES} files; the zip has "
                                        f"{len(members)}", name)])
    if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise ModelError([Problem(None, f"the zip holds more than {MAX_ZIP_BYTES} bytes uncompressed", name)])
    bad = [m.filename for m in members if not m.filename.lower().endswith(MODEL_SUFFIXES)]
    if bad:
        raise ModelError([Problem(None, f"not a model file ({', '.join(MODEL_SUFFIXES)})", f"{name}/{b}")
                          for b in bad])
    files = []
    for m in members:
        with archive.open(m) as member:
            content = member.read(MAX_BPMN_BYTES + 1)
        files.append(BundleFile(str(PurePosixPath(m.filename)), content))
    return files


def store(rt: Runtime, parsed: list[ParsedFile], actor: str, name: str | None = None, *,
          single: bool = False) -> DeployedBundle:
    """Store parsed files as one deployment: new versions for what changed, the versions deployed
    before for the same bytes (whichever version is the latest). The calls its processes make are
    checked against what is deployed once this deployment is in (all in one transaction). A `single`
    file deploy (the one-file endpoint, the bundled models at every start) records a deployment only
    when it creates a version, and audits the version alone; otherwise `deployment` is None."""
    for _attempt in range(3):
        try:
            with rt.db.transaction() as s:
                rt.db.advisory_xact_lock(s, DEPLOY_LOCK_KEY)
                now = rt.clock.now()
                deployment = Deployment(name=name or ", ".join(pf.name for pf in parsed)[:200], deployed_by=actor,
                                        deployed_at=now, files=[])
                s.add(deployment)
                s.flush()
                kept: Deployment | None = deployment  # None once a one-file deploy created nothing
                drafts: list[audit.AuditDraft] = []
                done, scheduled, tables = [], False, []
                for pf in parsed:  # decisions first: the bundle's business rule tasks may use them
                    if pf.decisions:
                        stored = decisions.store(rt, s, pf.decisions, pf.content, actor, now, deployment.id, drafts)
                        tables += [DeployedDecision(pf.name, d, created) for d, created in stored]
                for pf in parsed:
                    for model in pf.processes:
                        definition, created = _store_process(s, model, pf, deployment.id, actor, now)
                        done.append(DeployedProcess(pf.name, definition, created, model))
                        if created:
                            scheduled |= start_timers.sync(s, model.key, definition.id, model.start_timers, now)
                            drafts.append(audit.AuditDraft(action="definition.deployed", actor=actor, at=now, details={
                                "key": model.key, "version": definition.version, "sha256": pf.sha256,
                                "deployment": deployment.id}))
                problems = _check_calls(s, done)
                problems += [p.in_file(d.file) for d in done if d.created for p in decisions.missing(  # DMN
                    s, [d.model.spec, *d.model.subprocess_specs.values()], {t.definition.key for t in tables})]
                problems += [p.in_file(d.file) for d in done if d.created for p in rt.contracts.check(d.model)]
                if problems:
                    raise ModelError(problems)
                deployment.files = [{"name": pf.name, "sha256": pf.sha256, "processes": [
                    {"key": d.definition.key, "definition_id": d.definition.id, "version": d.definition.version,
                     "created": d.created} for d in done if d.file == pf.name],
                    **({"decisions": [{"key": t.definition.key, "decision_id": t.definition.id,
                                       "version": t.definition.version, "created": t.created}
                                      for t in tables if t.file == pf.name]} if pf.decisions else {})}
                    for pf in parsed]
                if not single:
                    drafts.insert(0, audit.AuditDraft(action="deployment.created", actor=actor, at=now, details={
                        "deployment": deployment.id, "name": deployment.name, "files": deployment.files}))
                elif not any(d.created for d in done):
                    s.delete(deployment)
                    kept = None
                if scheduled:
                    rt.db.notify(s, WAKEUP_CHANNEL)
                audit.append_system(rt, s, drafts)
            for d in done:
                rt.specs.put(d.definition.id, d.model)
            for pf in parsed:
                for t, decision in zip([t for t in tables if t.file == pf.name], pf.decisions, strict=True):
                    rt.decisions.put(t.definition.id, decision)
            if scheduled:
                rt.wake()
            return DeployedBundle(kept, done, tables)
        except IntegrityError:
            continue  # a concurrent single-file deploy took a version number; read again
    raise RuntimeError("could not allocate definition versions")


def _store_process(s, model: ParsedModel, pf: ParsedFile, deployment_id: int, actor: str,
                   now) -> tuple[ProcessDefinition, bool]:
    same = s.scalar(select(ProcessDefinition).where(ProcessDefinition.key == model.key,
                                                    ProcessDefinition.sha256 == pf.sha256))
    if same is not None:
        return same, False
    version = (s.scalar(select(func.max(ProcessDefinition.version))
                        .where(ProcessDefinition.key == model.key)) or 0) + 1
    s.execute(_UNMARK_LATEST, {"of_key": model.key})
    definition = ProcessDefinition(key=model.key, version=version, name=model.name, bpmn_xml=xml_text(pf.content),
                                   sha256=pf.sha256, deployed_by=actor, deployed_at=now, is_latest=True,
                                   suspended=False, process_errors=0, deployment_id=deployment_id)
    s.add(definition)
    s.flush()
    return definition, True


def _check_calls(s, done: list[DeployedProcess]) -> list[Problem]:
    """Every call activity names a process deployed now or before; `deployment` binds to one of this
    deployment; `version` to a version that exists."""
    in_bundle = {d.definition.key for d in done}
    problems = []
    for d in done:
        if not d.created:
            continue  # checked when it was deployed; what it calls stays deployed (versions are never deleted)
        for call in d.model.calls:
            key = call.called_element
            if call.binding == "deployment":
                ok, what = key in in_bundle, "in this deployment (binding \"deployment\")"
            elif call.binding == "version":
                ok = s.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == key,
                                                                 ProcessDefinition.version == call.version)) is not None
                what = f"at version {call.version}"
            else:
                ok = key in in_bundle or s.scalar(select(ProcessDefinition.id).where(
                    ProcessDefinition.key == key).limit(1)) is not None
                what = "deployed, nor in this deployment"
            if not ok:
                problems.append(Problem(call.element_id, f"the call activity calls process '{key}', which is not "
                                                         f"{what}", d.file))
    return problems


def xml_text(raw: bytes) -> str:
    """The model as text whatever encoding it declared (GBK, UTF-16...); parsing already succeeded."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return etree.tostring(etree.fromstring(raw, parser=SAFE_PARSER), encoding="unicode")


def get(rt: Runtime, deployment_id: int) -> Deployment:
    with rt.db.session() as s:
        found = s.get(Deployment, deployment_id)
    if found is None:
        raise NotFound(f"deployment {deployment_id} does not exist")
    return found


def list_deployments(rt: Runtime, offset: int = 0, limit: int = 50) -> tuple[list[Deployment], int]:
    return page(rt.db, select(Deployment), [Deployment.deployed_at.desc(), Deployment.id.desc()], offset, limit)


_UNMARK_LATEST = (update(ProcessDefinition).where(ProcessDefinition.key == bindparam("of_key"),
                                                  ProcessDefinition.is_latest)
                  .values(is_latest=False).execution_options(synchronize_session=False))
