"""Configuration is read in one place: Settings.from_env; everything else gets its values passed down."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
READERS = {"api/settings.py", "notifications/config.py",  # NotifySettings, built by Settings.from_env
           "integrations/reference_enforcement/cli.py"}  # the simulator: a program of its own


def test_the_first_admin_password_the_cli_user_and_the_integrations_come_from_the_environment(monkeypatch):
    for name, value in (("GRIDLOOP_SECRET_KEY", "x"), ("GRIDLOOP_ADMIN_PASSWORD", "first"), ("USER", "li"),
                        ("GRIDLOOP_ENFORCEMENT_TIMEOUT", "2.5"), ("GRIDLOOP_OPEN311_PROXY_HOPS", "2"),
                        ("GRIDLOOP_REPORT_DUPLICATE_WINDOW_H", "12")):
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.admin_password, s.operator, s.enforcement_timeout_s, s.open311_proxy_hops,
            s.report_duplicate_window_h) == ("first", "li", 2.5, 2, 12.0)
    assert "first" not in repr(s)
    for name in ("GRIDLOOP_ADMIN_PASSWORD", "USER", "GRIDLOOP_ENFORCEMENT_TIMEOUT"):
        monkeypatch.delenv(name)
    s = Settings.from_env()
    assert (s.admin_password, s.operator, s.enforcement_timeout_s) == ("", "admin", 10.0)


def test_no_other_module_reads_the_environment():
    reads = re.compile(r"os\.environ|os\.getenv|environ\.get|getenv\(")
    found = sorted(str(p.relative_to(ROOT)) for folder in ("api", "engine", "workflows", "integrations",
                                                           "notifications")
                   for p in (ROOT / folder).rglob("*.py") if reads.search(p.read_text()))
    assert set(found) <= READERS, found


def test_the_worker_mode_and_its_limits_come_from_the_environment_and_bad_ones_are_refused(monkeypatch):
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")
    s = Settings.from_env()
    assert (s.worker_mode, s.worker_max_jobs, s.worker_max_rss_mb) == ("simple", 1000, 512)
    for name, value in (("GRIDLOOP_WORKER_MODE", "FORK"), ("GRIDLOOP_WORKER_MAX_JOBS", "50"),
                        ("GRIDLOOP_WORKER_MAX_RSS_MB", "0")):
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.worker_mode, s.worker_max_jobs, s.worker_max_rss_mb) == ("fork", 50, 0)
    for name, value in (("GRIDLOOP_WORKER_MODE", "threads"), ("GRIDLOOP_WORKER_MAX_JOBS", "0"),
                        ("GRIDLOOP_WORKER_MAX_RSS_MB", "-1")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                Settings.from_env()
