"""The audit trail (全过程留痕): every change appends events to a keyed hash chain (HMAC-SHA256, the
key outside the database), so that editing, deleting or cutting off rows is detected even by someone
who can write to the database and read the source.

chain.py appends (one chain per instance, `system`, `anchor`); keys.py holds the key ring;
store.py takes signed checkpoints and verifies the database; verify.py holds the checks, shared with
the offline verification of an export (export.py)."""

from .chain import (
    ANCHOR_CHAIN,
    GENESIS,
    INSERT,
    SYSTEM_CHAIN,
    AuditDraft,
    anchor_instances,
    append_system,
    append_to_instance,
    chain_rows,
    insert_rows,
)
from .keys import AuditKeys, key_id
from .store import last_checkpoint, take_checkpoint, verify, verify_snapshot
from .verify import ChainReport, Finding

__all__ = [
    "ANCHOR_CHAIN", "GENESIS", "INSERT", "SYSTEM_CHAIN", "AuditDraft", "AuditKeys", "ChainReport", "Finding",
    "anchor_instances", "append_system", "append_to_instance", "chain_rows", "insert_rows", "key_id",
    "last_checkpoint", "take_checkpoint", "verify", "verify_snapshot",
]
