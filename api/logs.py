"""Structured logs: one JSON object per line, with the `extra` fields of each call."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


SPIFF_LOGGER = "spiff"  # SpiffWorkflow's loggers (spiff.task, spiff.workflow, ...) are its children


def configure_logging(level: str = "INFO", as_json: bool = True, spiff_level: str = "WARNING") -> None:
    """Called once by each process entry point (never at import time). SpiffWorkflow logs every task
    state change with the task's data (citizens' phone numbers included) at INFO: its loggers stay at
    `spiff_level` (GRIDLOOP_LOG_LEVEL_SPIFF), whatever the root level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                                                            "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    # Alembic announces each of its plugins at INFO whenever a command loads its configuration (every
    # CLI command checks the schema): seven lines of noise; its "Running upgrade" lines stay.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(logging.WARNING, root.level))
    logging.getLogger(SPIFF_LOGGER).setLevel(spiff_level.upper())
