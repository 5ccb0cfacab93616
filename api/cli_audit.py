"""`gridloop audit …`: verify the trail, sign a checkpoint, export it, and verify an export offline
(no database, no settings: only the file and the key file)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from engine.audit import ChainReport


@click.group("audit")
def audit_group() -> None:
    """The audit trail: verify, checkpoint, export, verify-export."""


def _print_report(report: ChainReport) -> None:
    body = asdict(report)
    body["last_checkpoint"] = report.last_checkpoint and {**report.last_checkpoint,
                                                          "at": report.last_checkpoint["at"].isoformat()}
    click.echo(json.dumps(body, ensure_ascii=False, indent=1))
    if not report.ok:
        raise SystemExit(1)


def _runtime():
    from .cli import _runtime, _settings

    settings = _settings()
    return _runtime(settings), settings


@audit_group.command()
def verify() -> None:
    """Verify the trail in the database (GRIDLOOP_DATABASE_URL) with the configured keys; exit 1 on a finding."""
    from engine import audit

    rt, _ = _runtime()
    _print_report(audit.verify_snapshot(rt.db, rt.audit_keys))


@audit_group.command()
def checkpoint() -> None:
    """Sign a checkpoint of the chain heads now."""
    from engine import audit

    rt, settings = _runtime()
    taken = audit.take_checkpoint(rt.db, rt.audit_keys, f"cli:{settings.operator}", rt.clock.now())
    if taken is None:
        click.echo("no event since the last checkpoint", err=True)
        return
    click.echo(json.dumps({"seq": taken.seq, "maxEventId": taken.max_event_id, "chains": len(taken.heads),
                           "signature": taken.signature}))


@audit_group.command()
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--no-checkpoint", is_flag=True, help="Do not sign a checkpoint of the current heads first.")
def export(file: Path, no_checkpoint: bool) -> None:
    """Write the trail with its checkpoints to FILE (JSON lines); a checkpoint of the current heads is
    signed first, so that the export ends with one. Keep the printed signature: a later export that
    lacks it was cut."""
    from engine import audit
    from engine.audit.export import export as write_export

    rt, settings = _runtime()
    if not no_checkpoint:
        audit.take_checkpoint(rt.db, rt.audit_keys, f"cli:{settings.operator}", rt.clock.now())
    summary = write_export(rt.db, file, rt.clock.now())
    click.echo(json.dumps(asdict(summary)))


@audit_group.command("verify-export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The audit key file: one key per line, the current one first, then retired ones.")
def verify_export(file: Path, key_file: Path) -> None:
    """Verify an export offline; prints the report, exit 1 on a finding, 2 on a file it cannot read."""
    from engine.audit import AuditKeys
    from engine.audit.export import ExportError
    from engine.audit.export import verify_export as check

    try:
        keys = AuditKeys.from_file(key_file)
        report = check(file, keys)
    except (ExportError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    _print_report(report)
