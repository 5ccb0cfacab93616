"""`from_row` in a process that has not used the ORM yet (an RQ work horse's first job)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_from_row_works_before_any_orm_use():
    code = ("from engine.models import ProcessInstance, from_row\n"
            "row = from_row(ProcessInstance, {'id': 'i-1', 'definition_id': 3, 'status': 'running'})\n"
            "print(row.definition_id, row.status)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "running"]
