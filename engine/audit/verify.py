"""Verification of the trail, on the database or on an export (the same checks, fed the same records).

What it detects, each reported as a finding of a named kind:

- `edited`: an event's content does not match its HMAC (a row edited, even with every later hash
  recomputed: that needs the key);
- `link_broken`: an event's previous-hash link does not match (an event removed or re-ordered);
- `unknown_key`: an event or checkpoint signed with a key the ring does not hold;
- `unkeyed_after_seal`: a plain SHA-256 (legacy) event newer than the newest legacy event the first
  checkpoint saw (an edited row passed off as legacy); `legacy_unsealed`: legacy events and no
  checkpoint at all;
- `tail_cut`: a chain does not end at its recorded head (the instance row's, or `audit_chain_head`'s
  for the system and anchor chains);
- `truncated_after_checkpoint`: a chain lost the head a signed checkpoint recorded (events cut off
  its end and its recorded head moved back);
- `instance_deleted`: an instance recorded in the anchor chain (or one with events) is gone;
- `not_anchored`: a keyed instance chain that the anchor chain does not know;
- `checkpoint_forged`, `checkpoint_removed`: a checkpoint whose signature or link does not match."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .chain import ANCHOR_CHAIN, ANCHORED, GENESIS, HEADED_CHAINS
from .keys import AuditKeys, checkpoint_signature, event_hash, same

MAX_FINDINGS = 100


class EventLike(Protocol):
    id: int
    chain: str
    at: datetime
    actor: str
    action: str
    instance_id: str | None
    task_id: str | None
    element_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str
    key_id: str | None


class CheckpointLike(Protocol):
    seq: int
    at: datetime
    taken_by: str
    max_event_id: int
    legacy_until: int
    heads: dict[str, Any]
    prev_signature: str
    key_id: str
    signature: str


@dataclass
class Finding:
    kind: str
    detail: str
    chain: str | None = None
    event_id: int | None = None


@dataclass
class ChainReport:
    ok: bool
    checked: int  # events verified before the first broken one (all of them when ok)
    first_broken_id: int | None = None
    reason: str | None = None
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    legacy_events: int = 0
    checkpoints: int = 0
    last_checkpoint: dict[str, Any] | None = None
    key_ids: list[str] = field(default_factory=list)


class Verifier:
    """Feed it the checkpoints, then every event in id order, then the instances' and chains'
    recorded heads; `report()` tells what it found."""

    def __init__(self, keys: AuditKeys) -> None:
        self.keys = keys
        self.findings: list[Finding] = []
        self.heads: dict[str, str] = {}
        self.last_id_of: dict[str, int] = {}
        self.first_keyed: dict[str, bool] = {}
        self.keyed_chains: set[str] = set()
        self.anchored: dict[str, int] = {}
        self.required: dict[str, tuple[int, str, int]] = {}  # chain -> (event id, hash, checkpoint seq)
        self.seen_required: set[str] = set()
        self.seal: int | None = None  # the newest legacy event the first checkpoint saw: none may be newer
        self.checked = self.events = self.legacy = self.valid_checkpoints = 0
        self.first_bad_event = False
        self.last_checkpoint: dict[str, Any] | None = None
        self.key_ids: set[str] = set()
        self.instances_seen: set[str] = set()

    def _find(self, kind: str, detail: str, chain: str | None = None, event_id: int | None = None) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(kind, detail, chain, event_id))

    def checkpoints(self, rows: Iterable[CheckpointLike]) -> None:
        prev_sig, expected = GENESIS, 1
        for c in rows:
            if c.seq != expected or c.prev_signature != prev_sig:
                self._find("checkpoint_removed", f"checkpoint {c.seq} does not follow checkpoint {expected - 1} "
                                                 "(a checkpoint was removed or re-ordered)")
            key = self.keys.by_id.get(c.key_id)
            if key is None:
                self._find("unknown_key", f"checkpoint {c.seq} is signed with key {c.key_id}, which the key ring "
                                          "does not hold")
            elif not same(checkpoint_signature(key, c.seq, c.at, c.taken_by, c.max_event_id, c.legacy_until,
                                               c.heads, c.prev_signature), c.signature):
                self._find("checkpoint_forged", f"checkpoint {c.seq}: its signature does not match its content")
            else:
                self.valid_checkpoints += 1
                if self.seal is None and c.seq == 1:
                    self.seal = c.legacy_until
                for chain, (event_id, hash_) in c.heads.items():
                    self.required[chain] = (int(event_id), hash_, c.seq)
                self.last_checkpoint = {"seq": c.seq, "at": c.at, "maxEventId": c.max_event_id}
            prev_sig, expected = c.signature, c.seq + 1

    def event(self, e: EventLike) -> None:
        self.events += 1
        broken = False
        if e.prev_hash != self.heads.get(e.chain, GENESIS):
            broken = True
            self._find("link_broken", "previous-hash link does not match (an event of this chain was removed or "
                                      "re-ordered before this one)", e.chain, e.id)
        if e.key_id is None:
            self.legacy += 1
            key = None
            if self.seal is not None and e.id > self.seal:
                broken = True
                self._find("unkeyed_after_seal", "an event without a key, newer than those the first checkpoint "
                                                 "sealed (the row was edited and passed off as legacy)",
                           e.chain, e.id)
        else:
            self.key_ids.add(e.key_id)
            self.keyed_chains.add(e.chain)
            key = self.keys.by_id.get(e.key_id)
            if key is None:
                broken = True
                self._find("unknown_key", f"signed with key {e.key_id}, which the key ring does not hold",
                           e.chain, e.id)
        if key is not None or e.key_id is None:
            expected = event_hash(key, e.prev_hash, e.chain, e.at, e.actor, e.action, e.instance_id, e.task_id,
                                  e.element_id, e.details)
            if not same(expected, e.hash):
                broken = True
                self._find("edited", "content does not match its hash (the row was edited)", e.chain, e.id)
        if e.chain not in self.heads:
            self.first_keyed[e.chain] = e.key_id is not None
        required = self.required.get(e.chain)
        if required is not None and required[0] == e.id:
            self.seen_required.add(e.chain)
            if not broken and not same(required[1], e.hash):
                broken = True
                self._find("edited", f"its hash is not the one checkpoint {required[2]} signed (the row was "
                                     "edited)", e.chain, e.id)
        if e.chain == ANCHOR_CHAIN and e.action == ANCHORED and isinstance(e.details, dict):
            self.anchored[str(e.details.get("instance"))] = e.id
        if broken:
            self.first_bad_event = True
        elif not self.first_bad_event:
            self.checked += 1
        self.heads[e.chain], self.last_id_of[e.chain] = e.hash, e.id

    def instance(self, instance_id: str, recorded: str | None) -> None:
        self.instances_seen.add(instance_id)
        if (recorded or GENESIS) != self.heads.get(instance_id, GENESIS):
            self._find("tail_cut", f"instance {instance_id}: its chain does not end at the recorded head (events "
                                   "were removed from the end)", instance_id, self.last_id_of.get(instance_id))

    def chain_heads(self, recorded: dict[str, str]) -> None:
        """The recorded heads of the system and anchor chains (audit_chain_head)."""
        for chain in HEADED_CHAINS:
            head = recorded.get(chain)
            if head is None:
                if chain in self.keyed_chains:
                    self._find("tail_cut", f"chain {chain}: its recorded head is missing", chain)
            elif head != self.heads.get(chain, GENESIS):
                self._find("tail_cut", f"chain {chain}: it does not end at its recorded head (events were removed "
                                       "from the end)", chain, self.last_id_of.get(chain))

    def report(self) -> ChainReport:
        for chain, (event_id, _hash, seq) in self.required.items():
            if chain not in self.seen_required:
                self._find("truncated_after_checkpoint", f"chain {chain}: event {event_id}, its head at checkpoint "
                                                         f"{seq}, is gone (events were cut off its end)",
                           chain, event_id)
        for instance_id, anchor_id in self.anchored.items():
            if instance_id not in self.instances_seen or instance_id not in self.heads:
                self._find("instance_deleted", f"instance {instance_id}, anchored by event {anchor_id}, is gone "
                                               "(deleted with its chain)", instance_id, anchor_id)
        for chain in self.heads:
            if chain in HEADED_CHAINS:
                continue
            if chain not in self.instances_seen:
                self._find("instance_deleted", f"instance {chain}: its events exist but the instance is gone",
                           chain, self.last_id_of[chain])
            elif self.first_keyed.get(chain) and chain not in self.anchored:
                self._find("not_anchored", f"instance {chain}: the anchor chain does not record it", chain)
        if self.legacy and self.seal is None:
            self._find("legacy_unsealed", f"{self.legacy} events without a key and no checkpoint sealing them "
                                          "(take one: `gridloop audit checkpoint`)")
        first = self.findings[0] if self.findings else None
        return ChainReport(ok=first is None, checked=self.checked, first_broken_id=first.event_id if first else None,
                           reason=first.detail if first else None, findings=self.findings, events=self.events,
                           legacy_events=self.legacy, checkpoints=self.valid_checkpoints,
                           last_checkpoint=self.last_checkpoint, key_ids=sorted(self.key_ids))
