"""The audit key comes from outside the database: a key file (default var/audit_key, generated once,
readable by its owner only) or the environment; retired keys stay accepted; weak keys are refused."""

from __future__ import annotations

import stat

import pytest

from api.settings import Settings
from api.wiring import make_runtime
from engine import audit


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("GRIDLOOP_AUDIT_KEY", "GRIDLOOP_AUDIT_RETIRED_KEYS", "GRIDLOOP_AUDIT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")
    return monkeypatch


def test_without_configuration_a_key_file_is_generated_once_in_var(clean_env, tmp_path):
    first = Settings.from_env()
    path = tmp_path / "var" / "audit_key"
    assert path.read_text() == first.audit_key and len(first.audit_key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings.from_env().audit_key == first.audit_key and first.audit_retired_keys == ()
    assert first.audit_key not in repr(first)


def test_a_key_file_lists_the_current_key_first_then_retired_ones(clean_env, tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("# rotated 2026-12\n" + "n" * 40 + "\n\n" + "o" * 40 + "\n")
    clean_env.setenv("GRIDLOOP_AUDIT_KEY_FILE", str(key_file))
    s = Settings.from_env()
    assert (s.audit_key, s.audit_retired_keys) == ("n" * 40, ("o" * 40,))
    keys = audit.AuditKeys.of(s.audit_key, s.audit_retired_keys)
    assert keys == audit.AuditKeys.from_file(key_file)
    assert set(keys.by_id) == {audit.key_id(b"n" * 40), audit.key_id(b"o" * 40)}
    assert keys.current_id == audit.key_id(b"n" * 40)


def test_the_key_may_come_from_the_environment_and_a_short_one_is_refused(clean_env):
    clean_env.setenv("GRIDLOOP_AUDIT_KEY", "e" * 32)
    clean_env.setenv("GRIDLOOP_AUDIT_RETIRED_KEYS", "r" * 32 + ", " + "s" * 32)
    s = Settings.from_env()
    assert (s.audit_key, s.audit_retired_keys) == ("e" * 32, ("r" * 32, "s" * 32))
    clean_env.setenv("GRIDLOOP_AUDIT_RETIRED_KEYS", "short")
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings.from_env()
    with pytest.raises(ValueError, match="GRIDLOOP_AUDIT_CHECKPOINT_INTERVAL"):
        Settings(audit_checkpoint_interval_s=-1)


def test_the_runtime_signs_with_the_configured_key(db):
    settings = Settings(database_url=db.url, secret_key="x", audit_key="c" * 40, audit_retired_keys=("p" * 40,))
    rt = make_runtime(settings, db=db)
    assert rt.audit_keys == audit.AuditKeys(b"c" * 40, (b"p" * 40,))
