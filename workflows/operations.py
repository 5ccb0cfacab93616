"""Service-task operations of the closed-loop domain, registered into the engine's registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.operations import OperationContext, OperationRegistry


def classify_alarm(params: Mapping[str, Any], _ctx: OperationContext) -> dict[str, Any]:
    """Severity from how far a reading exceeds its limit (pure; runs inside the transaction)."""
    value, limit = float(params.get("value", 0)), float(params.get("limit", 0) or 0)
    ratio = value / limit if limit > 0 else 0.0
    level = "urgent" if ratio >= 2 else "high" if ratio >= 1.5 else "normal"
    return {"level": level, "ratio": round(ratio, 3)}


def register_operations(registry: OperationRegistry) -> None:
    registry.register("alarm.classify", classify_alarm)
