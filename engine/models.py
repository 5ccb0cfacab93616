"""Tables of the engine: definitions, instances, read models, messages, audit, outbox, incidents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, configure_mappers, mapped_column
from sqlalchemy.sql import false, text

from .db import Base, UTCDateTime

_T = TypeVar("_T")


def from_row(cls: type[_T], values: Mapping[str, Any]) -> _T:
    """An instance of the mapped class `cls` holding `values` (a Core row's `_mapping`, keyed by
    column name = attribute name), made without the ORM constructor's per-attribute events, which
    cost ten times more: a transient object, in no session, as `cls(**values)` would be."""
    manager = cls._sa_class_manager  # type: ignore[attr-defined]
    if not manager.mapper.configured:
        # Attribute access on an instance of a not yet configured mapper fails (its attributes have
        # no implementation until then): in a process whose first database use is this function,
        # e.g. an RQ work horse running a service-task job, nothing else has configured them yet.
        configure_mappers()
    obj = manager.new_instance()
    obj.__dict__.update(values)
    return obj


# BigInteger autoincrement is INTEGER PRIMARY KEY on SQLite only with this variant.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ProcessDefinition(Base):
    """A deployed version of a BPMN process. Its model is immutable; what an administrator may change
    is which version of a key new cases start on (`is_latest`, one per key) and whether a version
    takes new starts at all (`suspended`). `process_errors` counts the changes it failed (metrics)."""

    __tablename__ = "process_definition"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_definition_key_version"),
        UniqueConstraint("key", "sha256", name="uq_definition_key_sha256"),
        Index("uq_definition_latest", "key", unique=True, postgresql_where=text("is_latest"),
              sqlite_where=text("is_latest")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(400))
    bpmn_xml: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_by: Mapped[str] = mapped_column(String(200))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_latest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    process_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_process_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The deployment that created this version (None: deployed before deployments were recorded).
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployment.id", name="fk_definition_deployment"),
                                                      index=True)


class Deployment(Base):
    """One deploy: the files it carried (name, sha256, the process keys each defines). The versions it
    created point at it; a call activity bound to `deployment` calls the version of its own deployment."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    deployed_by: Mapped[str] = mapped_column(String(200))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class DecisionDefinition(Base):
    """A deployed version of a DMN decision table; its key is the decision's id. Immutable: a business
    rule task evaluates the newest version of its key when it runs. `dmn_xml` is the whole file it
    came in (a file may define several decisions); the same bytes keep their version."""

    __tablename__ = "decision_definition"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_decision_key_version"),
        UniqueConstraint("key", "sha256", name="uq_decision_key_sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(400))
    hit_policy: Mapped[str] = mapped_column(String(20))
    dmn_xml: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_by: Mapped[str] = mapped_column(String(200))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployment.id", name="fk_decision_deployment"),
                                                      index=True)


class StartSchedule(Base):
    """When the scheduler next starts an instance of a key whose latest version has a timer start
    event (engine/start_timers.py). One row per key, locked while it fires and advanced in the same
    transaction as the start, so a period starts once however many schedulers run."""

    __tablename__ = "start_schedule"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))  # the version it was read from
    element_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # date | cycle
    expression: Mapped[str] = mapped_column(String(400))  # the literal, as deployed
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # None: nothing more to start
    remaining: Mapped[int] = mapped_column(Integer)  # starts left; -1: unbounded
    starts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProcessInstance(Base):
    """A running or finished instance; `state` is the spec-less serialized SpiffWorkflow."""

    __tablename__ = "process_instance"
    __table_args__ = (
        UniqueConstraint("process_key", "business_key", name="uq_instance_business_key"),
        Index("ix_instance_wakeup", "next_wakeup_at"),
        # The scheduler's due query (engine/timers.py): only instances that may fire, in deadline order.
        Index("ix_instance_due", "next_wakeup_at",
              postgresql_where=text("status = 'running' AND suspended = false AND next_wakeup_at IS NOT NULL"),
              sqlite_where=text("status = 'running' AND suspended = 0 AND next_wakeup_at IS NOT NULL")),
        Index("ix_instance_key_status", "process_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # running | completed | cancelled
    state: Mapped[str] = mapped_column(Text)
    next_wakeup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str | None] = mapped_column(String(64))  # hash of the last event of its chain
    scope: Mapped[str | None] = mapped_column(String(200), index=True)  # who may see it (a grid code prefix)
    # A call activity's child: the instance and task that called it (engine/calls.py). No foreign key:
    # a child may be written before its parent's row in the change that starts both.
    parent_instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    parent_task_id: Mapped[str | None] = mapped_column(String(36))
    parent_element_id: Mapped[str | None] = mapped_column(String(200))
    call_depth: Mapped[int | None] = mapped_column(Integer)  # None/0: a root instance
    # Suspended by an administrator (engine/suspension.py): completes no task, fires no timer (its
    # deadline is kept), takes messages into the buffer only, until activated.
    suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class HumanTask(Base):
    """Read model of one READY user task: who may act on it, by when, and its life cycle."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_task_open_role", "status", "candidate_role"),
        Index("ix_task_assignee", "assignee", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the SpiffWorkflow task guid
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(400))
    candidate_role: Mapped[str | None] = mapped_column(String(100))
    candidate_scope: Mapped[str | None] = mapped_column(String(200), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    form_key: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # open | completed | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[str | None] = mapped_column(String(200))


class MessageSubscription(Base):
    """An instance waiting for a message: correlation is one index lookup on (name, value)."""

    __tablename__ = "message_subscription"
    __table_args__ = (UniqueConstraint("message_name", "correlation_value", name="uq_subscription"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_value: Mapped[str] = mapped_column(String(400))
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Message(Base):
    """Every message received, by its id: buffered until a subscription appears, then delivered."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_buffered", "message_name", "correlation_value", "status"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the sender's message id
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_value: Mapped[str] = mapped_column(String(400))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # buffered | delivered | expired
    instance_id: Mapped[str | None] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sender: Mapped[str] = mapped_column(String(200))


class SignalSubscription(Base):
    """An instance waiting for a signal: a broadcast finds every waiter by the signal's name (and the
    thrower's tenant, through the instance's scope)."""

    __tablename__ = "signal_subscription"
    __table_args__ = (UniqueConstraint("instance_id", "task_id", "signal_name", name="uq_signal_subscription"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    signal_name: Mapped[str] = mapped_column(String(200), index=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"))  # indexed by the unique key
    task_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignalDelivery(Base):
    """One signal received by one instance: a broadcast job run again skips the instances it reached."""

    __tablename__ = "signal_delivery"

    signal_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One change, hash-chained to the previous event so that edits and deletions are detectable."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_chain", "chain", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(36))  # the instance id, or "system"
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))  # the HMAC key's id; None: plain SHA-256 (legacy)


class AuditChainHead(Base):
    """The last event of a chain that has no instance row to keep its head (`system`, `anchor`), so
    that events cut off its end are detected (engine/audit)."""

    __tablename__ = "audit_chain_head"

    chain: Mapped[str] = mapped_column(String(36), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))  # its lock serialises the chain's appends


class AuditCheckpoint(Base):
    """A signed record of chain heads (those that moved since the previous checkpoint), chained to the
    previous checkpoint: events cut off a chain after it was taken are detected (engine/audit)."""

    __tablename__ = "audit_checkpoint"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    taken_by: Mapped[str] = mapped_column(String(200))
    max_event_id: Mapped[int] = mapped_column(BigInteger)  # the newest event it saw
    legacy_until: Mapped[int] = mapped_column(BigInteger)  # the newest unkeyed event at the first checkpoint
    heads: Mapped[dict[str, Any]] = mapped_column(JSON)  # {chain: [event id, hash]}
    prev_signature: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(64))


class OutboxEntry(Base):
    """A side effect to perform after commit; the relay hands it to the job queue (at least once)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "relayed_at", "available_at"),
        Index("ix_outbox_leases", "done_at", "relayed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(50))
    job: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    relayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the job in the transaction that records its outcome. A row relayed long ago and not done
    # means the worker died mid-job (RQ loses such jobs): the sweeper relays it again.
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    relays: Mapped[int] = mapped_column(Integer, default=0)


class Incident(Base):
    """A failure that ran out of retries and waits for an operator."""

    __tablename__ = "incident"
    __table_args__ = (Index("ix_incident_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50))  # service_task | timer | job
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(200))
    operation: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # open | resolved
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
