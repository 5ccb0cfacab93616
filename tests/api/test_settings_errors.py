"""A setting the operator got wrong stops a command with one line naming the variable, not a
traceback; empty numbers mean the default."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from api.cli import main
from api.settings import Settings


@pytest.mark.parametrize(("name", "value", "said"), [
    ("GRIDLOOP_PORT", "80a", "GRIDLOOP_PORT must be a whole number: '80a'"),
    ("GRIDLOOP_CHECKIN_TOLERANCE_M", "far", "GRIDLOOP_CHECKIN_TOLERANCE_M must be a number: 'far'"),
    ("GRIDLOOP_NOTIFY_BATCH", "ten", "GRIDLOOP_NOTIFY_BATCH must be a whole number: 'ten'"),
    ("GRIDLOOP_NOTIFY_BATCH", "0", "GRIDLOOP_NOTIFY_BATCH must be 1 to 100: 0"),
    ("GRIDLOOP_NOTIFY_BATCH", "101", "GRIDLOOP_NOTIFY_BATCH must be 1 to 100: 101"),
])
def test_a_wrong_setting_is_refused_naming_it(tmp_path, monkeypatch, name, value, said):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"GRIDLOOP_SECRET_KEY": "x", name: value})
    assert result.exit_code == 2 and said in result.output
    assert "Traceback" not in result.output and not list(tmp_path.glob("var/*.db"))  # no database was made


def test_an_empty_number_is_the_default_and_the_batch_reaches_the_settings(monkeypatch):
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")
    monkeypatch.setenv("GRIDLOOP_PORT", "")
    monkeypatch.setenv("GRIDLOOP_NOTIFY_BATCH", "25")
    s = Settings.from_env()
    assert s.port == Settings().port and s.notify.batch == 25
